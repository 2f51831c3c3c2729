"""Problem set-ups and solvers shared by several studies (one definition each).

* MLP-A on D64-light with classic clipping and steps a0/(k + t0), from one theta_0 (S5, S14).
* MLP-A on D64-heavy and theta_c, the end point of its clipped gradient flow (S3, S4).
* MLP-A on D64-skew with weight decay: the certified minimiser theta* of F_mu, lambda_ref and the
  certified zeros of the clipped field H_mu reached by the flow from theta* (S6, S7).

The solvers call the library only (dynclip.ode, dynclip.meanfield.find_equilibrium); nothing here
re-implements its maths.
"""
from functools import lru_cache

import numpy as np
from scipy.optimize import minimize

import dynclip as dc
from dynclip import clipping as C, meanfield as mf, ode, schedules as S


# ------------------------------------------------------------------------------------------
# MLP-A on D64-light along decreasing steps (S5, S14)
# ------------------------------------------------------------------------------------------
def mlp_light(seed, lam, a0, t0):
    """The set-up of S5 (and of S14 part D): MLP-A (tanh 2-8-1) on D64-light (data seed ``seed``),
    classic clipping ``lam``, theta_0 = init_params(seed=seed), steps a(k) = a0 / (k + t0).

    Returns ``(net, X, Y, rule, theta0, schedule)``.
    """
    net = dc.mlp([2, 8, 1])
    X, Y = dc.data.d64("light", seed=seed)
    return net, X, Y, C.classic(lam), dc.init_params(net, seed=seed), S.inverse(a0, t0)


# ------------------------------------------------------------------------------------------
# MLP-A on D64-heavy (S3, S4, S13)
# ------------------------------------------------------------------------------------------
def mlp_heavy():
    """MLP-A (tanh 2-8-1, 33 parameters) and D64-heavy."""
    X, Y = dc.data.d64("heavy", seed=0)
    return dc.mlp([2, 8, 1], activation="tanh"), X, Y


@lru_cache(maxsize=4)
def theta_c(lam=1.0, tau=2e4, init_seed=0, method="BDF", rtol=1e-7, atol=1e-10):
    """End point of the clipped ODE theta' = -H(theta) at ODE time ``tau`` on MLP-A / D64-heavy.

    Returns ``(theta_c, ||H(theta_c)||, F(theta_c), theta_init)``. Do not modify the arrays (cached).
    """
    net, X, Y = mlp_heavy()
    th0 = dc.init_params(net, seed=init_seed)
    flow = ode.integrate(net, X, Y, C.classic(lam), th0, np.array([0.0, tau]), method=method, rtol=rtol, atol=atol)
    return flow.theta[-1].copy(), float(flow.H_norm[-1]), float(flow.loss[-1]), th0


# ------------------------------------------------------------------------------------------
# MLP-A on D64-skew with weight decay (S6, S7)
# ------------------------------------------------------------------------------------------
LOSS = "mse"            # (f - y)^2, as in the pilot

#: The set-up's defaults, the same in S6's and S7's configs: data seed, weight decay mu, the inits
#: tried for theta*, the SGD schedule a(t) = a0 / (t + t0) (its first step a0 / t0 must be stable at
#: theta*) and the ODE time of the clipped flow before Newton.
SKEW = dict(data_seed=0, mu=1e-3, star_seeds=(0, 1, 2, 3, 4, 5, 6, 7), a0=1.0, t0=20.0, tau_ode=1e4)
#: budget of H evaluations of one flow (dynclip.ode.integrate): far more than the stiff flows to tau = 1e4 need
MAX_RHS = 10_000_000


class Problem:
    """The regularised MLP problem: loss F_mu = F + (mu/2)||theta||^2, clipped field H_mu = H + mu theta
    (weight decay applied after clipping, the same in H, grad F and the SGD of this study: dynclip's
    ``weight_decay``)."""

    def __init__(self, net, X, Y, mu):
        self.net, self.X, self.Y, self.mu = net, X, Y, mu

    def F(self, th):
        return mf.F(self.net, self.X, self.Y, th, LOSS, weight_decay=self.mu)

    def grad(self, th):
        return mf.grad_F(self.net, self.X, self.Y, th, LOSS, weight_decay=self.mu)

    def H(self, lam, th):
        return mf.H(self.net, self.X, self.Y, C.classic(lam), th, LOSS, weight_decay=self.mu)

    def flow(self, lam, th0, tau):
        """theta' = -H_mu(theta) (grad F_mu for lam = inf) from th0, reported at the times tau (LSODA:
        the flow is stiff, Jacobian eigenvalues from ~1e-3 to ~30)."""
        if tau[-1] == 0:
            return np.repeat(np.asarray(th0)[None], len(tau), axis=0)
        return ode.integrate(self.net, self.X, self.Y, C.classic(lam), th0, tau, loss=LOSS, method="LSODA",
                             rtol=1e-9, atol=1e-11, max_rhs=MAX_RHS, weight_decay=self.mu).theta

    def equilibrium(self, lam, th0):
        """A certified zero of H_mu near th0 (dynclip.meanfield.find_equilibrium)."""
        return mf.find_equilibrium(self.net, self.X, self.Y, C.classic(lam), th0, loss=LOSS, weight_decay=self.mu)


@lru_cache(maxsize=4)
def mlp_setup(data_seed=0, star_seeds=(0, 1, 2, 3, 4, 5, 6, 7), a_first=0.05, mu=1e-3):
    """MLP-A on D64-skew with weight decay mu, and a certified minimiser theta* of F_mu (S6 iii, S7).

    theta*: BFGS on F_mu from ``init_params(net, seed=s)`` for s in ``star_seeds`` in turn, then
    Newton on grad F_mu; the first minimiser certified by find_equilibrium (clipping off: DH is
    the Hessian of F_mu, min eigenvalue > 0) with ``a_first * lambda_max < 2`` (full-batch GD
    with the first SGD step is stable there) is taken. Every candidate is recorded in ``tried``.
    Do not modify the returned arrays (cached).
    """
    X, Y = dc.data.d64("skew", seed=data_seed)
    pr = Problem(dc.mlp([2, 8, 1]), X, Y, mu)
    tried, pick = [], None
    for s in star_seeds:
        r = minimize(pr.F, dc.init_params(pr.net, seed=s), jac=pr.grad, method="BFGS",
                     options=dict(gtol=1e-10, maxiter=20000))
        eq = pr.equilibrium(np.inf, r.x)
        rec = dict(seed=int(s), F=float(pr.F(eq.theta)), **eq.summary())
        rec.pop("H_history")
        rec["a0_lam_max"] = float(a_first * rec["max_abs_eig"])
        tried.append(rec)
        if eq.certified and rec["a0_lam_max"] < 2:
            pick = (rec, eq.theta)
            break
    if pick is None:
        raise RuntimeError(f"no certified, well-conditioned theta* among init seeds {star_seeds}: {tried}")
    rec, th = pick
    norms = mf.per_sample_grad_norms(pr.net, X, Y, th, LOSS)
    return dict(problem=pr, net=pr.net, X=X, Y=Y, theta_star=th, F_star=rec["F"], star=rec, star_seed=rec["seed"],
                a0_lam_max=rec["a0_lam_max"], tried=tried, lam_ref=float(np.median(norms)), sample_norms=norms)


@lru_cache(maxsize=32)
def clipped_root(data_seed, star_seeds, a_first, mu, lam_mult, tau_max, n_tau=60):
    """The equilibrium theta_c of the clipped flow (B = 1) started at theta*, lambda = lam_mult * lambda_ref.

    theta' = -H_mu(theta) is solved with LSODA on a log grid of n_tau times in [1e-3, tau_max];
    find_equilibrium (Newton) then certifies a zero of H_mu from its end point. For lambda = inf,
    H_mu = grad F_mu and the flow stays at theta*. Returns a dict (cached: read only).
    """
    su = mlp_setup(data_seed, star_seeds, a_first, mu)
    pr, ths = su["problem"], su["theta_star"]
    lam = lam_mult * su["lam_ref"]
    tau = np.concatenate(([0.0], np.logspace(-3, np.log10(tau_max), n_tau)))
    path = pr.flow(lam, ths, tau)
    eq = pr.equilibrium(lam, path[-1])
    th = eq.theta
    return dict(lam=lam, lam_mult=lam_mult, theta_c=th, eq=eq.summary(), certified=eq.certified,
                H_norm=eq.H_norm, H_norm_ode=float(np.linalg.norm(pr.H(lam, path[-1]))), theta_ode=path[-1],
                theta_norm=float(np.linalg.norm(th)), min_real_eig=eq.min_real,
                grad_norm=float(np.linalg.norm(pr.grad(th))), F_excess=float(pr.F(th) - su["F_star"]),
                clip_fraction=float(np.mean(mf.per_sample_grad_norms(pr.net, pr.X, pr.Y, th, LOSS) > lam)),
                tau=tau, F_path=pr.F(path) - su["F_star"], gradF_path=np.linalg.norm(pr.grad(path), axis=1),
                dist=float(np.linalg.norm(th - ths)), dist_root_ode=float(np.linalg.norm(th - path[-1])))


def setup_key(cfg):
    """Arguments of :func:`mlp_setup` from a study config (S6 and S7 share them)."""
    return (cfg.data_seed, tuple(cfg.star_seeds), cfg.a0 / cfg.t0, cfg.mu)
