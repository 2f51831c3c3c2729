"""S7. H is not a gradient field, and F is not a Lyapunov function for the clipped flow.

Theorem 1 (Ramaswamy) concludes that clipped SGD converges to an equilibrium, indeed a local
minimum, of the loss. The stochastic-approximation argument (Benaim-Hofbauer-Sorin) only gives
an internally chain transitive set of theta' = -H(theta); reaching equilibria needs a Lyapunov
function, and the natural candidate F fails: per-sample clipping makes H = E[g/c] a non-gradient
field, and dF/dtau = -<grad F, H> can be positive.

Setups (THEORY S7, with the pilot corrections of S5b):
(i) 2-D anisotropic two-sample quadratic l_i = (theta - c_i)' A_i (theta - c_i) / 2, A1 = diag(1, 4),
c1 = (2, 0), A2 = [[3, 1], [1, 1]], c2 = (-1, 3), lambda = 1, equal weights; per-sample gradients
clipped with dynclip.clipping.clip (NumPy, not an MLP). curl H = dH2/dx - dH1/dy by central
differences; circulation on the radius-0.5 circle at (1, 1) by a 2000-point trapezoid rule (exact
up to the kinks where a sample's ||g|| crosses lambda), with Stokes (the curl integrated over the
disc) as a cross-check.
(ii) MLP-A on D64-skew with S6's weight decay mu = 1e-3 (dynclip's weight_decay: H_mu = H + mu theta, F_mu = F + (mu/2)||theta||^2;
without it the MLP has no equilibrium, see S6) and S6's certified theta*, lambda_ref (shared code:
studies._problems): for lambda in {inf, 4, 2, 1, 1/2, 1/4} x lambda_ref, circles of radius rho in
{0.05, 0.1, 0.2} in random 2-planes (3 per rho, the same for every lambda) centred at the certified
B = 1 equilibrium theta_c(lambda) of S6; circulation of H_mu and of grad F_mu (the control: exactly 0
for a gradient, so its quadrature value is the roundoff floor; mu theta adds no circulation),
2000 points each, H vectorised over the points. The clipped fraction is measured on 16 points of
each circle: the circulation must be at roundoff at lambda = inf and far above it on every circle
with 10-90 % of the samples clipped (it grows roughly like lambda while the clipped set is fixed,
so it is not monotone in lambda).
(iii) the clipped flow started at the certified minimiser theta* of F_mu: F_mu(theta(tau)) - F_mu(theta*)
along the flow (LSODA, a stiff solver, to the certified root; from S6's clipped_root), for every
finite lambda; 1-D: the 0.9/0.1 example of S6, where dF/dtau = +0.175 at theta = 0.5.
F7a: quiver of H with a curl heat-map (2-D example). F7b: F(theta(tau)) - F(theta*) for the 1-D
example and the MLP. F7c: MLP circulation |oint H| and the control against lambda.
"""
from dataclasses import dataclass

import numpy as np

import dynclip as dc
from dynclip import clipping as C, meanfield as mf, ode
from studies._harness import claim, crit
from studies._problems import LOSS, SKEW, clipped_root, mlp_setup, setup_key

TITLE = "H is not a gradient, and F is not a Lyapunov function"
PAPER_CLAIMS = ["Theorem 1 (convergence to an equilibrium / local minimum)"]

A1 = np.array([[1.0, 0.0], [0.0, 4.0]])
C1 = np.array([2.0, 0.0])
A2 = np.array([[3.0, 1.0], [1.0, 1.0]])
C2 = np.array([-1.0, 3.0])


@dataclass(frozen=True)
class Config:
    seed: int = 0
    # (i) 2-D quadratic
    lam_2d: float = 1.0
    fd_h: float = 1e-5
    circle_center: tuple = (1.0, 1.0)
    circle_radius: float = 0.5
    n_quad: int = 2000
    grid_n: int = 121                     # heat-map resolution per axis
    stokes_n: tuple = (60, 240)           # polar midpoint grid (radial, angular) for the Stokes check
    # (ii) MLP circulation; the MLP set-up is S6's (studies._problems.SKEW)
    data_seed: int = SKEW["data_seed"]
    mu: float = SKEW["mu"]                    # weight decay: S6's certified equilibria need it
    star_seeds: tuple = SKEW["star_seeds"]
    a0: float = SKEW["a0"]
    t0: float = SKEW["t0"]
    tau_ode: float = SKEW["tau_ode"]
    lam_mults: tuple = (np.inf, 4.0, 2.0, 1.0, 0.5, 0.25)
    rhos: tuple = (0.05, 0.1, 0.2)
    n_planes: int = 3
    # pass criteria (THEORY S7; S5b)
    curl_target: float = -0.25
    curl_tol: float = 1e-6
    circ_target: float = 0.029
    circ_tol: float = 5e-4                # the quoted 0.029 has two significant digits
    circ_ratio: float = 100.0
    floor_ratio: float = 10.0             # lambda = inf: |oint H| within 10 x the control (roundoff)
    clip_lo: float = 0.1                  # circles with 10-90 % of the samples clipped (on average over
    clip_hi: float = 0.9                  # 16 points of the circle) must show circulation
    n_clip_pts: int = 16
    excess_rel: float = 1e-3
    dF_target: float = 0.175


QUICK = Config(grid_n=41, stokes_n=(20, 80), lam_mults=(np.inf, 1.0, 0.25), n_planes=1)


# ------------------------------------------------------------------------------------------
# (i) 2-D quadratic
# ------------------------------------------------------------------------------------------
def H2(theta, lam):
    """H(theta) = mean of the two clipped per-sample gradients A_i (theta - c_i); theta (..., 2)."""
    rule = C.classic(lam)
    th = np.asarray(theta, dtype=float)
    flat = th.reshape(-1, 2)
    out = np.zeros_like(flat)
    for k, t in enumerate(flat):
        for A, c in ((A1, C1), (A2, C2)):
            out[k] += 0.5 * C.clip(rule, A @ (t - c))[0]
    return out.reshape(th.shape)


def curl2(theta, lam, h):
    """curl H = dH_2/dx - dH_1/dy by central differences; theta (..., 2)."""
    th = np.asarray(theta, dtype=float)
    ex, ey = np.array([h, 0.0]), np.array([0.0, h])
    return ((H2(th + ex, lam)[..., 1] - H2(th - ex, lam)[..., 1])
            - (H2(th + ey, lam)[..., 0] - H2(th - ey, lam)[..., 0])) / (2 * h)


def circulation(field, center, u, v, rho, n):
    """oint field . dtheta on the circle center + rho (cos phi u + sin phi v), trapezoid rule with n points.

    ``field`` maps an (n, d) array of points to (n, d). Returns the circulation (counter-clockwise
    in the (u, v) plane).
    """
    phi = 2 * np.pi * np.arange(n) / n
    pts = center[None] + rho * (np.cos(phi)[:, None] * u[None] + np.sin(phi)[:, None] * v[None])
    tang = rho * (-np.sin(phi)[:, None] * u[None] + np.cos(phi)[:, None] * v[None])
    return float(np.sum(field(pts) * tang) * (2 * np.pi / n))


def _run_2d(cfg):
    lam = cfg.lam_2d
    curl0 = float(curl2(np.zeros(2), lam, cfg.fd_h))
    # analytic: both samples clipped at 0, J_i = (I - n n') A_i / ||g_i|| with n = g_i / ||g_i||
    an = 0.0
    for A, c in ((A1, C1), (A2, C2)):
        g = A @ (-c)
        gn = np.linalg.norm(g)
        n = g / gn
        J = (np.eye(2) - np.outer(n, n)) @ A * lam / gn if gn > lam else A
        an += 0.5 * (J[1, 0] - J[0, 1])
    ctr = np.array(cfg.circle_center)
    e1, e2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    circ = circulation(lambda p: H2(p, lam), ctr, e1, e2, cfg.circle_radius, cfg.n_quad)
    ctrl = circulation(lambda p: 0.5 * ((p - C1) @ A1.T + (p - C2) @ A2.T), ctr, e1, e2, cfg.circle_radius,
                       cfg.n_quad)
    # Stokes: the curl integrated over the disc (polar midpoint rule)
    nr, nphi = cfg.stokes_n
    r = (np.arange(nr) + 0.5) / nr * cfg.circle_radius
    ph = 2 * np.pi * (np.arange(nphi) + 0.5) / nphi
    R_, P_ = np.meshgrid(r, ph, indexing="ij")
    pts = np.stack([ctr[0] + R_ * np.cos(P_), ctr[1] + R_ * np.sin(P_)], axis=-1)
    stokes = float(np.sum(curl2(pts, lam, cfg.fd_h) * R_) * (cfg.circle_radius / nr) * (2 * np.pi / nphi))
    # heat map and quiver
    gx = np.linspace(-2.0, 3.5, cfg.grid_n)
    gy = np.linspace(-1.0, 4.0, cfg.grid_n)
    G = np.stack(np.meshgrid(gx, gy, indexing="xy"), axis=-1)
    curl_map = curl2(G, lam, cfg.fd_h)
    qx = np.linspace(-2.0, 3.5, 16)
    qy = np.linspace(-1.0, 4.0, 15)
    Q = np.stack(np.meshgrid(qx, qy, indexing="xy"), axis=-1)
    theta_star = np.linalg.solve(A1 + A2, A1 @ C1 + A2 @ C2)
    from scipy.optimize import fsolve
    theta_c = fsolve(lambda t: H2(t, lam), theta_star, xtol=1e-14)
    return dict(curl0=curl0, curl0_analytic=an, circ2d=circ, circ2d_control=ctrl, circ2d_stokes=stokes,
                grid_x=gx, grid_y=gy, curl_map=curl_map, quiver_pts=Q, quiver_H=H2(Q, lam),
                theta_star_2d=theta_star, theta_c_2d=theta_c,
                H_at_theta_c_2d=float(np.linalg.norm(H2(theta_c, lam))),
                gradF_at_theta_c_2d=float(np.linalg.norm(0.5 * (A1 @ (theta_c - C1) + A2 @ (theta_c - C2)))))


# ------------------------------------------------------------------------------------------
# (ii) MLP circulation, (iii) flows from theta*
# ------------------------------------------------------------------------------------------
def _run_mlp(cfg):
    key = setup_key(cfg)
    su = mlp_setup(*key)
    pr = su["problem"]
    P = pr.net.n_params
    lams = np.array(cfg.lam_mults, dtype=float)
    rng = np.random.default_rng(cfg.seed)
    planes = []
    for _ in range(len(cfg.rhos) * cfg.n_planes):
        q, _r = np.linalg.qr(rng.normal(size=(P, 2)))
        planes.append((q[:, 0], q[:, 1]))
    nl, nr, npl = lams.size, len(cfg.rhos), cfg.n_planes
    circH = np.zeros((nl, nr, npl))
    circG = np.zeros((nl, nr, npl))
    clip_circle = np.zeros((nl, nr, npl))
    roots = [clipped_root(*key, float(m), cfg.tau_ode) for m in lams]
    phi = 2 * np.pi * np.arange(cfg.n_clip_pts) / cfg.n_clip_pts
    for i, (m, r) in enumerate(zip(lams, roots)):
        lam = m * su["lam_ref"]
        for j, rho in enumerate(cfg.rhos):
            for k in range(npl):
                u, v = planes[j * npl + k]
                circH[i, j, k] = circulation(lambda p: pr.H(lam, p), r["theta_c"], u, v, rho, cfg.n_quad)
                circG[i, j, k] = circulation(pr.grad, r["theta_c"], u, v, rho, cfg.n_quad)
                pts = r["theta_c"][None] + rho * (np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v)
                clip_circle[i, j, k] = np.mean(mf.per_sample_grad_norms(pr.net, pr.X, pr.Y, pts, LOSS) > lam)
    fin = np.isfinite(lams)
    return dict(lam_mults=lams, lam_ref=su["lam_ref"], F_star=su["F_star"], rhos=np.array(cfg.rhos),
                circ_H=circH, circ_gradF=circG, clip_fraction_center=np.array([r["clip_fraction"] for r in roots]),
                clip_fraction_circle=clip_circle, root_H_norm=np.array([r["H_norm"] for r in roots]),
                root_tol=np.array([r["eq"]["tol"] for r in roots]),
                root_theta_norm=np.array([r["theta_norm"] for r in roots]),
                root_min_real_eig=np.array([r["min_real_eig"] for r in roots]),
                root_eig_floor=np.array([r["eq"]["eig_floor"] for r in roots]),
                root_certified=np.array([r["certified"] for r in roots]),
                root_F_excess=np.array([r["F_excess"] for r in roots]),
                tau=roots[0]["tau"], F_excess_path=np.array([r["F_path"] for r in roots])[fin],
                flow_lams=lams[fin])


def _run_1d(cfg):
    net = dc.mlp([1, 1])
    X, Y = dc.data.two_point(counts=(9, 1))
    rule = C.classic(1.0)
    tau = np.concatenate(([0.0], np.logspace(-3, 2, 120)))
    fl = ode.integrate(net, X, Y, rule, np.array([0.0, 1.0]), tau, loss="half_mse", method="LSODA", rtol=1e-10,
                       atol=1e-12)
    Fs = mf.F(net, X, Y, np.array([0.0, 1.0]), "half_mse")
    half = np.array([0.0, 0.5])
    dF = -float(mf.grad_F(net, X, Y, half, "half_mse") @ mf.H(net, X, Y, rule, half, "half_mse"))
    exact = 0.5 * (1 / 9 + 8 / 9 * np.exp(-0.9 * tau) - 1.0) ** 2      # theta(tau) = 1/9 + 8/9 e^{-0.9 tau}
    return dict(tau_1d=tau, F_excess_1d=fl.loss - Fs, F_excess_1d_exact=exact, F_star_1d=Fs, dFdtau_at_half=dF)


def run(cfg):
    res = _run_2d(cfg)
    res.update(_run_mlp(cfg))
    res.update(_run_1d(cfg))
    return res


# ------------------------------------------------------------------------------------------
# checks
# ------------------------------------------------------------------------------------------


def check(res, cfg):
    out = []
    P1 = "Theorem 1 (equilibrium / local minimum)"
    d = abs(res["curl0"] - cfg.curl_target)
    out.append(claim("S7.i.curl", "2-D two-sample quadratic, lambda = 1: curl H(0, 0) is not zero (H is not a gradient)",
                     dict(curl_fd=res["curl0"], curl_analytic=res["curl0_analytic"]),
                     f"{cfg.curl_target} +- {cfg.curl_tol:g}",
                     criteria=[crit("|curl H(0, 0) - (-0.25)|", d, "<=", cfg.curl_tol),
                               crit("|curl (finite differences) - curl (analytic)|",
                                    abs(res["curl0"] - res["curl0_analytic"]), "<=", cfg.curl_tol)],
                     paper=P1, verdict="refuted", basis="exact",
                     note="A gradient field has zero curl; convergence to equilibria then needs another Lyapunov "
                          "function, which the paper does not supply."))
    dc_ = abs(res["circ2d"] - cfg.circ_target)
    out.append(claim("S7.i.circulation", "2-D: circulation of H on the radius-0.5 circle at (1, 1) is about 0.029 "
                     "(a gradient field gives 0)",
                     dict(circulation=res["circ2d"], stokes_disc_integral=res["circ2d_stokes"],
                          gradient_control=res["circ2d_control"]),
                     f"|oint H - {cfg.circ_target}| <= {cfg.circ_tol:g}",
                     criteria=[crit("|oint H - 0.029|", dc_, "<=", cfg.circ_tol)], paper=P1, verdict="refuted",
                     basis="exact"))
    lams = res["lam_mults"]
    fin = np.isfinite(lams)
    out.append(claim("S7.ii.roots", "MLP: the circles are centred on certified equilibria theta_c(lambda) of the "
                     "clipped flow (S6: Newton to ||H_mu|| <= tol, every eigenvalue of DH_mu with positive real part)",
                     dict(lam_over_lamref=lams, theta_norm=res["root_theta_norm"], H_norm=res["root_H_norm"],
                          tol=res["root_tol"], min_real_eig=res["root_min_real_eig"], eig_floor=res["root_eig_floor"]),
                     "certified at every lambda",
                     criteria=[crit("||H_mu(theta_c)|| - tol", list(res["root_H_norm"] - res["root_tol"]), "<=", 0.0),
                               crit("min Re eig DH_mu - floor", list(res["root_min_real_eig"] - res["root_eig_floor"]),
                                    ">", 0.0)], verdict="report"))
    absH = np.abs(res["circ_H"])                       # (nl, nr, npl)
    absG = np.abs(res["circ_gradF"])
    cc = res["clip_fraction_circle"]
    active = fin[:, None, None] & (cc >= cfg.clip_lo) & (cc <= cfg.clip_hi)
    ratio_active = list(absH[active] / np.maximum(absG[active], 1e-300))
    ratio_inf = list((absH / np.maximum(absG, 1e-300))[~fin].ravel())
    out.append(claim("S7.ii.circulation", "MLP: the circulation of H around certified equilibria is at roundoff "
                     "without clipping (lambda = inf) and far above it on every circle where 10-90 % of the samples "
                     "are clipped", dict(lam_over_lamref=lams, rho=res["rhos"],
                                         abs_circ_H=absH, abs_circ_gradF_control=absG,
                                         clip_fraction_on_circle=cc, circles_with_clipping=int(active.sum()),
                                         ratio_where_clipping=ratio_active, ratio_at_inf=ratio_inf),
                     f"lambda = inf: |oint H| <= {cfg.floor_ratio:g} x |oint grad F| (same circle); 10-90 % clipped: "
                     f"|oint H| >= {cfg.circ_ratio:g} x |oint grad F|",
                     criteria=[crit("|oint H| / control, lambda = inf", ratio_inf, "<=", cfg.floor_ratio),
                               crit("|oint H| / control, circles with 10-90 % clipped", ratio_active, ">=",
                                    cfg.circ_ratio)],
                     paper=P1, verdict="refuted", basis="exact",
                     note="The control is the circulation of the gradient field grad F_mu on the same circle with the "
                          "same 2000-point quadrature: its value is the roundoff floor. Clipping makes H non-gradient; "
                          "the circulation grows roughly like lambda while the set of clipped samples is fixed and "
                          "vanishes once no sample is clipped, so it is not monotone in lambda."))
    cf = res["clip_fraction_center"]
    out.append(claim("S7.ii.clipped_fraction", "MLP: clipped fraction at theta_c(lambda) (report)",
                     dict(lam_over_lamref=lams, clip_fraction_at_theta_c=cf), "–", verdict="report"))
    # (iii)
    tau = res["tau"]
    floor = 1e3 * np.finfo(float).eps * res["F_star"]
    exc = res["F_excess_path"]                  # (n_finite_lams, K)
    pos = tau > 0
    above = np.abs(exc[:, pos]) > floor
    neg = np.sum(above & (exc[:, pos] <= 0), axis=1)
    final = exc[:, -1]
    out.append(claim("S7.iii.F_increases", "MLP: along the clipped flow from the certified minimiser theta* of F_mu, "
                     "F_mu rises above F_mu(theta*) and ends at the certified clipped root (every finite lambda)",
                     dict(lam_over_lamref=res["flow_lams"], final_excess=final, F_star=res["F_star"],
                          tau_final=tau[-1], points_below_F_star=neg, points_within_roundoff=np.sum(~above, axis=1),
                          excess_at_certified_root=res["root_F_excess"][fin]),
                     f"no point with F_mu(theta(tau)) <= F_mu(theta*) where |excess| > {floor:.1e}; final excess >= "
                     f"{cfg.excess_rel:g} F_mu(theta*)",
                     criteria=[crit("points below F_mu(theta*) (above roundoff)", [int(x) for x in neg], "==", 0),
                               crit("final excess / F_mu(theta*)", list(final / res["F_star"]), ">=", cfg.excess_rel)],
                     paper=P1, verdict="refuted", basis="exact",
                     note="F is not a Lyapunov function of theta' = -H: the clipped flow leaves the minimiser of the "
                          "loss. Solved with LSODA (stiff), rtol 1e-9; near tau = 0 the excess is O(tau^2) and "
                          "below roundoff, so those points are not tested."))
    ex1 = res["F_excess_1d"]
    pos1 = res["tau_1d"] > 0
    out.append(claim("S7.iii.one_d", "1-D 0.9/0.1: dF/dtau = -F'(theta) H(theta) = +0.175 at theta = 0.5, and F "
                     "rises along the flow from theta* = 1 to theta_c = 1/9",
                     dict(dFdtau_at_half=res["dFdtau_at_half"], final_excess=ex1[-1],
                          max_dev_from_exact=float(np.max(np.abs(ex1 - res["F_excess_1d_exact"])))),
                     f"dF/dtau = {cfg.dF_target} (to 1e-12); excess > 0 for tau > 0",
                     criteria=[crit("|dF/dtau - 0.175|", abs(res["dFdtau_at_half"] - cfg.dF_target), "<=", 1e-12),
                               crit("F excess for tau > 0", list(ex1[pos1]), ">", 0.0)],
                     paper=P1, verdict="refuted", basis="exact"))
    return out


# ------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------
