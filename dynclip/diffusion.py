"""Fluctuations of clipped SGD around the ODE: the diffusion (linear-noise) approximation.

SGD ``theta_{k+1} = theta_k - a_k u_k`` with ``E u_k = H(theta_k)`` and ``Cov u_k = Q(theta_k)``
deviates from the flow theta' = -H(theta) by delta_k = theta_k - theta(t_k), t_k = sum_{j<k} a_j.
Linearising H around the flow, delta_{k+1} ~ (I - a_k J) delta_k - a_k (u_k - H), so its covariance
C obeys, in ODE time (Kushner & Yin 2003, ch. 10; Benveniste, Metivier & Priouret 1990),

    C'(t) = -J(t) C - C J(t)^T + a(t) Q(t),     J = DH(theta(t)),  Q = Cov[u(theta(t); z)],

with C(0) = 0 from a fixed theta_0 (:func:`linear_noise_path`). Near a stable equilibrium theta* of
H with a constant step a, C tends to a Sigma, J Sigma + Sigma J^T = Q (:func:`stationary_covariance`).
Both are first-order in a: the exact stationary covariance of constant-step SGD differs by
O(a^2) (relative O(a)), e.g. for a linear model C_a = (I - a J) C_a (I - a J)^T + a^2 Q
(the discrete Lyapunov equation) gives a Sigma + O(a^2).

J and Q come from :func:`dynclip.meanfield.jacobian` and :func:`dynclip.meanfield.noise_covariance`
(the engine's per-sample clipping), so they exist where H is exact: batch size 1, clip_per="sample",
or the rules none and alrc.
"""
from dataclasses import dataclass
import math
import warnings

import numpy as np

from . import meanfield as mf
from .checks import check_int, check_positive
from .engine import record_times
from .optimizers import check_weight_decay
from .schedules import check_schedule

#: J is called stable when every eigenvalue has a real part above this fraction of the largest
#: |eigenvalue| (the certificate of :func:`dynclip.meanfield.find_equilibrium`, well above the
#: finite-difference error of J)
EIG_RTOL = 1e-8


def stationary_covariance(net, X, Y, rule, theta_star, step, *, loss="mse", batch_size=1, clip_per="batch",
                          weight_decay=0.0):
    """a Sigma: the covariance of constant-step SGD around a stable equilibrium theta*, to first order in a.

    Sigma solves the Lyapunov equation J Sigma + Sigma J^T = Q with J = DH(theta*)
    (:func:`dynclip.meanfield.jacobian`) and Q = Cov[u(theta*; minibatch)]
    (:func:`dynclip.meanfield.noise_covariance`), by ``scipy.linalg.solve_continuous_lyapunov``.
    The covariance of the SGD iterates in their stationary regime is a Sigma (1 + O(a)).

    Parameters
    ----------
    net, X, Y, rule, loss, batch_size, clip_per : as for :func:`dynclip.meanfield.H` (where H is exact:
        batch_size 1, clip_per="sample", or the rules none/alrc; else ValueError)
    theta_star : array (P,)
        An equilibrium of H (:func:`dynclip.meanfield.find_equilibrium`); a RuntimeWarning is issued
        when the Newton step -J^{-1} H(theta_star) is longer than 1e-6 max(1, ||theta_star||).
    step : float > 0
        The constant step a.
    weight_decay : float >= 0, default 0
        mu of ``optimizers.sgd(weight_decay=mu)``: J gains mu I, Q is unchanged.

    Returns
    -------
    ndarray (P, P), symmetric

    Raises
    ------
    ValueError
        When J is not stable: an eigenvalue with real part <= 1e-8 max |eigenvalue| (zero up to the
        finite-difference error, or negative); theta* is then not an isolated stable equilibrium
        and SGD has no stationary covariance around it.
    """
    from scipy.linalg import solve_continuous_lyapunov
    X2, Y2, lk, rule, th, B = mf._exact_setup(net, X, Y, rule, theta_star, loss, batch_size, clip_per,
                                              "stationary_covariance", "theta_star")
    a = check_positive("step", step)
    wd = check_weight_decay(weight_decay)
    field = mf._field(net, X2, Y2, lk, rule, mf._lmax(rule, None), wd)
    J = mf._fd_jacobian(field, th, mf.JACOBIAN_STEP)
    ev = np.linalg.eigvals(J)
    floor = EIG_RTOL * float(np.max(np.abs(ev)))
    if not np.all(np.isfinite(ev)) or ev.real.min() <= floor:
        raise ValueError(f"J = DH(theta_star) is not stable: its eigenvalue with the smallest real part is "
                         f"{ev[np.argmin(ev.real)]:.6g} (stable needs real parts > {floor:.3g}); theta_star "
                         "must be an isolated stable equilibrium (see meanfield.find_equilibrium)")
    newton = np.linalg.solve(J, field(th[None])[0])
    if np.linalg.norm(newton) > 1e-6 * max(1.0, float(np.linalg.norm(th))):
        warnings.warn(f"theta_star is not an equilibrium of H: the Newton step to the nearest one has length "
                      f"{np.linalg.norm(newton):.3g}; the covariance describes the linearisation at theta_star",
                      RuntimeWarning, stacklevel=2)
    Q = mf._covariance(mf._updates(net, X2, Y2, lk, rule, th), B)
    S = solve_continuous_lyapunov(J, Q)
    return a * 0.5 * (S + S.T)


@dataclass(frozen=True, eq=False)
class LinearNoisePath:
    """Result of :func:`linear_noise_path`: the ODE path and the predicted covariance of SGD around it.

    Attributes
    ----------
    step : (K,) SGD step numbers of the records (as ``simulate``'s with the same n_steps, record_every)
    t : (K,) their ODE times;  theta : (K, P) the flow theta(t)
    cov : (K, P, P) the linear-noise covariance C(t) of theta_k - theta(t_k)
    a : (K,) the step size a(k) at the records;  n_substeps : steps of the covariance integrator
    """
    step: np.ndarray
    t: np.ndarray
    theta: np.ndarray
    cov: np.ndarray
    a: np.ndarray
    n_substeps: int

    def std(self):
        """(K, P) predicted standard deviation of each coordinate, sqrt(diag C(t))."""
        return np.sqrt(np.maximum(np.einsum("kii->ki", self.cov), 0.0))

    def band(self, z=2.0):
        """(lo, hi), each (K, P): theta(t) -+ z sqrt(diag C(t)) (z = 2: ~95 % of Gaussian replicas)."""
        s = z * self.std()
        return self.theta - s, self.theta + s


def _van_loan(J, Q, h):
    """(Phi, Qd) = (e^{-J h}, int_0^h e^{-J s} Q e^{-J^T s} ds) from one matrix exponential (Van Loan 1978)."""
    from scipy.linalg import expm
    P = J.shape[0]
    M = np.zeros((2 * P, 2 * P))
    M[:P, :P] = J * h
    M[:P, P:] = Q * h
    M[P:, P:] = -J.T * h
    E = expm(M)
    Phi = E[P:, P:].T
    return Phi, Phi @ E[:P, P:]


def linear_noise_path(net, X, Y, rule, schedule, theta0, *, n_steps, record_every=None, loss="mse",
                      batch_size=1, clip_per="batch", dt=None, weight_decay=0.0, rtol=1e-9, atol=1e-12):
    """The flow theta(t) from theta0 and the linear-noise covariance C(t) of SGD around it.

    C' = -J C - C J^T + a(t) Q along theta(t), C(0) = 0, with J = DH(theta(t)) and Q the update
    covariance (:mod:`dynclip.meanfield`), a(t) the step a_k of the SGD step k that covers ODE time t.
    Between the records the interval is cut into substeps of length h <= dt; on each, J and Q are
    frozen at the flow's midpoint and the equation is solved exactly (Van Loan's matrix exponential,
    unconditionally stable; second order in h), with a(t) replaced by its exact mean over the substep
    (int a(s) ds = sum of a_k^2 over the steps covered). With constant J and Q the iteration has the
    stationary point of :func:`stationary_covariance` for any h.

    Parameters
    ----------
    net, X, Y, rule, loss, batch_size, clip_per : as for :func:`stationary_covariance`
    schedule : Schedule;  n_steps : int >= 1;  record_every : int, optional
        As for :func:`dynclip.simulate`: the result has the records of that run (step, ODE time).
    theta0 : array (P,)
    dt : float > 0, optional
        Largest substep in ODE time; default 0.1 / rho(J(theta0)) (rho the spectral radius).
    weight_decay : float >= 0
    rtol, atol : tolerances of the flow (:func:`dynclip.ode.integrate`, DOP853)

    Returns
    -------
    :class:`LinearNoisePath`
    """
    from . import ode
    X2, Y2, lk, rule, th0, B = mf._exact_setup(net, X, Y, rule, theta0, loss, batch_size, clip_per,
                                               "linear_noise_path", "theta0")
    schedule = check_schedule(schedule)
    n_steps = check_int("n_steps", n_steps)
    steps, t_rec = record_times(schedule, n_steps, record_every)
    wd = check_weight_decay(weight_decay)
    field = mf._field(net, X2, Y2, lk, rule, mf._lmax(rule, None), wd)
    if dt is None:
        rho = float(np.max(np.abs(np.linalg.eigvals(mf._fd_jacobian(field, th0, mf.JACOBIAN_STEP)))))
        dt = 0.1 / rho if rho > 0 and math.isfinite(rho) else float(t_rec[-1] - t_rec[0]) or 1.0
    else:
        dt = check_positive("dt", dt)
    a_k = schedule.values(0, n_steps)
    t_k = np.concatenate(([0.0], np.cumsum(a_k)))
    G_k = np.concatenate(([0.0], np.cumsum(a_k * a_k)))        # int_0^{t_k} a(s) ds

    # substep edges: every record time, and equal cuts <= dt in between
    edges = [t_rec[:1]]
    for s0, s1 in zip(t_rec[:-1], t_rec[1:]):
        n = max(1, math.ceil((s1 - s0) / dt - 1e-12)) if s1 > s0 else 0
        edges.append(np.append(s0 + (s1 - s0) * np.arange(1, n) / n, s1) if n else np.zeros(0))
    edges = np.concatenate(edges)
    mids = 0.5 * (edges[:-1] + edges[1:])
    allt = np.sort(np.concatenate((edges, mids)))
    flow = ode.integrate(net, X2, Y2, rule, th0, allt, loss=loss, rtol=rtol, atol=atol, weight_decay=wd)
    if flow.partial:
        raise RuntimeError(f"the flow stopped early: {flow.message}")
    theta_at = dict(zip(allt.tolist(), flow.theta))
    G = np.interp(edges, t_k, G_k)

    P = net.n_params
    C = np.zeros((P, P))
    covs = {float(edges[0]): C}
    for i in range(edges.size - 1):
        h = edges[i + 1] - edges[i]
        if h <= 0:
            covs[float(edges[i + 1])] = C
            continue
        thm = theta_at[float(mids[i])]
        J = mf._fd_jacobian(field, thm, mf.JACOBIAN_STEP)
        Q = mf._covariance(mf._updates(net, X2, Y2, lk, rule, thm), B)
        Phi, Qd = _van_loan(J, Q, h)
        C = Phi @ C @ Phi.T + (G[i + 1] - G[i]) / h * Qd
        C = 0.5 * (C + C.T)
        covs[float(edges[i + 1])] = C
    cov = np.array([covs[float(t)] for t in t_rec])
    theta = np.array([theta_at[float(t)] for t in t_rec])
    return LinearNoisePath(step=steps, t=t_rec, theta=theta, cov=cov, a=schedule(steps.astype(float)),
                           n_substeps=int(edges.size - 1))
