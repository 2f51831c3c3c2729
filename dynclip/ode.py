"""The ODE theta' = -H(theta) that clipped SGD tracks (Ramaswamy Theorem 1), in ODE time t = sum a.

:func:`integrate` runs a ``scipy.integrate`` solver (adaptive, DOP853 by default, stepped as
``solve_ivp`` steps it) for one initial point, within a budget of H evaluations; :func:`rk4`
is a compiled fixed-step RK4 for many initial points at once (quiver plots, windows restarted
from SA iterates). Both use the engine's mean field H.

The ODE is the limit of clipped *SGD* (``simulate``'s default optimiser) only; momentum and
Adam (:mod:`dynclip.optimizers`) follow other limits. With ``weight_decay=mu`` the field is
H_mu = H + mu theta (:func:`dynclip.meanfield.H`), the limit of ``optimizers.sgd(weight_decay=mu)``.
"""
import math
import warnings

import numpy as np

from ._jit import njit, run_rows
from .clipping import check_rule, capabilities, alrc_lmax
from .meanfield import H as _H, F as _F, _H_rows, _lmax, drift
from .model import make_workspace, EVAL_BLOCK
from .checks import (check_net, check_data, check_theta, as_float_array, check_int, check_positive, check_nonneg,
                     check_choice)
from .optimizers import check_weight_decay
from .gd import check_gradient_rule, field_rows
from .results import FlowResult

#: the methods of ``scipy.integrate.solve_ivp`` (classes of that name in scipy.integrate; SciPy is
#: imported on first use, which keeps ``import dynclip`` fast)
METHODS = ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")
#: default budget of H evaluations of :func:`integrate`
MAX_RHS = 100_000
#: default budget of RK4 steps per initial point of :func:`rk4`
MAX_RK4_STEPS = 10_000_000


def _method(method):
    import scipy.integrate
    if isinstance(method, type) and issubclass(method, scipy.integrate.OdeSolver):
        return method
    return getattr(scipy.integrate, check_choice("method", method, METHODS))


def integrate(net, X, Y, rule, theta0, t_eval, *, loss="mse", method="DOP853", rtol=1e-9, atol=1e-12,
              max_rhs=MAX_RHS, weight_decay=0.0, full_batch=False):
    """Solve theta' = -H(theta) (-H_mu(theta) = -(H(theta) + mu theta) with ``weight_decay = mu``) from
    ``theta0`` and report it at the times ``t_eval``.

    Parameters
    ----------
    net, X, Y, rule, loss : as for :func:`dynclip.simulate` (H with batch size 1)
    theta0 : array (P,)
    t_eval : nondecreasing array of ODE times >= 0 (the SA's t_k = sum_{j<k} a(j))
    method : one of "RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA", or an OdeSolver class
        The ``scipy.integrate.solve_ivp`` method; its steps are the ones ``solve_ivp`` takes.
    rtol, atol : finite numbers > 0
        The solver's tolerances.
    max_rhs : int >= 1, default 100_000
        Budget of H evaluations (the default is about 1.5 s of solver work on a small net;
        the studies need at most ~25 000). Some flows never finish in practice: a huge final
        time, a stiff flow with an explicit method, or a non-smooth flow (relu nets, clipping
        rules such as normalized(0) at a minimum) on which the adaptive step chatters. The
        solver stops after the step that uses up the budget; raise it for long horizons.
    weight_decay : float >= 0, default 0
        mu (finite): the flow of clipped SGD with weight decay after clipping.
    full_batch : bool, default False
        Integrate the flow of full-batch clipped GD instead, theta' = -(clip(grad F) + mu theta)
        (:func:`dynclip.gd.field`: one clipping factor for all samples, batch size N); ``H_norm``
        is then the norm of that field. Not for rules that clip losses (alrc).

    Returns
    -------
    FlowResult with ``t``, ``theta`` (K, P), ``loss`` (K,), ``H_norm`` (K,), ``n_rhs`` (H evaluations);
    with weight decay ``loss`` is F_mu = F + (mu/2)||theta||^2 and ``H_norm`` is ||H_mu||.
    When the solver stops before ``t_eval[-1]`` (the budget is used up, the solver fails,
    e.g. its step falls below the spacing of floats, or the solution leaves the float range,
    e.g. with a loose tolerance), the result has ``partial=True``, ``message`` says why and
    where, the rows of the times not reached (and their loss and H_norm) are NaN, and a
    RuntimeWarning is issued.
    """
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    th0 = check_theta(net, theta0, "theta0")
    t = as_float_array(t_eval, "t_eval", "an array of times").reshape(-1)
    with np.errstate(invalid="ignore"):
        if t.size < 1 or not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0) or t[0] < 0:
            raise ValueError("t_eval must be a non-empty, finite, nondecreasing array of times >= 0")
    solver_cls = _method(method)
    rtol, atol = check_positive("rtol", rtol), check_positive("atol", atol)
    max_rhs = check_int("max_rhs", max_rhs)
    wd = check_weight_decay(weight_decay)
    if not isinstance(full_batch, (bool, np.bool_)):
        raise ValueError(f"full_batch must be True or False; got {full_batch!r}")
    if full_batch:
        rule = check_gradient_rule(rule)
    widths, offs, lmax = net.widths_array(), net.offsets(), _lmax(rule, None)
    n = [0]

    def rhs(_, y):
        # = -H(net, X, Y2, rule, y, loss, weight_decay=wd), without validating the inputs again at every call
        n[0] += 1
        if n[0] > max_rhs:          # also inside one solver step, which may retry without end (NaN step size)
            raise _BudgetUsed()
        th = np.ascontiguousarray(y, dtype=np.float64).reshape(1, -1)
        if not np.all(np.isfinite(th)):
            return np.full(th.shape[1], np.nan)     # a failed stage: the solver rejects the step
        if full_batch:
            return -field_rows(net, X, Y2, loss, rule, th, wd)[0]
        out = np.zeros_like(th)
        _H_rows(0, 1, th, widths, offs, net.act, lk, X, Y2, rule, lmax, wd, out)
        return -out[0]

    message = ""
    if t[-1] > 0 and not np.all(np.isfinite(rhs(0.0, th0))):
        message = "H(theta0) is not finite (a non-finite gradient: NaN or overflow)"
        theta = np.full((t.size, th0.size), np.nan)
        theta[t == 0] = th0
        warnings.warn(f"integrate stopped at t = 0: {message}; the rows of later times are NaN "
                      "(FlowResult.partial)", RuntimeWarning, stacklevel=2)
    elif t[-1] > 0:
        theta = np.full((t.size, th0.size), np.nan)
        i = 0
        try:                # the solver evaluates H when it chooses its first step
            solver = solver_cls(rhs, 0.0, th0, float(t[-1]), vectorized=False, rtol=rtol, atol=atol)
        except _BudgetUsed:
            solver = None
            message = f"max_rhs = {max_rhs} evaluations of H used up at t = 0"
        while solver is not None:         # solve_ivp's loop, with a budget
            try:
                msg = solver.step()
            except _BudgetUsed:
                message = f"max_rhs = {max_rhs} evaluations of H used up at t = {solver.t:.6g}"
                break
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as e:    # e.g. LU of a non-finite Jacobian
                msg = f"{type(e).__name__}: {e}"
                solver.status = "failed"
            if solver.status == "failed":
                message = f"the solver failed at t = {solver.t:.6g}: {msg}"
                break
            j = int(np.searchsorted(t, solver.t, side="right"))
            if j > i:
                theta[i:j] = solver.dense_output()(t[i:j]).T
                i = j
            if not np.all(np.isfinite(solver.y)):
                message = (f"the solution left the float range at t = {solver.t:.6g} "
                           f"(rtol={rtol:g}, atol={atol:g} too loose?)")
                break
            if solver.status == "finished":
                break
            if n[0] >= max_rhs:
                message = f"max_rhs = {max_rhs} evaluations of H used up at t = {solver.t:.6g}"
                break
        bad = ~np.all(np.isfinite(theta[:i]), axis=1)
        if bad.any() and not message:         # the interpolant between finite steps overflowed
            message = (f"the solution left the float range at t = {t[np.argmax(bad)]:.6g} "
                       f"(rtol={rtol:g}, atol={atol:g} too loose?)")
        if message:
            theta[~np.all(np.isfinite(theta), axis=1)] = np.nan
            theta[(t == 0) & (np.arange(t.size) >= i)] = th0      # not reached, but known
            warnings.warn(f"integrate stopped before t = {t[-1]:g}: {message}; the rows of later times are NaN "
                          "(FlowResult.partial)", RuntimeWarning, stacklevel=2)
    else:
        theta = np.tile(th0, (t.size, 1))
    ok = np.all(np.isfinite(theta), axis=1)
    Hn, Fv = np.full(t.size, np.nan), np.full(t.size, np.nan)
    if ok.any():
        fld = (field_rows(net, X, Y2, loss, rule, np.ascontiguousarray(theta[ok]), wd) if full_batch else
               _H(net, X, Y2, rule, theta[ok], loss, weight_decay=wd))
        Hn[ok] = np.linalg.norm(fld, axis=1)
        Fv[ok] = np.asarray(_F(net, X, Y2, theta[ok], loss, weight_decay=wd)).reshape(-1)
    return FlowResult(t=t, theta=theta, loss=Fv, H_norm=Hn, n_rhs=n[0], partial=bool(message), message=message,
                      config=dict(method=method if isinstance(method, str) else solver_cls.__name__, rtol=rtol,
                                  atol=atol, max_rhs=max_rhs, rule=rule.as_dict(), widths=list(net.widths),
                                  loss=str(loss), weight_decay=wd, full_batch=bool(full_batch)))


class _BudgetUsed(Exception):
    """Raised by integrate's right-hand side once max_rhs evaluations are used up."""


@njit
def _axpy(out, x, a, y):
    for i in range(out.shape[0]):
        out[i] = x[i] + a * y[i]


@njit
def _rk4_rows(lo, hi, thetas0, times, dt_max, widths, offs, act, lossk, X, Y, rule, lmax, wd, out):
    P = thetas0.shape[1]
    K = times.shape[1]
    nE = min(EVAL_BLOCK, X.shape[0])
    for m in range(lo, hi):
        ws1 = make_workspace(widths, 1)
        wsE = make_workspace(widths, nE)
        rowsE = np.zeros(nE, dtype=np.int64)
        rows1 = np.zeros(1, dtype=np.int64)
        tmp = np.zeros(P)
        k1 = np.zeros(P)
        k2 = np.zeros(P)
        k3 = np.zeros(P)
        k4 = np.zeros(P)
        y = thetas0[m].copy()
        yt = np.zeros(P)
        t = times[m, 0]
        for j in range(K):
            tj = times[m, j]
            if tj != tj:
                break
            n = int(math.ceil((tj - t) / dt_max - 1e-12)) if tj > t else 0
            if n > 0:
                h = (tj - t) / n
                for s in range(n):
                    drift(y, widths, offs, act, lossk, X, Y, rule, lmax, wd, wsE, rowsE, ws1, rows1, tmp, k1)
                    _axpy(yt, y, -0.5 * h, k1)
                    drift(yt, widths, offs, act, lossk, X, Y, rule, lmax, wd, wsE, rowsE, ws1, rows1, tmp, k2)
                    _axpy(yt, y, -0.5 * h, k2)
                    drift(yt, widths, offs, act, lossk, X, Y, rule, lmax, wd, wsE, rowsE, ws1, rows1, tmp, k3)
                    _axpy(yt, y, -h, k3)
                    drift(yt, widths, offs, act, lossk, X, Y, rule, lmax, wd, wsE, rowsE, ws1, rows1, tmp, k4)
                    for i in range(P):
                        y[i] -= h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
                t = tj
            for i in range(P):
                out[m, j, i] = y[i]


def rk4(net, X, Y, rule, theta0, times, *, dt, loss="mse", max_steps=MAX_RK4_STEPS, weight_decay=0.0):
    """Fixed-step RK4 for theta' = -H(theta) (-H_mu with ``weight_decay``), many initial points in parallel.

    Parameters
    ----------
    theta0 : array (M, P) or (P,)
    times : array (K,) shared, or (M, K) per start (NaN-padded); times[..., 0] is the start time
        Finite and nondecreasing along each row; NaN only as padding at the end of a row.
    dt : float > 0
        Largest step; each interval between requested times is split into equal steps <= dt,
        so the solution is reported at exactly the requested times.
    max_steps : int >= 1, default 10_000_000
        Budget of RK4 steps (4 evaluations of H each) for one initial point; ``times`` that
        need more steps of size ``dt`` raise ValueError before any work is done.
    weight_decay : float >= 0, default 0
        mu (finite): the field H_mu = H + mu theta.

    Returns
    -------
    ndarray (M, K, P) (or (K, P) for a single theta0)
    """
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    P = net.n_params
    th = as_float_array(theta0, "theta0", f"a float array of shape ({P},) or (M, {P})")
    if th.ndim not in (1, 2):
        raise ValueError(f"theta0 must have shape ({P},) or (M, {P}); got {th.shape}")
    single = th.ndim == 1
    th = check_theta(net, th, "theta0") if single else check_theta(net, th, "theta0", rows=th.shape[0])
    th = np.ascontiguousarray(th.reshape(-1, P))
    M = th.shape[0]
    tt = as_float_array(times, "times", "a float array of shape (K,) or (M, K)")
    if tt.ndim == 1:
        tt = np.tile(tt, (M, 1))
    if tt.ndim != 2 or tt.shape[0] != M or tt.shape[1] < 1:
        raise ValueError(f"times must have shape (K,) or ({M}, K); got {np.shape(times)}")
    dt = check_positive("dt", dt)
    max_steps = check_int("max_steps", max_steps)
    wd = check_weight_decay(weight_decay)
    nan = np.isnan(tt)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.diff(tt, axis=1)
        if np.any(np.isinf(tt)) or np.any(nan[:, 0]) or np.any(nan[:, :-1] & ~nan[:, 1:]) or np.any(d < 0):
            raise ValueError("times must be finite and nondecreasing along each row (NaN padding only at the end)")
        n = np.where(d > 0, np.ceil(d / dt - 1e-12), 0.0)      # the kernel's step counts
    steps = float(n.sum(axis=1).max()) if n.size else 0.0
    if not steps <= max_steps:
        raise ValueError(f"dt={dt!r} is too small for times: one row needs {steps:.3g} RK4 steps, more than "
                         f"max_steps={max_steps}")
    lmax = float(alrc_lmax(rule, rule.mu1, rule.mu2)) if capabilities(rule).clips_losses else np.inf
    out = np.full((M, tt.shape[1], P), np.nan)
    run_rows(_rk4_rows, M, th, np.ascontiguousarray(tt), dt, net.widths_array(), net.offsets(), net.act, lk, X, Y2,
             rule, lmax, wd, out)
    return out[0] if single else out


def window_deviations(net, X, Y, rule, sa_theta, sa_time, starts, width, *, dt=0.01, loss="mse", weight_decay=0.0):
    """SA-vs-ODE deviation on windows (the metric D_n of study S5).

    For each start time tau_n, the ODE is restarted at the first SA record with time >= tau_n
    and D_n = max over the records k in [tau_n, tau_n + width] of ||theta_k - Phi(theta_{k_n})||.

    Parameters
    ----------
    sa_theta : (K, P) SA iterates at records;  sa_time : (K,) their ODE times
    starts : (n,) window start times;  width : window length in ODE time
    weight_decay : mu of the SA (the ODE's field is H + mu theta)

    Returns
    -------
    ndarray (n,) of D_n (NaN for a window beyond the path)
    """
    sa_theta = as_float_array(sa_theta, "sa_theta", "a float array of shape (K, P)")
    sa_time = as_float_array(sa_time, "sa_time", "a float array of shape (K,)")
    starts = as_float_array(starts, "starts", "a float array of start times").reshape(-1)
    width = check_nonneg("width", width)
    if sa_theta.ndim != 2 or sa_time.shape != sa_theta.shape[:1]:
        raise ValueError(f"sa_theta and sa_time must have shapes (K, P) and (K,); got {sa_theta.shape} and "
                         f"{sa_time.shape}")
    i0s, seg = [], []
    for tau in starts:
        i0 = int(np.searchsorted(sa_time, tau))
        if i0 >= sa_time.size:
            i0s.append(-1)
            continue
        i1 = int(np.searchsorted(sa_time, sa_time[i0] + width, side="right"))
        i0s.append(i0)
        seg.append((i0, i1))
    D = np.full(starts.size, np.nan)
    if not seg:
        return D
    Kmax = max(i1 - i0 for i0, i1 in seg)
    times = np.full((len(seg), Kmax), np.nan)
    th0 = np.empty((len(seg), sa_theta.shape[1]))
    for m, (i0, i1) in enumerate(seg):
        times[m, : i1 - i0] = sa_time[i0:i1]
        th0[m] = sa_theta[i0]
    flow = rk4(net, X, Y, rule, th0, times, dt=dt, loss=loss, weight_decay=weight_decay)
    m = 0
    for n, i0 in enumerate(i0s):
        if i0 < 0:
            continue
        i0, i1 = seg[m]
        D[n] = np.max(np.linalg.norm(sa_theta[i0:i1] - flow[m, : i1 - i0], axis=1))
        m += 1
    return D
