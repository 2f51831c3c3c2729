"""Local smoothness along a training path, and the (L0, L1) envelope (Zhang et al. 2020).

Zhang, He, Sra & Jadbabaie (ICLR 2020) observe that the local smoothness of a network's loss
grows with the gradient norm, and model it as ``||Hess f(x)|| <= L0 + L1 ||grad f(x)||``
("(L0, L1)-smoothness"). Their estimator (authors' code, ``eval_smooth``) looks along each
optimisation step ``d = x_{k+1} - x_k``:

    L_hat_k = max_{alpha in A} ||grad F(x_k + alpha d) - grad F(x_k)|| / (alpha ||d||).

Here the gradients are exact full-data gradients (the authors accumulate them over 10 % of the
training set, which only rescales the plot), and ``A = {1/4, 1/2, 3/4, 1}`` by default.

:func:`fit_l0_l1` fits the smallest line ``L0 + L1 g`` (``L0, L1 >= 0``) lying above a given
fraction of the points ``(g_k, L_hat_k)``. Two tests of "L_hat grows with g" along one path:
:func:`fit_affine_ci` (least-squares ``L0 + L1 g`` with a block-bootstrap interval for L1) and
:func:`binned_spearman` (rank correlation of the medians in log-spaced bins of g).
"""
from typing import NamedTuple
import math

import numpy as np

DEFAULT_ALPHAS = (0.25, 0.5, 0.75, 1.0)


class LocalSmoothness(NamedTuple):
    """Result of :func:`local_smoothness`; unpacks as ``(L_hat, grad_norm)``.

    L_hat : ndarray (K,)
        Local smoothness estimate per step (NaN where the step is zero).
    grad_norm : ndarray (K,)
        ``||grad F(x_k)||`` at the start of each step.
    """
    L_hat: np.ndarray
    grad_norm: np.ndarray


class Envelope(NamedTuple):
    """Result of :func:`fit_l0_l1`; unpacks as ``(L0, L1)``.

    ``coverage`` is the fraction of the points on or below the line (>= the requested one),
    ``n_points`` the number of finite points used.
    """
    L0: float
    L1: float
    coverage: float = float("nan")
    n_points: int = 0


# ----------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------
def _check_alphas(alphas):
    try:
        a = np.asarray(alphas, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"alphas must be a sequence of numbers in (0, 1]; got {alphas!r}") from None
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0) or np.any(a > 1):
        raise ValueError(f"alphas must be a non-empty sequence of numbers in (0, 1]; got {alphas!r}")
    return a


def _check_points(path, name, P=None, K=None):
    try:
        x = np.asarray(path, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array (K, P); got {type(path).__name__}") from None
    if x.ndim == 1 and P in (None, 1):
        x = x.reshape(-1, 1)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (K, P) (or 1-D for a 1-D problem); got shape {x.shape}")
    if P is not None and x.shape[1] != P:
        raise ValueError(f"{name} must have {P} columns; got shape {x.shape}")
    if K is not None and x.shape[0] != K:
        raise ValueError(f"{name} must have {K} rows (one per point of path); got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite (cut a diverged path before estimating smoothness)")
    return np.ascontiguousarray(x)


def _steps(path, next_points, P=None):
    x = _check_points(path, "path", P)
    if next_points is None:
        if x.shape[0] < 2:
            raise ValueError(f"path must have at least 2 points (one step); got {x.shape[0]}")
        return x[:-1], x[1:] - x[:-1]
    nxt = _check_points(next_points, "next_points", x.shape[1], x.shape[0])
    if x.shape[0] < 1:
        raise ValueError("path must have at least 1 point")
    return x, nxt - x


def _estimate(grad_many, base, d, alphas, chunk):
    """L_hat and ||grad F(base)|| for steps d from base; grad_many maps (M, P) -> (M, P)."""
    K, P = base.shape
    nA = alphas.shape[0]
    dn = np.linalg.norm(d, axis=1)
    L = np.empty(K)
    gn = np.empty(K)
    step = max(1, chunk // (nA + 1))
    for lo in range(0, K, step):
        hi = min(K, lo + step)
        b, dd = base[lo:hi], d[lo:hi]
        pts = np.concatenate([b[None], b[None] + alphas[:, None, None] * dd[None]], axis=0)   # (1+nA, k, P)
        g = np.asarray(grad_many(pts.reshape(-1, P)), dtype=np.float64)
        if g.shape != (pts.shape[0] * pts.shape[1], P):
            raise ValueError(f"grad must return an array of shape (M, P) = {(pts.shape[0] * pts.shape[1], P)} "
                             f"for M points; got {g.shape}")
        g = g.reshape(pts.shape)
        diff = np.linalg.norm(g[1:] - g[0][None], axis=2)                  # (nA, k)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = diff / (alphas[:, None] * dn[lo:hi][None])
        ratio[:, dn[lo:hi] == 0] = np.nan
        L[lo:hi] = np.max(ratio, axis=0)
        gn[lo:hi] = np.linalg.norm(g[0], axis=1)
    return LocalSmoothness(L, gn)


# ----------------------------------------------------------------------------------------
# public
# ----------------------------------------------------------------------------------------
def local_smoothness_fn(grad, path, alphas=DEFAULT_ALPHAS, *, next_points=None, vectorized=True, chunk=4096):
    """Zhang's local smoothness along a path, for any gradient function.

    Parameters
    ----------
    grad : callable
        The gradient. With ``vectorized=True`` (default) it is called on a batch of points,
        an array (M, P), and must return (M, P); for a 1-D function ``np.sinh`` works as is.
        With ``vectorized=False`` it is called on one point (P,) at a time.
    path : array (K, P), or (K,) for a 1-D problem
        The iterates x_0, ..., x_{K-1}; step k is ``d_k = x_{k+1} - x_k``.
    alphas : sequence in (0, 1]
        The step fractions of the max (default 1/4, 1/2, 3/4, 1).
    next_points : array like ``path``, optional
        If given, step k is ``d_k = next_points[k] - path[k]`` (K steps): use it to evaluate the
        estimator only every few iterations, passing the pairs (x_k, x_{k+1}).
    chunk : int
        Maximum number of points per call of ``grad`` (limits memory).

    Returns
    -------
    LocalSmoothness ``(L_hat, grad_norm)``, arrays (K-1,) (or (K,) with ``next_points``):
    ``L_hat_k = max_alpha ||grad(x_k + alpha d_k) - grad(x_k)|| / (alpha ||d_k||)`` (NaN for a
    zero step) and ``grad_norm_k = ||grad(x_k)||``.
    """
    if not callable(grad):
        raise ValueError(f"grad must be callable (a gradient function); got {type(grad).__name__}")
    alphas = _check_alphas(alphas)
    base, d = _steps(path, next_points)
    if vectorized:
        gm = grad
    else:
        def gm(pts):
            return np.stack([np.asarray(grad(p), dtype=np.float64).reshape(-1) for p in pts])
    return _estimate(gm, base, d, alphas, int(chunk))


def local_smoothness(net, X, Y, path, alphas=DEFAULT_ALPHAS, loss="mse", *, next_points=None, chunk=4096):
    """Zhang's local smoothness along a training path of an MLP, with full-data gradients.

    Parameters
    ----------
    net, X, Y, loss : as for :func:`dynclip.simulate`; the gradient is that of the unclipped
        full-data loss F (:func:`dynclip.meanfield.grad_F`), evaluated at all points at once.
    path : array (K, P)
        Parameter vectors along the path (e.g. ``SAResult.theta[r]`` with ``record_every=1``).
    alphas, next_points, chunk : as for :func:`local_smoothness_fn`.

    Returns
    -------
    LocalSmoothness ``(L_hat, grad_norm)``, arrays (K-1,) (or (K,) with ``next_points``).
    """
    from .meanfield import grad_F
    from .checks import check_net, check_data
    check_net(net)
    check_data(net, X, Y, loss)
    alphas = _check_alphas(alphas)
    base, d = _steps(path, next_points, P=net.n_params)
    return _estimate(lambda th: grad_F(net, X, Y, th, loss), base, d, alphas, int(chunk))


def _check_pairs(grad_norm, L):
    """The finite pairs (g_k, L_k) of two 1-D arrays of the same shape, checked to be >= 0."""
    try:
        g = np.asarray(grad_norm, dtype=np.float64)
        Lv = np.asarray(L, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("grad_norm and L must be numeric arrays") from None
    if g.ndim != 1:
        raise ValueError(f"grad_norm must be a 1-D array; got shape {g.shape}")
    if Lv.shape != g.shape:
        raise ValueError(f"L must have the same shape as grad_norm {g.shape}; got {Lv.shape}")
    ok = np.isfinite(g) & np.isfinite(Lv)
    g, Lv = g[ok], Lv[ok]
    if g.size == 0:
        raise ValueError("grad_norm and L have no finite pair to fit")
    if np.any(g < 0):
        raise ValueError("grad_norm must be >= 0 (it is a norm)")
    if np.any(Lv < 0):
        raise ValueError("L must be >= 0 (it is a ratio of norms)")
    return g, Lv


def _envelope_objective(g, L, m, L1s):
    """L0(L1) = max(0, m-th smallest of L - L1 g) and the objective L0 + L1 mean(g), for many L1."""
    r = L[None, :] - L1s[:, None] * g[None, :]
    q = np.partition(r, m - 1, axis=1)[:, m - 1]
    L0 = np.maximum(q, 0.0)
    return L0, L0 + L1s * g.mean()


def fit_l0_l1(grad_norm, L, coverage=0.99, *, n_grid=513, n_refine=4):
    """The smallest (L0, L1) line above a fraction ``coverage`` of the points (g_k, L_k).

    Minimises the mean height of the line over the points, ``L0 + L1 mean(g)``, over
    ``L0, L1 >= 0`` subject to ``L_k <= L0 + L1 g_k`` for at least ``ceil(coverage * n)``
    points. Dropping the ``(1 - coverage)`` fraction of points makes this a chance
    constraint, not a linear programme, so it is solved by a 1-D search over L1: for each L1
    the best L0 is ``max(0, m-th smallest of L_k - L1 g_k)`` with ``m`` the number of points
    to cover, and the objective is minimised over a grid of L1 in ``[0, L1_max]``
    (``n_grid`` linear plus ``n_grid`` geometric points), refined ``n_refine`` times around
    the best point. The objective is piecewise linear in L1 with slope at most
    ``max(g) + mean(g)``, so the result is within that times the final grid spacing of the
    optimum. With ``coverage=1`` this is the linear programme, and the search agrees with
    ``scipy.optimize.linprog`` (tested).

    Parameters
    ----------
    grad_norm, L : arrays (n,)
        Gradient norms g_k >= 0 and smoothness estimates L_k >= 0; pairs with a non-finite
        entry (e.g. the NaN of a zero step) are ignored.
    coverage : float in (0, 1]

    Returns
    -------
    Envelope ``(L0, L1, coverage, n_points)``: the achieved coverage and the number of points used.
    """
    try:
        cov = float(coverage)
    except (TypeError, ValueError):
        raise ValueError(f"coverage must be a number in (0, 1]; got {coverage!r}") from None
    if not (0.0 < cov <= 1.0):
        raise ValueError(f"coverage must be in (0, 1]; got {coverage!r}")
    g, Lv = _check_pairs(grad_norm, L)
    n = g.size
    m = min(n, max(1, int(math.ceil(cov * n - 1e-9))))
    L0_0, J0 = _envelope_objective(g, Lv, m, np.zeros(1))
    gbar = g.mean()
    if gbar == 0.0:
        return Envelope(float(L0_0[0]), 0.0, float(np.mean(Lv <= L0_0[0])), n)
    pos = g > 0
    hi = min(float(np.max(Lv[pos] / g[pos])), float(J0[0]) / gbar)
    best_L1, best_J = 0.0, float(J0[0])
    if hi > 0:
        grid = np.unique(np.concatenate([np.linspace(0.0, hi, n_grid), np.geomspace(hi * 1e-9, hi, n_grid)]))
        for _ in range(n_refine + 1):
            _, J = _envelope_objective(g, Lv, m, grid)
            i = int(np.argmin(J))
            if J[i] < best_J:
                best_L1, best_J = float(grid[i]), float(J[i])
            lo_, hi_ = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
            if hi_ <= lo_:
                break
            grid = np.linspace(lo_, hi_, n_grid)
    L0 = float(max(np.partition(Lv - best_L1 * g, m - 1)[m - 1], 0.0))
    covered = float(np.mean(Lv <= L0 + best_L1 * g + 1e-12 * (L0 + best_L1 * g)))
    return Envelope(L0, best_L1, covered, n)


class AffineFit(NamedTuple):
    """Result of :func:`fit_affine_ci`: the least-squares line ``L = L0 + L1 g`` and a
    bootstrap confidence interval ``[L1_lo, L1_hi]`` for its slope."""
    L0: float
    L1: float
    L1_lo: float
    L1_hi: float
    level: float
    block: int
    n_points: int


def fit_affine_ci(grad_norm, L, level=0.95, *, n_boot=2000, block=None, seed=0):
    """Least-squares fit ``L_k ~ L0 + L1 g_k`` with a moving-block bootstrap CI for L1.

    The points of one training path are serially correlated (neighbouring iterates are close),
    so the pairs are resampled in blocks of ``block`` consecutive points (in the given order,
    the path order; default ``ceil(sqrt(n))``): ``ceil(n / block)`` block starts are drawn
    uniformly with replacement and the blocks concatenated (cut to n points). The interval
    is the percentile interval of the refitted slopes at the two-sided ``level``. A slope that
    rests on a few points only (one short stretch of the path) is then not significant: the
    resamples that miss that stretch give slopes near or below zero.

    Parameters
    ----------
    grad_norm, L : arrays (n,), in path order
        Gradient norms g_k >= 0 and smoothness estimates L_k >= 0; non-finite pairs are dropped.
    level : float in (0, 1)
    n_boot : int >= 100
    block : int >= 1, optional
    seed : int (the bootstrap's generator, numpy's default_rng)

    Returns
    -------
    AffineFit ``(L0, L1, L1_lo, L1_hi, level, block, n_points)``; L1_lo = L1_hi = NaN when
    fewer than 3 points or all g equal.
    """
    g, Lv = _check_pairs(grad_norm, L)
    try:
        lev = float(level)
    except (TypeError, ValueError):
        raise ValueError(f"level must be a number in (0, 1); got {level!r}") from None
    if not (0.0 < lev < 1.0):
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    if int(n_boot) != n_boot or n_boot < 100:
        raise ValueError(f"n_boot must be an integer >= 100; got {n_boot!r}")
    n = g.size
    b = int(math.ceil(math.sqrt(n))) if block is None else block
    if int(b) != b or b < 1:
        raise ValueError(f"block must be an integer >= 1; got {block!r}")
    b = min(int(b), n)
    if n < 3 or np.ptp(g) == 0:
        L1 = 0.0 if n < 2 or np.ptp(g) == 0 else float(np.polyfit(g, Lv, 1)[0])
        return AffineFit(float(Lv.mean() - L1 * g.mean()), L1, float("nan"), float("nan"), lev, b, n)

    def slope(gs, Ls):                       # rows are samples
        gc = gs - gs.mean(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (gc * Ls).sum(axis=-1) / (gc * gc).sum(axis=-1)
    L1 = float(slope(g, Lv))
    L0 = float(Lv.mean() - L1 * g.mean())
    rng = np.random.default_rng(seed)
    nb = -(-n // b)
    starts = rng.integers(0, n - b + 1, size=(int(n_boot), nb))
    idx = (starts[:, :, None] + np.arange(b)[None, None, :]).reshape(int(n_boot), -1)[:, :n]
    s = slope(g[idx], Lv[idx])
    s = s[np.isfinite(s)]                    # a resample with all g equal has no slope
    lo, hi = np.quantile(s, [(1 - lev) / 2, (1 + lev) / 2])
    return AffineFit(L0, L1, float(lo), float(hi), lev, b, n)


class BinnedSpearman(NamedTuple):
    """Result of :func:`binned_spearman`: Spearman's rho between the bin medians, and the medians."""
    rho: float
    g_median: np.ndarray
    L_median: np.ndarray
    count: np.ndarray


def binned_spearman(grad_norm, L, n_bins=8, min_count=5):
    """Spearman's rho between the medians of L and of g in log-spaced bins of g.

    The range ``[min g, max g]`` (g > 0) is cut into ``n_bins`` equal bins of log g; bins with
    fewer than ``min_count`` points are dropped. Binning weights every stretch of gradient
    norms equally, however long the path lingers there: a long phase in which L changes at an
    almost constant g fills one bin and moves one median, instead of dominating the ranks of
    all points. rho is NaN with fewer than 3 bins left.

    Returns
    -------
    BinnedSpearman ``(rho, g_median, L_median, count)`` over the kept bins, in order of g.
    """
    g, Lv = _check_pairs(grad_norm, L)
    if int(n_bins) != n_bins or n_bins < 3:
        raise ValueError(f"n_bins must be an integer >= 3; got {n_bins!r}")
    if int(min_count) != min_count or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1; got {min_count!r}")
    pos = g > 0
    g, Lv = g[pos], Lv[pos]
    empty = np.empty(0)
    if g.size == 0 or g.min() == g.max():
        return BinnedSpearman(float("nan"), empty, empty, np.empty(0, int))
    edges = np.linspace(np.log(g.min()), np.log(g.max()), int(n_bins) + 1)
    k = np.clip(np.searchsorted(edges, np.log(g), side="right") - 1, 0, int(n_bins) - 1)
    cnt = np.bincount(k, minlength=int(n_bins))
    keep = np.nonzero(cnt >= min_count)[0]
    gm = np.array([np.median(g[k == i]) for i in keep])
    Lm = np.array([np.median(Lv[k == i]) for i in keep])
    if keep.size < 3:
        return BinnedSpearman(float("nan"), gm, Lm, cnt[keep])
    from scipy.stats import spearmanr
    return BinnedSpearman(float(spearmanr(gm, Lm)[0]), gm, Lm, cnt[keep])
