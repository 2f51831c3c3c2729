"""Rare events: the probability that clipped SGD ever moves (or its noise ever grows) beyond a radius.

:func:`exceedance` estimates ``P(max_{s<=T} Q_s >= r)`` for an increasing array of radii r in one
run, where Q is the displacement ``||theta_s - theta_0||`` or the norm of the martingale noise
``||xi_s||`` (:func:`dynclip.simulate`'s ``track_noise``), by

* ``method="mc"``: plain Monte Carlo over independent replicas, with Clopper-Pearson intervals.
  Cheap for probabilities down to ~10 / n_particles, blind below 1 / n_particles.
* ``method="splitting"``: adaptive multilevel splitting (AMS; Cérou & Guyader 2007) in the
  unbiased generalised form of Bréhier, Gazeau, Goudenège, Lelièvre & Rousset (2016), on the
  path functional ``max_s Q_s``. Its relative error grows like ``sqrt(-ln p / N)`` instead of
  ``sqrt(1 / (N p))``: probabilities of 1e-10 and below cost a few hundred times the run of N
  replicas (:meth:`RareResult.mc_cost_ratio` gives the saving against plain Monte Carlo).

How the splitting runs (and why it is unbiased). The N particles (replicas) run in ``n_chunks``
chunks of steps (chunks of equal noise variance sum a(t)^2: short where the step size is large), and
the whole engine state of every particle is stored at each chunk boundary. The chain Y_m = (state at
the m-th boundary) is a Markov chain; its state holds the running maximum ``M = max_{s<=k} Q_s``. For
each radius r, generalised AMS runs on this chain with the importance function

    xi_r(Y_m) = r                                      if M >= r,
                r - (r - Q) / sqrt(1 - V(k_m) / V(T))  otherwise,   V(k) = sum_{t<k} a(t)^2,

the starting point that would have the same chance of reaching r if Q were a walk with step
variance ~ a(t)^2 (-inf at the end of the run). A path's score ``max_m xi_r(Y_m)`` is >= r exactly
when ``max_{s<=T} Q_s >= r``. (The running maximum itself is a poor importance function on a fixed
horizon: it ranks a path that reached a level at the last step with one that reached it at the
first; measured on the two-point walk, its splitting estimates at p = 1e-9 spread over two orders of
magnitude and often died out, while this one matches the theory's spread.) Each iteration q takes the
level Z_q = the n_kill-th smallest score, kills *every* particle with score <= Z_q (ties included,
as Bréhier et al. prescribe; K_q >= n_kill particles), and replaces each by a clone of a survivor
chosen uniformly: the clone starts from the survivor's stored state at the first boundary where its
importance exceeded Z_q (so the clone's score is > Z_q too) and continues with fresh randomness. It
stops when Z_q >= r, with the estimate

    p(r) = prod_q (1 - K_q / N)  x  #{particles with score >= r} / N,

unbiased for any importance function and any chunking (Bréhier et al. 2016). The first
generation (N replicas of T steps) is shared by all radii; each radius then runs its own iterations.
A clone shares up to one chunk of steps past the crossing with its parent (the chunk length is the
price of storing n_chunks states instead of n_steps): a little variance, no bias.

A clone's random stream is ``SeedSequence(seed, spawn_key=(i, q, j))`` (radius i, iteration q, slot
j), the survivors are drawn from ``SeedSequence(seed, spawn_key=(i, q, N))``, and the first
generation are the replicas of ``simulate(..., seed=seed)``: the result depends on the seed only,
bit for bit, for any number of threads.

Errors. The relative variance of the splitting estimate is the fixed-level formula of Cérou,
Del Moral, Furon & Guyader (2012) along the levels actually used,
``sum_q (1 - s_q) / (N s_q) + (1 - f) / (N f)`` with s_q = 1 - K_q / N the survival fraction of
iteration q and f the final fraction; without ties and with n_kill = 1 it is ``-ln p / N``, the
exact idealised value of Bréhier, Lelièvre & Rousset (2015) to first order. The 95 % interval is
log-normal: ``p exp(+-1.96 s)`` with ``s^2 = ln(1 + relative variance)`` (the log of the estimate
is a sum of many nearly independent stage terms).

Also: :func:`bound_lambda` and :func:`valid_bounds` say which bounds of :mod:`dynclip.bounds` hold
for a rule (and with which lambda), and :func:`walk_max_tail` gives the exact law of the maximum of
a Rademacher walk with steps +-a(t), the two-point problem's answer (:mod:`dynclip.data`).
"""
from dataclasses import dataclass, field
import math

import numpy as np

from . import bounds as _bounds
from . import _console
from ._jit import njit
from ._kernels import A_MAXDISP, A_MAXNOISE, S_RUNNING
from .checks import check_choice, check_int, check_real, check_seed, describe, check_net, check_positive
from .clipping import check_exact_H, check_rule
from .optimizers import check_optimizer
from .results import FORMAT, atomic_savez, header_field, read_npz, _layout
from .schedules import check_schedule

__all__ = ["exceedance", "RareResult", "bound_lambda", "valid_bounds", "walk_max_tail", "rademacher_sum_law"]

QUANTITIES = ("displacement", "noise")
METHODS = ("splitting", "mc")
#: memory for the per-particle states stored at the chunk boundaries of a splitting run
_SNAPSHOT_BYTES = 256 * 2 ** 20
Z95 = 1.959963984540054


@dataclass(frozen=True, eq=False)
class RareResult:
    """Outcome of :func:`exceedance`: ``probability[i]`` estimates P(max_{s<=T} Q_s >= radius[i]).

    Attributes
    ----------
    radius, probability, std_error, ci_low, ci_high : (n_r,) the radii, the estimates, their
        standard errors and 95 % confidence intervals (Clopper-Pearson for ``"mc"``, log-normal
        around the theory's relative variance for ``"splitting"``, see :mod:`dynclip.rare`)
    n_model_steps : int, SGD steps simulated (the cost)
    method : "splitting" or "mc"
    levels, n_killed : splitting only: the level Z_q and the number of particles killed at each
        iteration, the radii one after the other (``config["n_iterations"]`` per radius; empty for "mc")
    config : dict describing the run
    """
    radius: np.ndarray
    probability: np.ndarray
    std_error: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_model_steps: int
    method: str
    levels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_killed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    config: dict = field(default_factory=dict)

    @property
    def relative_error(self):
        """std_error / probability (NaN where the probability is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.probability > 0, self.std_error / self.probability, np.nan)

    def mc_steps(self):
        """SGD steps plain Monte Carlo needs for this result's relative error at each radius:
        ``(1 - p) / (p e^2)`` replicas of ``n_steps`` steps (NaN where p = 0)."""
        p, e = self.probability, self.relative_error
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(p > 0, (1 - p) / (p * e ** 2), np.nan) * self.config["n_steps"]

    def mc_cost_ratio(self):
        """:meth:`mc_steps` / ``n_model_steps``: how many times cheaper than plain Monte Carlo."""
        return self.mc_steps() / self.n_model_steps

    def __repr__(self):
        c = self.config
        lines = [f"RareResult ({self.method}, {c.get('n_particles', '?')} particles, {c.get('n_steps', '?')} steps, "
                 f"{self.n_model_steps} SGD steps): P(max_s {c.get('quantity', 'Q')} >= r)"]
        for r, p, lo, hi in zip(self.radius, self.probability, self.ci_low, self.ci_high):
            lines.append(f"  r = {r:<10.4g} P = {p:.3e}  (95 % CI {lo:.3e} .. {hi:.3e})")
        return "\n".join(lines)

    def save(self, path):
        """Write to ``path`` (.npz with a JSON header; atomic; no pickle)."""
        arrays = dict(radius=self.radius, probability=self.probability, std_error=self.std_error,
                      ci_low=self.ci_low, ci_high=self.ci_high, levels=self.levels, n_killed=self.n_killed)
        atomic_savez(path, arrays, {"format": "RareResult", "version": FORMAT,
                                    "shape": {"R": int(self.radius.size), "Q": int(self.levels.size)},
                                    "n_model_steps": int(self.n_model_steps), "method": str(self.method),
                                    "config": self.config})

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save` (every array's dtype and shape checked; no pickle)."""
        def layout(meta, members):
            header_field(meta, "config", dict, None)
            header_field(meta, "n_model_steps", int, None)
            if header_field(meta, "method", str, None) not in METHODS:
                raise ValueError(f"header field 'method' must be one of {METHODS}")
            spec = {name: ("f8", "R", True) for name in ("radius", "probability", "std_error", "ci_low", "ci_high")}
            spec.update(levels=("f8", "Q", True), n_killed=("i8", "Q", True))
            return _layout(spec, meta, members, {})

        arrays, meta = read_npz(path, "RareResult", layout)
        return cls(n_model_steps=meta["n_model_steps"], method=meta["method"], config=meta["config"], **arrays)


def _check_radius(radius):
    try:
        r = np.array(radius, dtype=np.float64, ndmin=1)
    except (TypeError, ValueError):
        raise ValueError(f"radius must be an increasing array of numbers > 0; got {describe(radius)}") from None
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)) or np.any(r <= 0) or np.any(np.diff(r) <= 0):
        raise ValueError(f"radius must be a non-empty, strictly increasing 1-D array of finite numbers > 0; "
                         f"got {describe(radius)}")
    return r


def exceedance(net, X, Y, rule, schedule, *, n_steps, radius, seed, quantity="displacement", method="splitting",
               n_particles=1000, theta0=None, batch_size=1, loss="mse", clip_per="batch", optimizer=None,
               progress=None, n_kill=None, n_chunks=100, min_probability=1e-30):
    """Estimate ``P(max_{s<=T} Q_s >= r)`` for every radius r, T = ``n_steps``, in one run.

    Parameters
    ----------
    net, X, Y, rule, schedule, n_steps, seed, theta0, batch_size, loss, clip_per, optimizer
        As in :func:`dynclip.simulate` (``theta0`` (P,) or (n_particles, P); default: each
        replica's own random init).
    radius : array_like (n_r,)
        Strictly increasing radii > 0.
    quantity : {"displacement", "noise"}
        Q_s = ||theta_s - theta_0||, or ||xi_s|| (the martingale noise sum; needs an exactly
        computable mean field H, as ``simulate(track_noise=True)``: batch_size 1,
        clip_per="sample", or a rule whose H is exact at any batch size).
    method : {"splitting", "mc"}
        Adaptive multilevel splitting or plain Monte Carlo (see :mod:`dynclip.rare`).
    n_particles : int
        Replicas (Monte Carlo) or particles (splitting, >= 2).
    progress : bool or None
        Progress bar (None: on a terminal only).
    n_kill : int, optional
        Splitting: particles killed per iteration at least (ties kill more); default
        ``max(1, n_particles // 10)``. n_kill = 1 is the classic last-particle algorithm (lowest
        variance, one clone per iteration, no parallelism); a tenth of the particles costs ~5 %
        more variance and runs the clones of an iteration in parallel.
    n_chunks : int
        Splitting: states stored per particle (clones start at a chunk boundary); at most n_steps,
        and at most what 256 MiB of stored states allow (fewer chunks: a little more variance).
    min_probability : float
        Splitting: stop once the product of survival fractions falls below it; radii not reached
        by then get probability 0 with ``ci_high`` = that product (std_error NaN).

    Returns
    -------
    RareResult
    """
    r = _check_radius(radius)
    quantity = check_choice("quantity", quantity, QUANTITIES)
    method = check_choice("method", method, METHODS)
    N = check_int("n_particles", n_particles, lo=2 if method == "splitting" else 1)
    seed = check_seed(seed)
    n_steps = check_int("n_steps", n_steps)
    rule = check_rule(rule)
    B = check_int("batch_size", batch_size)
    clip_per = check_choice("clip_per", clip_per, ("batch", "sample"))
    noise = quantity == "noise"
    if noise:       # the condition of simulate's track_noise
        check_exact_H(rule, B, clip_per, "quantity='noise'", " (or quantity='displacement')")
    n_kill = max(1, N // 10) if n_kill is None else check_int("n_kill", n_kill, lo=1, hi=max(1, N - 1))
    n_chunks = check_int("n_chunks", n_chunks)
    pmin = check_real("min_probability", min_probability, "a number in (0, 1)", lambda x: 0 < x < 1)
    kw = dict(n_steps=n_steps, seed=seed, batch_size=B, loss=loss, clip_per=clip_per, optimizer=optimizer)
    config = dict(quantity=quantity, method=method, n_particles=N, n_steps=n_steps, seed=seed,
                  rule_name=rule.describe(), schedule_name=check_schedule(schedule).describe(), batch_size=B,
                  clip_per=clip_per, loss_name=str(loss), optimizer_name=check_optimizer(optimizer).describe())
    if method == "mc":
        return _monte_carlo(net, X, Y, rule, schedule, theta0, r, N, noise, progress, kw, config)
    config.update(n_kill=n_kill, min_probability=pmin)
    return _splitting(net, X, Y, rule, schedule, theta0, r, N, noise, progress, n_kill, n_chunks, pmin, kw, config)


def _monte_carlo(net, X, Y, rule, schedule, theta0, r, N, noise, progress, kw, config):
    from .engine import simulate
    res = simulate(net, X, Y, rule, schedule, n_replicas=N, theta0=theta0, track_noise=noise,
                   record_every=kw["n_steps"], progress=progress, **kw)
    S = _finite_or_inf(res.max_noise if noise else res.max_displacement)
    k = (S[None, :] >= r[:, None]).sum(axis=1)
    p = k / N
    lo, hi = _bounds.clopper_pearson(k, N)
    return RareResult(radius=r, probability=p, std_error=np.sqrt(p * (1 - p) / N), ci_low=np.asarray(lo, float),
                      ci_high=np.asarray(hi, float), n_model_steps=N * kw["n_steps"], method="mc", config=config)


def _finite_or_inf(S):
    """Scores: a replica whose Q became NaN or inf (it diverged) exceeds every radius."""
    S = np.array(S, dtype=np.float64)
    S[~np.isfinite(S)] = np.inf
    return S


def _splitting(net, X, Y, rule, schedule, theta0, r, N, noise, progress, n_kill, n_chunks, pmin, kw, config):
    from . import engine
    T = kw["n_steps"]
    run = engine._prepare(net, X, Y, rule, schedule, n_replicas=N, indices=None, project_radius=np.inf,
                          record_every=T, record_theta=False, track_noise=noise, blowup_radius=np.inf,
                          nonfinite="stop", progress=False, checkpoint=None, checkpoint_every=None, resume=None,
                          reference=None, replica_start=0, **kw)
    st, _ = engine._initial_state(run, theta0)
    row_bytes = sum(a[0].nbytes for a in st.values())
    n_b = max(1, min(T, n_chunks, _SNAPSHOT_BYTES // (2 * N * row_bytes) - 1))
    a2 = np.concatenate(([0.0], np.cumsum(check_schedule(schedule).values(0, T) ** 2)))
    kb = _boundaries(a2, n_b)
    n_b = kb.size - 1
    # remaining share of the noise variance at each boundary: the time term of the importance function
    rem = np.maximum(0.0, 1.0 - a2[kb] / a2[-1]) if a2[-1] > 0 else np.zeros(n_b + 1)
    first = {name: np.empty((N, n_b + 1) + a.shape[1:], a.dtype) for name, a in st.items()}
    sys_ = _System(run, engine, first, kb, rem, A_MAXNOISE if noise else A_MAXDISP, noise)
    sys_.store(np.arange(N), 0, st)
    bar = _console.bar(progress, T * N * r.size > 1e6, total=r.size, unit="radius", desc="splitting", leave=False)
    out = np.zeros((4, r.size))
    levels, killed, n_iter = [], [], np.zeros(r.size, dtype=np.int64)
    try:
        for b in range(n_b):
            engine._advance(run, st, kb[b], kb[b + 1])
            sys_.store(np.arange(N), b + 1, st)
        cost = N * T
        for i_r, rr in enumerate(r):
            snap = first if i_r == r.size - 1 else {name: a.copy() for name, a in first.items()}
            est, lv, kl, c = _gams(sys_, snap, rr, i_r, N, n_kill, pmin, kw["seed"])
            out[:, i_r] = est
            levels += lv
            killed += kl
            n_iter[i_r] = len(lv)
            cost += c
            if bar is not None:
                bar.update_to(i_r + 1)
    finally:
        if bar is not None:
            bar.close()
    config.update(n_chunks=n_b, n_iterations=n_iter.tolist())
    return RareResult(radius=r, probability=out[0], std_error=out[1], ci_low=out[2], ci_high=out[3],
                      n_model_steps=int(cost), method="splitting", levels=np.asarray(levels, dtype=np.float64),
                      n_killed=np.asarray(killed, dtype=np.int64), config=config)


class _System:
    """The particles of a splitting run: their states at the chunk boundaries (``snap[name]``, (N, n_b + 1, ...))
    and what is computed from them."""

    def __init__(self, run, engine, snap, kb, rem, col, noise):
        self.run, self.engine, self.kb, self.rem, self.col, self.noise = run, engine, kb, rem, col, noise
        self.snap = snap
        self.n_b = kb.size - 1

    def store(self, rows, b, sub, snap=None):
        for name, a in sub.items():
            (snap or self.snap)[name][rows, b] = a

    def importance(self, snap, r, rows, b, Mb):
        """``Mb[rows, b]``: running max over the boundaries m <= b of the importance function for target r:
        r once the running max of Q reached r, else r - (r - Q_m) / sqrt(share of the noise variance still
        to come) (the start point with the same chance of reaching r, for a walk with steps of variance
        ~ a(t)^2; -inf at the last boundary). A path's score is >= r iff max_s Q_s >= r."""
        M = _finite_or_inf(snap["acc"][rows, b, self.col])
        Q = _finite_or_inf(np.linalg.norm(snap["xi"][rows, b] if self.noise else
                                          snap["theta"][rows, b] - snap["theta0"][rows, b], axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(M >= r, r, r - (r - Q) / math.sqrt(self.rem[b]) if self.rem[b] > 0 else -np.inf)
        Mb[rows, b] = x if b == 0 else np.maximum(Mb[rows, b - 1], x)

    def scores(self, snap, r):
        N = snap["theta"].shape[0]
        Mb = np.empty((N, self.n_b + 1))
        every = np.arange(N)
        for b in range(self.n_b + 1):
            self.importance(snap, r, every, b, Mb)
        return Mb


def _gams(sys_, snap, r, i_r, N, n_kill, pmin, seed):
    """Generalised AMS for P(max_s Q_s >= r) from the stored first generation ``snap`` (modified in place).

    Returns ((p, std_error, ci_low, ci_high), levels, numbers killed, SGD steps spent)."""
    T, n_b, kb = sys_.run.n_steps, sys_.n_b, sys_.kb
    Mb = sys_.scores(snap, r)
    S = Mb[:, n_b].copy()
    logw, var, cost = 0.0, 0.0, 0
    levels, killed = [], []
    q = 0
    while True:
        Z = np.partition(S, n_kill - 1)[n_kill - 1]
        if Z >= r:                                   # the level reached r: at least N - n_kill + 1 particles did
            f = np.mean(S >= r)
            rv = var + (1 - f) / (N * f)
            p = math.exp(logw) * f
            s = math.sqrt(math.log1p(rv))
            return (p, p * math.sqrt(rv), p * math.exp(-Z95 * s), p * math.exp(Z95 * s)), levels, killed, cost
        dead = np.flatnonzero(S <= Z)
        K = dead.size
        levels.append(float(Z))
        killed.append(K)
        if K == N or logw + math.log1p(-K / N) < math.log(pmin):
            # every particle tied at the top (no particle can go on), or the budget of levels is spent
            upper = math.exp(logw) * (1 - 0.025 ** (1 / N)) if K == N else math.exp(logw)
            return (0.0, 0.0 if K == N else np.nan, 0.0, upper), levels, killed, cost
        logw += math.log1p(-K / N)
        var += K / (N * (N - K))
        alive = np.flatnonzero(S > Z)
        pick = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(i_r, q, N))))
        parent = alive[pick.integers(0, alive.size, size=K)]
        start = np.argmax(Mb[parent] > Z, axis=1)          # first boundary past the level
        cost += int(np.sum(T - kb[start]))
        fresh = np.array([np.random.SeedSequence(seed, spawn_key=(i_r, q, int(j))).generate_state(1, np.uint64)[0]
                          for j in dead], dtype=np.uint64)
        _clone(sys_, snap, Mb, r, dead, parent, start, fresh)
        S[dead] = Mb[dead, n_b]
        q += 1


def _boundaries(a2, n_b):
    """Chunk boundaries (steps 0 .. T): ``n_b`` chunks of equal noise variance (equal increments of the
    running sum a2 of a(t)^2), so a decreasing schedule gets short chunks early, where most of the
    randomness is; rounding merges chunks shorter than a step."""
    T = a2.size - 1
    k = np.searchsorted(a2, np.linspace(0.0, a2[-1], n_b + 1), side="left")
    return np.unique(np.concatenate(([0], np.clip(k, 0, T), [T]))).astype(np.int64)


def _clone(sys_, snap, Mb, r, dead, parent, start, fresh):
    """Slots ``dead`` become clones of ``parent`` from boundary ``start`` on, with the random streams
    ``fresh``; the clones run together, each joining when the chunk loop reaches its start."""
    K, n_b, kb = dead.size, sys_.n_b, sys_.kb
    sub = {name: np.zeros((K,) + a.shape[2:], a.dtype) for name, a in snap.items()}
    sub["status"][:, S_RUNNING] = 0                          # not started yet: the kernel leaves the row alone
    for name, a in snap.items():                     # the shared past (below the level: never a start again)
        a[dead] = a[parent]
    Mb[dead] = Mb[parent]
    for b in range(int(start.min()), n_b + 1):
        join = np.flatnonzero(start == b)
        if join.size:
            for name, a in sub.items():
                a[join] = snap[name][dead[join], b]
            sub["rng"][join] = fresh[join]
            snap["rng"][dead[join], b] = fresh[join]
        if b == n_b:
            break
        sys_.engine._advance(sys_.run, sub, kb[b], kb[b + 1])
        on = np.flatnonzero(start <= b)
        sys_.store(dead[on], b + 1, {name: a[on] for name, a in sub.items()}, snap)
        sys_.importance(snap, r, dead[on], b + 1, Mb)


# ----------------------------------------------------------------------------------------------
# which bounds hold
# ----------------------------------------------------------------------------------------------
def bound_lambda(rule, net, *, project_radius=np.inf):
    """A sure bound L on the norm of the clipped update, ``||u_k|| <= L`` at every step, and why.

    Returns ``(L, why)``, with L None when no such bound exists. The noise bounds of
    :mod:`dynclip.bounds` (Pinelis, coordinate union, Pinelis-Bennett) hold with ``lam = L``
    (||a M|| <= 2 L a), for any optimiser (the noise xi is built from the clipped update).

    * classic(lam): L = lam (the torch convention gives slightly less);
    * normalized(beta): ||u|| = ||g|| / (||g|| + beta) < 1, L = 1;
    * value(v): |u_i| <= v, L = v sqrt(P);
    * adaptive / layerwise / unitwise: the threshold grows with ||theta||; bounded only with a
      projection onto ||theta|| <= rho (``project_radius``): L = lam max(rho, eps) (adaptive),
      lam sqrt(rho^2 + n eps^2) with n the number of layers (layerwise) or units (unitwise);
    * none, alrc (clips losses, not gradients): no bound.
    """
    rule = check_rule(rule)
    check_net(net)
    rho = check_positive("project_radius", project_radius, allow_inf=True)
    name = rule.name
    if name == "classic":
        return rule.lam, f"classic clipping: ||u|| <= lam = {rule.lam:g}"
    if name == "normalized":
        return 1.0, "normalized gradient: ||u|| = ||g|| / (||g|| + beta) < 1"
    if name == "value":
        P = net.n_params
        return rule.lam * math.sqrt(P), f"element-wise clamp: |u_i| <= v, so ||u|| <= v sqrt(P) (P = {P})"
    if name in ("adaptive", "layerwise", "unitwise"):
        if not rho < math.inf:
            return None, (f"{name} clipping: the threshold lam max(||theta||, eps) grows with theta; no sure "
                          "bound without a projection (project_radius)")
        n = {"adaptive": 0, "layerwise": len(net.widths) - 1, "unitwise": int(sum(net.widths[1:]))}[name]
        L = rule.lam * max(rho, rule.eps) if n == 0 else rule.lam * math.sqrt(rho ** 2 + n * rule.eps ** 2)
        return L, f"{name} clipping with ||theta|| <= rho = {rho:g}: ||u|| <= {L:.4g}"
    if name == "none":
        return None, "no clipping: the update is unbounded"
    if name == "alrc":
        return None, "alrc clips per-example losses, not gradients: the update is unbounded"
    return None, f"no sure bound on the update is known to dynclip for {name} clipping"


def valid_bounds(rule, net, schedule, n_steps, radius, *, quantity="noise", optimizer=None, project_radius=np.inf,
                 noise_dim=None):
    """Every bound of :mod:`dynclip.bounds` that holds for ``P(max_{s<=T} Q_s >= r)``, capped at 1.

    Returns ``{name: (n_r,) array}`` (empty when none holds), with L from :func:`bound_lambda`,
    Sigma_2 = sum a^2 and A(T) = sum a over the n_steps steps:

    * ``quantity="noise"``: "pinelis", "coordinate_union" (d = ``noise_dim``, default P),
      "pinelis_bennett", and "azuma" when the noise moves in one coordinate (``noise_dim=1``);
    * ``quantity="displacement"``: "sure" = 1 for r <= L A(T), 0 beyond (SGD without weight decay
      only: ||theta_s - theta_0|| <= L A(s) surely). The noise bounds do not hold for the
      displacement, which also carries the drift sum a H(theta).
    """
    quantity = check_choice("quantity", quantity, QUANTITIES)
    r = _check_radius(radius)
    n_steps = check_int("n_steps", n_steps)
    a = check_schedule(schedule).values(0, n_steps)
    L, _ = bound_lambda(rule, net, project_radius=project_radius)
    if L is None:
        return {}
    if quantity == "displacement":
        opt = check_optimizer(optimizer)
        if opt.kind != 0 or opt.weight_decay != 0:
            return {}
        return {"sure": np.where(r <= L * a.sum(), 1.0, 0.0)}
    d = net.n_params if noise_dim is None else check_int("noise_dim", noise_dim)
    s2 = float(np.sum(a * a))
    out = {"pinelis": _bounds.pinelis(r, L, s2), "coordinate_union": _bounds.coordinate_union(r, d, L, s2),
           "pinelis_bennett": _bounds.pinelis_bennett(r, L, s2, float(a.max()))}
    if d == 1:
        out["azuma"] = _bounds.azuma(r, L, s2)
    return {k: np.asarray(_bounds.clip_prob(v), dtype=np.float64) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------
# exact answers: the maximum of a Rademacher walk
# ----------------------------------------------------------------------------------------------
@njit
def _walk_law(a, h, m):
    """Law of the walk X_s = sum_{t<s} a(t) eps_t on the grid j h, each +-a step split linearly between
    the two neighbouring grid shifts (keeps every mean; exact when every a(t) is a multiple of h),
    with the mass at |j| >= m absorbed after each step. Returns (masses at j = -n..n, absorbed mass)."""
    n = int(np.sum(np.floor(a / h) + 1.0)) + 1            # reach of the support, in grid units
    p = np.zeros(2 * n + 1)
    q = np.zeros(2 * n + 1)
    p[n] = 1.0
    reach = 0
    gone = 0.0
    for t in range(a.shape[0]):
        k = a[t] / h
        k0 = int(np.floor(k + 1e-9))
        f = max(k - k0, 0.0)
        new = min(reach + k0 + 1, n)
        for i in range(n - new, n + new + 1):
            q[i] = 0.0
        for i in range(n - reach, n + reach + 1):
            w = p[i]
            if w == 0.0:
                continue
            w0 = 0.5 * (1.0 - f) * w
            w1 = 0.5 * f * w
            q[i + k0] += w0
            q[i - k0] += w0
            if w1 != 0.0:
                q[i + k0 + 1] += w1
                q[i - k0 - 1] += w1
        for i in range(n - new, n + new + 1):
            if abs(i - n) >= m:
                gone += q[i]
                p[i] = 0.0
            else:
                p[i] = q[i]
        reach = new
    return p, gone


def walk_max_tail(a, radius, *, h=None):
    """``P(max_{s<=T} |X_s| >= r)`` for the walk ``X_s = sum_{t<s} a(t) eps_t`` with fair signs eps_t.

    Exact (to rounding) when every a(t) is a multiple of the grid step ``h``, e.g. a constant step
    (default h = a(0) then); otherwise each step is split between the two nearest grid shifts
    (mean kept, variance + <= h^2/4 per step), an error of order h: compare two grids. This is the
    two-point problem's answer: ``mlp([1, 1])`` on ``data.two_point()`` with ``loss="mse"``, classic
    lambda = 1 and theta_0 = (w, 5) moves b by -a(k) sign(b - y_k) while b stays in (0.5, 9.5), so
    max_s |theta_s - theta_0| and max_s |X_s| agree for r <= 4.5.

    Parameters
    ----------
    a : array_like (T,)
        Step sizes > 0.
    radius : array_like
        Strictly increasing radii > 0.
    h : float, optional
        Grid step (default: a(0) if all steps are equal, else min(a) / 200).
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"a must be a non-empty 1-D array of step sizes > 0; got {describe(a)}")
    r = _check_radius(radius)
    if h is None:
        h = float(a[0]) if np.all(a == a[0]) else float(a.min()) / 200
    h = check_positive("h", h)
    out = np.empty(r.size)
    for i, rr in enumerate(r):
        m = int(math.ceil(rr / h - 1e-9))                 # |X| >= r  <=>  |j| >= m on the grid
        out[i] = _walk_law(a, h, m)[1]
    return out


def rademacher_sum_law(a, h):
    """Grid masses (j = -n..n, spacing h) of ``X_T = sum_t a(t) eps_t`` at the final time (no absorption;
    each step split between the two nearest grid shifts, as in :func:`walk_max_tail`)."""
    return _walk_law(np.asarray(a, dtype=np.float64), float(h), 2 ** 62)[0]
