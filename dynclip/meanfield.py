"""The mean field H(theta) that clipped SGD tracks (Ramaswamy eqs. 20-21), and the clipping bias.

Sampling is uniform over the finite data set, so for per-sample clipping (and for batch
size 1) ``H(theta) = (1/N) sum_j u(theta; z_j)`` is computed exactly, with the same
per-sample gradient and the same clipping ``apply`` as the engine. For minibatch clipping
with B > 1 the expectation over all N**B minibatches is not tractable; :func:`H` then
returns a deterministic Monte-Carlo estimate over ``n_batches`` frozen minibatches drawn
with ``seed`` (documented as an estimate, with its standard error available from
:func:`H_batch_estimate`).

ALRC: its running moments (mu1, mu2) are constant-gain averages, the fast variables of a
two-timescale system, so under decreasing steps the loss cap tracks a function of theta and
the slow dynamics is governed by H at a frozen cap. :func:`H` therefore takes the cap
``lmax`` (default: from the rule's starting moments) instead of integrating an ODE on the
extended state (theta, mu1, mu2); with the cap frozen, H is the gradient of the log-capped
loss E psi(L) (a true gradient field, unlike per-sample norm clipping).

H is the mean field of clipped *SGD* (``simulate``'s default optimiser); momentum and Adam
(:mod:`dynclip.optimizers`) are not described by it. Weight decay mu after clipping
(``optimizers.sgd(weight_decay=mu)``: ``theta -= a (u + mu theta)``) has the mean field
``H_mu(theta) = H(theta) + mu theta``: :func:`H`, :func:`grad_F`, :func:`F`, :func:`find_equilibrium`
and :mod:`dynclip.ode` take ``weight_decay=mu`` (grad F_mu = grad F + mu theta, F_mu = F + (mu/2)||theta||^2;
the term enters through :func:`decay_term` only).

:func:`find_equilibrium` finds a zero of H by Newton's method and certifies it: converged to
machine precision and every eigenvalue of the Jacobian DH there has a positive real part (an
isolated, exponentially stable equilibrium of the flow theta' = -H(theta)).

The fluctuations of SA around the flow (:mod:`dynclip.diffusion`) need two more matrices, both
exact where H is: the Jacobian :func:`jacobian` = DH(theta) and the covariance of the update
:func:`noise_covariance` = Cov[u(theta; minibatch)], from the same per-sample clipped updates
(:func:`per_sample_updates`) as H.
"""
from dataclasses import dataclass
import math

import numpy as np

from ._jit import njit, run_rows
from ._kernels import mean_field, minibatch_update, sample_update, N_ACC, Data, Net
from .clipping import capabilities, check_exact_H, check_rule, exact_H, alrc_lmax
from .model import make_workspace, full_loss_grad, forward, losses_and_dout, sample_norms, EVAL_BLOCK
from .checks import (check_net, check_data, check_theta, as_float_array, check_int, check_real, check_fraction,
                     check_choice, check_seed)
from .engine import CLIP_PER
from .optimizers import check_weight_decay


@njit
def decay_term(theta, wd, out):
    """The weight-decay part of the mean field and of the loss: ``out += wd theta`` (the gradient of
    (wd/2)||theta||^2); returns (wd/2)||theta||^2. Nothing for wd = 0."""
    if wd == 0.0:
        return 0.0
    s = 0.0
    for i in range(theta.shape[0]):
        out[i] += wd * theta[i]
        s += theta[i] * theta[i]
    return 0.5 * wd * s


@njit
def drift(theta, widths, offs, act, lossk, X, Y, rule, lmax, wd, wsE, rowsE, ws1, rows1, tmp, out):
    """H_mu(theta) = H(theta) + wd theta into ``out``: the exact mean field of clipped SGD with weight
    decay wd applied after clipping (the field of :func:`H`, :func:`find_equilibrium` and the ODE)."""
    mean_field(theta, widths, offs, act, lossk, X, Y, rule, lmax, wsE, rowsE, ws1, rows1, tmp, out)
    decay_term(theta, wd, out)


def _thetas(net, theta):
    th = as_float_array(theta, "theta", "a float array of shape (P,) or (M, P)")
    single = th.ndim == 1
    th2 = check_theta(net, th.reshape(-1, net.n_params) if th.ndim == 2 and th.shape[-1] == net.n_params else th,
                      "theta", rows=th.shape[0] if th.ndim == 2 else None)
    return np.ascontiguousarray(th2.reshape(-1, net.n_params)), single


def _lmax(rule, lmax):
    if lmax is not None:
        lmax = check_real("lmax", lmax, "a number >= 0 (inf: never clip)", lambda x: x >= 0)
    if not capabilities(rule).clips_losses:
        return np.inf
    if lmax is None:
        return float(alrc_lmax(rule, rule.mu1, rule.mu2))
    return lmax


@njit
def _H_rows(lo, hi, thetas, widths, offs, act, lossk, X, Y, rule, lmax, wd, out):
    P = thetas.shape[1]
    nE = min(EVAL_BLOCK, X.shape[0])
    ws1 = make_workspace(widths, 1)
    wsE = make_workspace(widths, nE)
    rows1 = np.zeros(1, dtype=np.int64)
    rowsE = np.zeros(nE, dtype=np.int64)
    tmp = np.zeros(P)
    for m in range(lo, hi):
        drift(thetas[m], widths, offs, act, lossk, X, Y, rule, lmax, wd, wsE, rowsE, ws1, rows1, tmp, out[m])


@njit
def _gradF_rows(lo, hi, thetas, widths, offs, act, lossk, X, Y, wd, out, losses):
    nE = min(EVAL_BLOCK, X.shape[0])
    ws = make_workspace(widths, nE)
    rows = np.zeros(nE, dtype=np.int64)
    for m in range(lo, hi):
        losses[m] = full_loss_grad(thetas[m], widths, offs, act, lossk, X, Y, ws, rows, out[m])
        if wd != 0.0:
            losses[m] += decay_term(thetas[m], wd, out[m])


#: below this many points the serial kernels run: a parallel launch costs more than the work
#: on small problems (and much more when the other core is busy)
SERIAL_BELOW = 4


@njit
def _H_batch_rows(lo, hi, thetas, widths, offs, act, lossk, X, Y, rule, batches, out, out_sq):
    P = thetas.shape[1]
    nb, B = batches.shape
    net = Net(widths, offs, act)
    data = Data(X, Y, lossk, np.zeros((0, 0, 0), dtype=np.int64))
    for m in range(lo, hi):
        ws = make_workspace(widths, B)
        ws1 = make_workspace(widths, 1)
        rows1 = np.zeros(1, dtype=np.int64)
        g = np.zeros(P)
        u = np.zeros(P)
        tmp = np.zeros(P)
        acc = np.zeros((1, N_ACC))
        out[m, :] = 0.0
        out_sq[m] = 0.0
        for s in range(nb):
            w = minibatch_update(thetas[m], net, data, rule, B, False, np.inf, batches[s], ws, ws1, rows1, g, u, tmp,
                                 acc, 0).scale
            if w > 0.0:     # a scalar rule: the update is w g
                for i in range(P):
                    u[i] = w * g[i]
            sq = 0.0
            for i in range(P):
                out[m, i] += u[i] / nb
                sq += u[i] * u[i]
            out_sq[m] += sq / nb


@njit
def _sample_norm_rows(lo, hi, thetas, widths, offs, act, lossk, X, Y, out):
    N = X.shape[0]
    nE = min(EVAL_BLOCK, N)
    for m in range(lo, hi):
        ws = make_workspace(widths, nE)
        rows = np.zeros(nE, dtype=np.int64)
        nrm = np.zeros(nE)
        for s in range(0, N, nE):
            nb = min(nE, N - s)
            for b in range(nb):
                rows[b] = s + b
            forward(thetas[m], widths, offs, act, X, rows, nb, ws)
            losses_and_dout(widths, lossk, Y, rows, nb, ws)
            sample_norms(thetas[m], widths, offs, act, nb, ws, nrm)
            for b in range(nb):
                out[m, s + b] = nrm[b]


def H(net, X, Y, rule, theta, loss="mse", *, batch_size=1, clip_per="batch", lmax=None,
      n_batches=4096, seed=0, weight_decay=0.0):
    """Mean field H(theta) = E[u(theta; minibatch)], the drift of clipped SGD.

    With ``weight_decay = mu``: H_mu(theta) = H(theta) + mu theta, the mean field of clipped SGD
    with weight decay applied after clipping (``optimizers.sgd(weight_decay=mu)``, torch's
    ``clip_grad_norm_`` then ``SGD(weight_decay=mu)``), i.e. of the loss F + (mu/2)||theta||^2
    with the decay term left unclipped.

    Parameters
    ----------
    net, X, Y, rule, loss : as for :func:`dynclip.simulate`
    theta : array (P,) or (M, P)
        One point or many (computed in parallel).
    batch_size, clip_per : as for simulate (an integer >= 1; "batch" or "sample")
        Exact for batch_size 1, for clip_per="sample" and for the rules none/alrc; otherwise
        a Monte-Carlo estimate over ``n_batches`` (an integer >= 1) minibatches drawn with
        ``seed`` (an integer >= 0).
    lmax : float >= 0, optional
        ALRC only (ignored by other rules): the frozen loss cap (default from the rule's mu1, mu2).
    weight_decay : float >= 0, default 0
        mu (finite).

    Returns
    -------
    ndarray (P,) or (M, P)
    """
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    th, single = _thetas(net, theta)
    batch_size = check_int("batch_size", batch_size)
    clip_per = check_choice("clip_per", clip_per, CLIP_PER)
    n_batches = check_int("n_batches", n_batches)
    seed = check_seed(seed)
    lmax = _lmax(rule, lmax)
    wd = check_weight_decay(weight_decay)
    out = np.zeros_like(th)
    if exact_H(rule, batch_size, clip_per):
        run_rows(_H_rows, th.shape[0], th, net.widths_array(), net.offsets(), net.act, lk, X, Y2, rule, lmax, wd,
                 out, serial_below=SERIAL_BELOW)
    else:
        out = H_batch_estimate(net, X, Y, rule, th, loss, batch_size=batch_size, n_batches=n_batches,
                               seed=seed, weight_decay=wd)[0]
    return out[0] if single else out


def H_batch_estimate(net, X, Y, rule, theta, loss="mse", *, batch_size, n_batches=4096, seed=0,
                     weight_decay=0.0):
    """Monte-Carlo H for minibatch clipping: mean of u over frozen minibatches, and its standard error.

    Returns ``(H, se)`` with ``se`` the root-mean-square standard error per coordinate (of the
    clipped part: the weight-decay term ``weight_decay * theta`` is exact).
    """
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    th, single = _thetas(net, theta)
    batch_size = check_int("batch_size", batch_size)
    n_batches = check_int("n_batches", n_batches)
    rng = np.random.default_rng(check_seed(seed))
    wd = check_weight_decay(weight_decay)
    batches = rng.integers(0, X.shape[0], size=(n_batches, batch_size)).astype(np.int64)
    out = np.zeros_like(th)
    sq = np.zeros(th.shape[0])
    run_rows(_H_batch_rows, th.shape[0], th, net.widths_array(), net.offsets(), net.act, lk, X, Y2, rule, batches,
             out, sq)
    var = np.maximum(sq - np.sum(out ** 2, axis=1), 0.0) / net.n_params
    for m in range(th.shape[0]):       # exact: adds nothing to the standard error
        decay_term(th[m], wd, out[m])
    se = np.sqrt(var / n_batches)
    return (out[0], se[0]) if single else (out, se)


def _loss_grad(net, X, Y, theta, loss, weight_decay):
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    th, single = _thetas(net, theta)
    wd = check_weight_decay(weight_decay)
    out = np.zeros_like(th)
    losses = np.zeros(th.shape[0])
    run_rows(_gradF_rows, th.shape[0], th, net.widths_array(), net.offsets(), net.act, lk, X, Y2, wd, out, losses,
             serial_below=SERIAL_BELOW)
    return (float(losses[0]), out[0]) if single else (losses, out)


def grad_F(net, X, Y, theta, loss="mse", *, return_loss=False, weight_decay=0.0):
    """Gradient of the unclipped full-data loss F(theta) = mean_j l(theta; z_j).

    theta (P,) or (M, P) (parallel over M). With ``return_loss=True`` returns ``(F, grad)``.
    With ``weight_decay = mu`` (finite, >= 0): the loss F_mu = F + (mu/2)||theta||^2 and its gradient
    grad F + mu theta (the field H_mu of :func:`H` without clipping).
    """
    F_, g = _loss_grad(net, X, Y, theta, loss, weight_decay)
    return (F_, g) if return_loss else g


def F(net, X, Y, theta, loss="mse", *, weight_decay=0.0):
    """Full-data loss F(theta) (array for many theta); F_mu = F + (mu/2)||theta||^2 with
    ``weight_decay = mu``."""
    return _loss_grad(net, X, Y, theta, loss, weight_decay)[0]


def clip_bias(net, X, Y, rule, theta, loss="mse", **kw):
    """H(theta) - grad F(theta): what clipping adds to the drift (zero iff no sample is clipped).

    ``kw`` as for :func:`H`; a ``weight_decay`` is validated and changes nothing: the mu theta terms of
    H_mu and grad F_mu cancel.
    """
    check_weight_decay(kw.pop("weight_decay", 0.0))
    return H(net, X, Y, rule, theta, loss, **kw) - grad_F(net, X, Y, theta, loss)


def per_sample_grad_norms(net, X, Y, theta, loss="mse"):
    """Norms ||grad l(theta; z_j)|| for every sample j (to set lam by a percentile).

    theta (P,) gives (N,); theta (M, P) gives (M, N), computed in parallel.
    """
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    th, single = _thetas(net, theta)
    out = np.zeros((th.shape[0], X.shape[0]))
    run_rows(_sample_norm_rows, th.shape[0], th, net.widths_array(), net.offsets(), net.act, lk, X, Y2, out)
    return out[0] if single else out


@dataclass(frozen=True, eq=False)
class Equilibrium:
    """Result of :func:`find_equilibrium`.

    Attributes
    ----------
    theta : (P,) the last Newton iterate
    H_norm : ||H(theta)||;  tol : the convergence threshold on it that was used
    iterations : Newton steps taken;  H_history : (iterations + 1,) ||H|| at the start and after each step
    converged : H_norm <= tol
    eigenvalues : (P,) eigenvalues of DH(theta) (complex; sorted by real part)
    min_real : their smallest real part;  eig_floor : the margin it must exceed (eig_rtol * max |eigenvalue|)
    certified : converged and min_real > eig_floor (an isolated, exponentially stable equilibrium
        of theta' = -H(theta))
    message : why Newton stopped
    """
    theta: np.ndarray
    H_norm: float
    tol: float
    iterations: int
    H_history: np.ndarray
    converged: bool
    eigenvalues: np.ndarray
    min_real: float
    eig_floor: float
    certified: bool
    message: str

    def summary(self):
        """The numbers a study records: a JSON-able dict."""
        return dict(theta_norm=float(np.linalg.norm(self.theta)), H_norm=self.H_norm, tol=self.tol,
                    iterations=self.iterations, H_history=[float(x) for x in self.H_history],
                    min_real_eig=self.min_real, max_abs_eig=float(np.max(np.abs(self.eigenvalues))),
                    eig_floor=self.eig_floor, certified=self.certified)


def _fd_jacobian(field, theta, rel):
    """Central finite-difference Jacobian of ``field`` ((M, P) -> (M, P)) at ``theta``: one batched
    call at the 2P points theta +- h_i e_i, h_i = rel * max(1, |theta_i|)."""
    P = theta.size
    h = rel * np.maximum(1.0, np.abs(theta))
    pts = np.repeat(theta[None], 2 * P, axis=0)
    pts[np.arange(P), np.arange(P)] += h
    pts[P + np.arange(P), np.arange(P)] -= h
    v = field(pts)
    return ((v[:P] - v[P:]) / (2 * h[:, None])).T


def newton_root(field, theta, *, tol, max_iter=50, fd_step=1e-6):
    """Zero of a vector field by Newton's method with a central finite-difference Jacobian.

    ``field`` maps an (M, P) array of points to (M, P). Each step solves J d = -v in the
    least-squares sense (minimum norm if J is singular) and backtracks (halving, down to 2**-10)
    until ||field|| decreases. Stops when ||field|| <= tol, after ``max_iter`` steps, or when no
    step decreases it. Returns ``(theta, history of ||field||, message)``.
    """
    th = np.array(theta, dtype=np.float64)
    v = field(th[None])[0]
    hist = [float(np.linalg.norm(v))]
    message = f"max_iter = {max_iter} steps taken"
    for _ in range(max_iter):
        if not np.isfinite(hist[-1]):
            message = "field not finite"
            break
        if hist[-1] <= tol:
            message = "converged"
            break
        d = np.linalg.lstsq(_fd_jacobian(field, th, fd_step), -v, rcond=None)[0]
        s = 1.0
        while s >= 2.0 ** -10:
            cand = th + s * d
            vc = field(cand[None])[0]
            nc = float(np.linalg.norm(vc))
            if nc < hist[-1]:
                th, v = cand, vc
                hist.append(nc)
                break
            s *= 0.5
        else:
            message = "stalled: no Newton step (down to 1/1024 of it) lowers the norm"
            break
    else:
        if hist[-1] <= tol:
            message = "converged"
    return th, np.array(hist), message


def find_equilibrium(net, X, Y, rule, theta_start, *, loss="mse", weight_decay=0.0, tol=None, max_iter=50,
                     fd_step=1e-6, eig_rtol=1e-8):
    """Find a zero of the mean field H (batch size 1; H_mu with weight decay) near ``theta_start`` and certify it.

    Newton's method (:func:`newton_root`) on the exact H, with the Jacobian DH by central finite
    differences of H (step ``fd_step * max(1, |theta_i|)`` per coordinate). H is smooth except
    where a sample's clipping switches on or off (for classic clipping ||g_j|| = lambda), a set
    of measure zero; a root that lies on or within a finite-difference step of that boundary
    has a Jacobian that depends on the side, which can only show up as a failed certificate.
    Newton converges only locally: start close to an equilibrium, typically at the end point of
    the flow theta' = -H(theta) (:func:`dynclip.ode.integrate`). With ``rule = clipping.none()``,
    H = grad F and DH is the Hessian of F: the result certifies a strict local minimiser of F.

    Parameters
    ----------
    net, X, Y, rule, loss : as for :func:`H`
    theta_start : array (P,)
    weight_decay : float >= 0, default 0
        mu: the field is H_mu(theta) = H(theta) + mu theta (:func:`H`), the mean field of clipped SGD
        on the loss l + (mu/2)||theta||^2 with the decay applied after clipping (theta -= a (u + mu theta),
        ``optimizers.sgd(weight_decay=mu)``).
        With mu > 0 every zero lies in the ball ||theta|| <= sup||H|| / mu, and DH gains mu I:
        a flat direction of an unregularised network becomes an isolated, stable one.
    tol : float > 0, optional
        Convergence threshold on ||H||. Default max(1e-12, 64 eps s) with s the mean per-sample
        gradient norm at ``theta_start`` (the roundoff level of a mean of N vectors of that size).
    max_iter : int >= 1, default 50
    fd_step : float in (0, 1e-2], default 1e-6
        Relative finite-difference step; the Jacobian error is about fd_step**2 (truncation)
        plus eps / fd_step (roundoff) relative to ||DH||.
    eig_rtol : float in [0, 1), default 1e-8
        The equilibrium is certified when Newton converged and the smallest real part of the
        eigenvalues of DH exceeds ``eig_rtol * max |eigenvalue|``: well above the Jacobian's
        finite-difference error, so that a flat direction (an eigenvalue zero up to that error)
        is not mistaken for a stable one.

    Returns
    -------
    :class:`Equilibrium`
    """
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    th0 = check_theta(net, theta_start, "theta_start")
    if tol is not None:
        tol = check_real("tol", tol, "a finite number > 0 (or None)", lambda x: 0 < x < math.inf)
    max_iter = check_int("max_iter", max_iter)
    fd_step = check_real("fd_step", fd_step, "a number in (0, 1e-2]", lambda x: 0 < x <= 1e-2)
    eig_rtol = check_fraction("eig_rtol", eig_rtol)
    wd = check_weight_decay(weight_decay)
    field = _field(net, X, Y2, lk, rule, _lmax(rule, None), wd)

    if tol is None:
        s = float(np.mean(per_sample_grad_norms(net, X, Y2, th0, loss)))
        tol = max(1e-12, 64 * np.finfo(np.float64).eps * s) if np.isfinite(s) else 1e-12
    th, hist, message = newton_root(field, th0, tol=tol, max_iter=max_iter, fd_step=fd_step)
    converged = bool(hist[-1] <= tol)
    if np.all(np.isfinite(th)) and np.isfinite(hist[-1]):
        ev = np.linalg.eigvals(_fd_jacobian(field, th, fd_step))
        ev = ev[np.argsort(ev.real, kind="stable")]
    else:
        ev = np.full(th.size, np.nan + 0j)
    min_real = float(ev.real.min()) if np.all(np.isfinite(ev)) else math.nan
    floor = float(eig_rtol * np.max(np.abs(ev))) if np.all(np.isfinite(ev)) else math.nan
    return Equilibrium(theta=th, H_norm=float(hist[-1]), tol=float(tol), iterations=hist.size - 1, H_history=hist,
                       converged=converged, eigenvalues=ev, min_real=min_real, eig_floor=floor,
                       certified=bool(converged and min_real > floor), message=message)


# ------------------------------------------------------------------------------------------
# Jacobian and noise covariance of the mean field (the linear-noise / diffusion approximation)
# ------------------------------------------------------------------------------------------
#: relative step of :func:`jacobian`'s central differences: eps**(1/3), which balances the
#: truncation error (h^2/6) |D^3 H| against the roundoff eps s / h of H (s the size of the per-sample
#: updates); the error is then about eps**(2/3) ~ 4e-11 relative to ||DH|| for smooth H
JACOBIAN_STEP = float(np.finfo(np.float64).eps ** (1 / 3))


def _field(net, X2, Y2, lk, rule, lmax, wd):
    """The exact field (M, P) -> (M, P) of H_mu (no input checks: for Newton and finite differences)."""
    widths, offs = net.widths_array(), net.offsets()

    def field(th):
        th = np.ascontiguousarray(th, dtype=np.float64)
        out = np.zeros_like(th)
        run_rows(_H_rows, th.shape[0], th, widths, offs, net.act, lk, X2, Y2, rule, lmax, wd, out,
                 serial_below=SERIAL_BELOW)
        return out
    return field


def _exact_setup(net, X, Y, rule, theta, loss, batch_size, clip_per, what, name="theta"):
    """The checked arguments of a function that needs the exact H at ``theta`` (argument ``name``):
    (X, Y, loss code, rule, theta, batch_size)."""
    check_net(net)
    X2, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    th = check_theta(net, theta, name)
    batch_size = check_int("batch_size", batch_size)
    clip_per = check_choice("clip_per", clip_per, CLIP_PER)
    check_exact_H(rule, batch_size, clip_per, what)
    return X2, Y2, lk, rule, th, batch_size


def jacobian(net, X, Y, rule, theta, *, loss="mse", batch_size=1, clip_per="batch", weight_decay=0.0):
    """DH(theta), the (P, P) Jacobian of the mean field H (of H_mu = H + mu theta with weight decay).

    Central finite differences of the exact H (:func:`H`), one batched call at the 2P points
    theta +- h_i e_i with h_i = ``JACOBIAN_STEP`` * max(1, |theta_i|), JACOBIAN_STEP = eps**(1/3)
    ~ 6e-6: the error is O(h^2 |D^3 H| + eps s / h) ~ 1e-10 relative to ||DH|| where H is smooth
    (measured against exact Jacobians in the tests). DH[i, j] = dH_i / dtheta_j.

    H is exact, and DH with it, for batch_size 1, for clip_per="sample" and for the rules none and
    alrc (then H does not depend on the batch size); other settings raise ValueError (as
    ``simulate(track_noise=True)`` does). With ``rule = clipping.none()`` H = grad F and DH is the
    Hessian of the loss (symmetric up to the finite-difference error).

    Where clipping switches (a sample with ||g_j|| = lambda for classic clipping, likewise for the
    other rules) H is continuous but not differentiable; when a switch lies within h of theta along
    coordinate j, column j is the difference quotient across it, a mixture of the one-sided
    derivatives (their mean when the switch is at theta itself). Such points form a set of measure
    zero; at an equilibrium found by :func:`find_equilibrium` they show up as a failed certificate.
    For ALRC the loss cap is frozen at the rule's starting moments (as in :func:`H`).

    Parameters
    ----------
    net, X, Y, rule, loss, batch_size, clip_per : as for :func:`H`
    theta : array (P,)
    weight_decay : float >= 0, default 0 (adds mu I)

    Returns
    -------
    ndarray (P, P)
    """
    X2, Y2, lk, rule, th, _ = _exact_setup(net, X, Y, rule, theta, loss, batch_size, clip_per, "jacobian")
    wd = check_weight_decay(weight_decay)
    return _fd_jacobian(_field(net, X2, Y2, lk, rule, _lmax(rule, None), wd), th, JACOBIAN_STEP)


@njit
def _updates_rows(lo, hi, theta, widths, offs, act, lossk, X, Y, rule, lmax, out):
    P = theta.shape[0]
    ws1 = make_workspace(widths, 1)
    rows1 = np.zeros(1, dtype=np.int64)
    tmp = np.zeros(P)
    for j in range(lo, hi):
        sample_update(theta, widths, offs, act, lossk, X, Y, rule, lmax, j, ws1, rows1, tmp)
        for i in range(P):
            out[j, i] = tmp[i]


def per_sample_updates(net, X, Y, rule, theta, loss="mse"):
    """The clipped per-sample updates u(theta; z_j), j = 1..N, as an (N, P) array (their mean is H).

    The engine's per-sample clipping (the update of clip_per="sample" and of batch size 1); for ALRC
    with the loss cap frozen at the rule's starting moments.
    """
    check_net(net)
    X2, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    return _updates(net, X2, Y2, lk, rule, check_theta(net, theta, "theta"))


def _updates(net, X2, Y2, lk, rule, th):
    out = np.zeros((X2.shape[0], net.n_params))
    run_rows(_updates_rows, X2.shape[0], np.ascontiguousarray(th, dtype=np.float64), net.widths_array(),
             net.offsets(), net.act, lk, X2, Y2, rule, _lmax(rule, None), out, serial_below=1024)
    return out


def _covariance(U, B):
    """Q = Cov of the mean of B iid draws from the rows of U (uniform): (1/(N B)) sum_j (u_j - mean)(u_j - mean)^T."""
    D = U - U.mean(axis=0)
    Q = D.T @ D / (U.shape[0] * B)
    return 0.5 * (Q + Q.T)


def noise_covariance(net, X, Y, rule, theta, *, loss="mse", batch_size=1, clip_per="batch"):
    """Q = Cov[u(theta; minibatch)], the (P, P) covariance of the clipped update of one SGD step.

    Exact: with batch size 1 the average over the N samples, (1/N) sum_j (u_j - H)(u_j - H)^T with
    u_j the clipped per-sample updates (:func:`per_sample_updates`) and H their mean. With B > 1
    (drawn with replacement, as ``simulate`` does) and clip_per="sample", or a rule whose minibatch
    update is the mean of per-example updates (none, alrc), the update is the mean of B iid
    per-sample updates: Q = Q_1 / B, exact too.

    Minibatch clipping of the other rules at B > 1 raises ValueError: the law of the clipped mean
    of B samples needs all N**B minibatches, and a Monte-Carlo Q would come with a theta* that is
    only a root of a Monte-Carlo H; its sampling error (~1/sqrt(n_batches) relative) is the size
    of the O(a) effects the diffusion approximation is tested for. The noise is the same with or
    without weight decay (the decay term is deterministic).

    Parameters
    ----------
    net, X, Y, rule, loss, batch_size, clip_per : as for :func:`H`
    theta : array (P,)

    Returns
    -------
    ndarray (P, P), symmetric positive semi-definite
    """
    X2, Y2, lk, rule, th, B = _exact_setup(net, X, Y, rule, theta, loss, batch_size, clip_per, "noise_covariance")
    return _covariance(_updates(net, X2, Y2, lk, rule, th), B)
