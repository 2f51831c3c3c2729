"""The ODE theta' = -H(theta) that clipped SGD tracks (Ramaswamy Theorem 1), in ODE time t = sum a.

:func:`integrate` wraps ``scipy.integrate.solve_ivp`` (adaptive, DOP853 by default) for one
initial point; :func:`rk4` is a compiled fixed-step RK4 for many initial points at once
(quiver plots, windows restarted from SA iterates). Both use the engine's mean field H.
"""
import math

import numpy as np
from numba import prange
from scipy.integrate import solve_ivp

from ._jit import njit, pjit
from ._kernels import mean_field
from .clipping import check_rule, ClipKind, alrc_lmax
from .meanfield import H as _H, F as _F
from .model import check_net, check_data, check_theta, make_workspace, EVAL_BLOCK
from .results import FlowResult


def integrate(net, X, Y, rule, theta0, t_eval, *, loss="mse", method="DOP853", rtol=1e-9, atol=1e-12):
    """Solve theta' = -H(theta) from ``theta0`` and report it at the times ``t_eval``.

    Parameters
    ----------
    net, X, Y, rule, loss : as for :func:`dynclip.simulate` (H with batch size 1)
    theta0 : array (P,)
    t_eval : increasing array of ODE times >= 0 (the SA's t_k = sum_{j<k} a(j))
    method, rtol, atol : passed to ``scipy.integrate.solve_ivp``

    Returns
    -------
    FlowResult with ``t``, ``theta`` (K, P), ``loss`` (K,), ``H_norm`` (K,), ``n_rhs`` (H evaluations)
    """
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    th0 = check_theta(net, theta0, "theta0")
    t = np.asarray(t_eval, dtype=np.float64).reshape(-1)
    if t.size < 1 or not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0) or t[0] < 0:
        raise ValueError("t_eval must be a non-empty, finite, nondecreasing array of times >= 0")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be > 0; got rtol={rtol!r}, atol={atol!r}")
    n = [0]

    def rhs(_, y):
        n[0] += 1
        return -_H(net, X, Y2, rule, y, loss)

    if t[-1] > 0:
        sol = solve_ivp(rhs, (0.0, float(t[-1])), th0, method=method, t_eval=t, rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"solve_ivp failed: {sol.message}")
        theta = np.ascontiguousarray(sol.y.T)
    else:
        theta = np.tile(th0, (t.size, 1))
    Hn = np.linalg.norm(_H(net, X, Y2, rule, theta, loss), axis=1)
    return FlowResult(t=t, theta=theta, loss=np.asarray(_F(net, X, Y2, theta, loss)).reshape(-1), H_norm=Hn,
                      n_rhs=n[0], config=dict(method=method, rtol=rtol, atol=atol, rule=rule.as_dict(),
                                              widths=list(net.widths), loss=str(loss)))


@njit
def _axpy(out, x, a, y):
    for i in range(out.shape[0]):
        out[i] = x[i] + a * y[i]


@pjit
def _rk4_kernel(thetas0, times, dt_max, widths, offs, act, lossk, X, Y, rule, lmax, out):
    M, P = thetas0.shape
    K = times.shape[1]
    nE = min(EVAL_BLOCK, X.shape[0])
    for m in prange(M):
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
                    mean_field(y, widths, offs, act, lossk, X, Y, rule, lmax, wsE, rowsE, ws1, rows1, tmp, k1)
                    _axpy(yt, y, -0.5 * h, k1)
                    mean_field(yt, widths, offs, act, lossk, X, Y, rule, lmax, wsE, rowsE, ws1, rows1, tmp, k2)
                    _axpy(yt, y, -0.5 * h, k2)
                    mean_field(yt, widths, offs, act, lossk, X, Y, rule, lmax, wsE, rowsE, ws1, rows1, tmp, k3)
                    _axpy(yt, y, -h, k3)
                    mean_field(yt, widths, offs, act, lossk, X, Y, rule, lmax, wsE, rowsE, ws1, rows1, tmp, k4)
                    for i in range(P):
                        y[i] -= h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
                t = tj
            for i in range(P):
                out[m, j, i] = y[i]


def rk4(net, X, Y, rule, theta0, times, *, dt, loss="mse"):
    """Fixed-step RK4 for theta' = -H(theta), many initial points in parallel.

    Parameters
    ----------
    theta0 : array (M, P) or (P,)
    times : array (K,) shared, or (M, K) per start (NaN-padded); times[..., 0] is the start time
    dt : float > 0
        Largest step; each interval between requested times is split into equal steps <= dt,
        so the solution is reported at exactly the requested times.

    Returns
    -------
    ndarray (M, K, P) (or (K, P) for a single theta0)
    """
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    th = np.asarray(theta0, dtype=np.float64)
    single = th.ndim == 1
    th = check_theta(net, th, "theta0") if single else check_theta(net, th, "theta0", rows=th.shape[0])
    th = np.ascontiguousarray(th.reshape(-1, net.n_params))
    M = th.shape[0]
    tt = np.asarray(times, dtype=np.float64)
    if tt.ndim == 1:
        tt = np.tile(tt, (M, 1))
    if tt.ndim != 2 or tt.shape[0] != M or tt.shape[1] < 1:
        raise ValueError(f"times must have shape (K,) or ({M}, K); got {np.shape(times)}")
    d = np.diff(tt, axis=1)
    if np.any(d < 0) or np.any(np.isnan(tt[:, 0])):
        raise ValueError("times must be nondecreasing along each row (NaN padding only at the end)")
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be a finite number > 0; got {dt!r}")
    lmax = float(alrc_lmax(rule, rule.mu1, rule.mu2)) if rule.kind == ClipKind.alrc else np.inf
    out = np.full((M, tt.shape[1], net.n_params), np.nan)
    _rk4_kernel(th, np.ascontiguousarray(tt), float(dt), net.widths_array(), net.offsets(), net.act, lk, X, Y2,
                rule, lmax, out)
    return out[0] if single else out


def window_deviations(net, X, Y, rule, sa_theta, sa_time, starts, width, *, dt=0.01, loss="mse"):
    """SA-vs-ODE deviation on windows (the metric D_n of study S5).

    For each start time tau_n, the ODE is restarted at the first SA record with time >= tau_n
    and D_n = max over the records k in [tau_n, tau_n + width] of ||theta_k - Phi(theta_{k_n})||.

    Parameters
    ----------
    sa_theta : (K, P) SA iterates at records;  sa_time : (K,) their ODE times
    starts : (n,) window start times;  width : window length in ODE time

    Returns
    -------
    ndarray (n,) of D_n (NaN for a window beyond the path)
    """
    sa_theta = np.asarray(sa_theta, dtype=np.float64)
    sa_time = np.asarray(sa_time, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.float64).reshape(-1)
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
    flow = rk4(net, X, Y, rule, th0, times, dt=dt, loss=loss)
    m = 0
    for n, i0 in enumerate(i0s):
        if i0 < 0:
            continue
        i0, i1 = seg[m]
        D[n] = np.max(np.linalg.norm(sa_theta[i0:i1] - flow[m, : i1 - i0], axis=1))
        m += 1
    return D
