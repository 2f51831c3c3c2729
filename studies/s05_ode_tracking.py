"""S5. The SA tracks the ODE theta' = -H(theta): the mechanism behind Ramaswamy's Theorem 1.

Theorem 1 rests on the stochastic-approximation (SA) picture (20)-(21): clipped SGD
theta_{k+1} = theta_k - a(k) [H(theta_k) + M(k+1)] is a noisy Euler scheme for the ODE
theta' = -H(theta) in ODE time tau = sum a, and the noise washes out as a(k) -> 0.
Setup (THEORY S5): MLP-A (tanh 2-8-1, 33 params) on D64-light, classic clipping lambda = 0.5,
B = 1, a(k) = 5/(k + 50), T = 4e4 (tau_T ~ 33.5), R = 20 replicas from one theta_0. On windows
[tau_n, tau_n + 2], tau_n = 2, 6, ..., 26, the ODE is restarted at the SA iterate
(fixed-step RK4, dtau = 0.01, exact H) and D_n = max_k ||theta_k - Phi_{tau_k - tau_n}(theta_{t_n})||.
The SA noise scale at tau is ~ sqrt(a) ~ exp(-tau/(2 a0)), so log D_n should fall with slope
-1/(2 a0) = -0.1. The run records every step (R*K*P = 20 * 40001 * 33 floats = 211 MB, freed
after use) because the early windows are only ~40 steps long; windows and figures use the
records thinned to a spacing of >= 0.01 in ODE time.
F5a: D_n against tau_n (log y), replicas faint, median bold, with the predicted slope.
F5b: 2-D PCA projection of several SA paths, the ODE path from the same theta_0, and the
restarted ODE window segments of one replica. F5c: in ODE time, the replicas' loss (the ODE's
loss is not monotone: F is not a Lyapunov function for -H, see S7) and
||theta_k - theta_ODE(tau_k)|| as quantile bands over the ODE path, for a0 = 5 and for the
halved step a0 = 2.5 (same t0, T chosen so that tau_T is the same: T ~ 3.2e7 steps).
"""
from dataclasses import dataclass

import numpy as np
from scipy.special import digamma
from scipy.stats import spearmanr

import dynclip as dc
from dynclip import schedules as S, meanfield as mf, ode
from studies._harness import claim, crit
from studies._problems import mlp_light

TITLE = "The SA tracks the ODE θ̇ = −H(θ)"
PAPER_CLAIMS = ["Theorem 1 (mechanism)", "eq. (20)-(21)"]


@dataclass(frozen=True)
class Config:
    seed: int = 0
    lam: float = 0.5                      # classic clipping radius
    a0: float = 5.0                       # a(k) = a0 / (k + t0)
    t0: float = 50.0
    n_steps: int = 40_000                 # tau_T ~ 33.5
    n_replicas: int = 20
    window_starts: tuple = (2.0, 6.0, 10.0, 14.0, 18.0, 22.0, 26.0)
    width: float = 2.0                    # window length W in ODE time
    dt: float = 0.01                      # RK4 step in ODE time
    rec_dtau: float = 0.01                # thin the every-step records to this ODE-time spacing
    a0_small: float = 2.5                 # the halved step a0/2 / (k + t0), same tau_T
    n_replicas_small: int = 2             # ~3.2e7 steps each: the expensive part
    n_segments_small: int = 4             # chained runs, equally long in ODE time (records cover all tau)
    n_records_small: int = 250            # records per segment
    n_paths_plot: int = 6
    # pass criteria (THEORY S5, prototype)
    spearman_max: float = -0.9
    slope_target: float = -0.1            # -1/(2 a0)
    slope_rel_tol: float = 0.3
    ratio_max: float = 0.2


QUICK = Config(n_steps=4000, n_replicas=4, window_starts=(2.0, 6.0, 10.0, 14.0, 18.0), n_paths_plot=4)


def _steps_for_time(a0, t0, tau):
    """Smallest T with sum_{k<T} a0/(k+t0) = a0 (psi(T+t0) - psi(t0)) >= tau."""
    T = int(max(1, np.exp(tau / a0 + digamma(t0)) + 0.5 - t0))
    while a0 * (digamma(T + t0) - digamma(t0)) < tau:
        T += 1
    while T > 1 and a0 * (digamma(T - 1 + t0) - digamma(t0)) >= tau:
        T -= 1
    return T


def _simulate_segments(net, X, Y, rule, cfg, T, th0):
    """The a0_small run, chained over segments that are equally long in ODE time, so that its
    records (uniform in steps within a segment) cover the whole ODE-time axis. Segment j continues
    from the previous theta with a(k) = a0 / (k + t0 + k_j) and its own sample streams (seed + 1 + j):
    the samples are i.i.d. uniform either way, so this is the same process as one long run."""
    a0, t0 = cfg.a0_small, cfg.t0
    cuts = np.unique([_steps_for_time(a0, t0, x) for x in np.linspace(0, 1, cfg.n_segments_small + 1)[1:-1]
                      * a0 * (digamma(T + t0) - digamma(t0))])
    bounds = np.concatenate(([0], cuts, [T])).astype(int)
    th, taus, thetas, off = th0, [np.zeros(1)], [np.broadcast_to(th0, (cfg.n_replicas_small, 1, th0.size))], 0.0
    for j, (k0, k1) in enumerate(zip(bounds[:-1], bounds[1:])):
        n = int(k1 - k0)
        res = dc.simulate(net, X, Y, rule, S.inverse(a0, t0 + k0), n_steps=n, seed=cfg.seed + 1 + j,
                          n_replicas=cfg.n_replicas_small, theta0=th,
                          record_every=max(1, n // cfg.n_records_small), record_theta=True, progress=False)
        taus.append(off + res.time[1:])
        thetas.append(res.theta[:, 1:])
        th, off = res.theta_final, off + res.time[-1]
    return np.concatenate(taus), np.concatenate(thetas, axis=1)


def run(cfg):
    net, X, Y, rule, th0, sched = mlp_light(cfg.seed, cfg.lam, cfg.a0, cfg.t0)
    sa = dc.simulate(net, X, Y, rule, sched, n_steps=cfg.n_steps, seed=cfg.seed, n_replicas=cfg.n_replicas,
                     theta0=th0, record_every=1, record_theta=True, progress=False)
    tau_T = float(sa.time[-1])
    # thin the records to an ODE-time grid (keeps every step while a(k) > rec_dtau, and the last record)
    keep = np.unique(np.append(np.searchsorted(sa.time, np.arange(0.0, tau_T, cfg.rec_dtau)), sa.time.size - 1))
    tau, theta, loss = sa.time[keep], sa.theta[:, keep], sa.loss[:, keep]
    del sa
    starts = np.asarray(cfg.window_starts, float)
    D = np.stack([ode.window_deviations(net, X, Y, rule, theta[r], tau, starts, cfg.width, dt=cfg.dt)
                  for r in range(cfg.n_replicas)])
    D_med = np.median(D, axis=0)
    # halved step, same t0, T chosen so that tau_T matches
    T2 = _steps_for_time(cfg.a0_small, cfg.t0, tau_T)
    tau2, theta2 = _simulate_segments(net, X, Y, rule, cfg, T2, th0)
    # the ODE path from theta_0 at the record times of both runs (RK4; agrees with DOP853 to ~1e-8 here)
    t_all = np.union1d(tau, tau2)
    path_all = ode.rk4(net, X, Y, rule, th0, t_all, dt=cfg.dt)
    path, path2 = path_all[np.searchsorted(t_all, tau)], path_all[np.searchsorted(t_all, tau2)]
    dev = np.linalg.norm(theta - path[None], axis=2)          # (R, K') ||theta_k - theta_ODE(tau_k)||
    dev2 = np.linalg.norm(theta2 - path2[None], axis=2)
    # PCA of the ODE path and the plotted SA paths; ODE window segments of replica 0
    npl = min(cfg.n_paths_plot, cfg.n_replicas)
    pts = np.concatenate([path, theta[:npl].reshape(-1, theta.shape[2])])
    centre = pts.mean(0)
    _, sv, Vt = np.linalg.svd(pts - centre, full_matrices=False)
    basis = Vt[:2]
    seg_times = [tau[(tau >= tau[np.searchsorted(tau, s)]) & (tau <= tau[np.searchsorted(tau, s)] + cfg.width)]
                 for s in starts]
    seg_proj = [(ode.rk4(net, X, Y, rule, theta[0, np.searchsorted(tau, s)], tt, dt=cfg.dt) - centre) @ basis.T
                for s, tt in zip(starts, seg_times)]
    fit = np.polyfit(starts, np.log(D_med), 1)
    return dict(
        tau_n=starts, D=D, D_med=D_med, slope=float(fit[0]), intercept=float(fit[1]),
        spearman=float(spearmanr(starts, D_med)[0]), ratio=float(D_med[-1] / D_med[0]),
        tau=tau, loss=loss, ode_loss=mf.F(net, X, Y, path), dev=dev,
        proj_ode=(path - centre) @ basis.T, proj_sa=(theta[:npl] - centre) @ basis.T,
        seg_ode=np.concatenate(seg_proj),
        seg_len=np.array([len(s) for s in seg_proj]),
        pca_var=sv[:2] ** 2 / np.sum(sv ** 2),
        tau2=tau2, dev2=dev2,
        T1=cfg.n_steps, T2=T2, tau_T=tau_T, tau_T2=float(tau2[-1]),
        devT_1=dev[:, -1], devT_2=dev2[:, -1],
        H_norm_T=float(np.linalg.norm(mf.H(net, X, Y, rule, path[-1]))),
    )


def _bootstrap(res, n=2000, seed=0):
    """Replica bootstrap of the three S5 statistics: (n, 3) array of (Spearman, slope, ratio) of the median D_n."""
    D, tn = res["D"], res["tau_n"]
    rng = np.random.default_rng(seed)
    st = []
    for _ in range(n):
        m = np.median(D[rng.integers(0, D.shape[0], D.shape[0])], axis=0)
        st.append((spearmanr(tn, m)[0], np.polyfit(tn, np.log(m), 1)[0], m[-1] / m[0]))
    return np.array(st)


def check(res, cfg):
    lo, hi = sorted(cfg.slope_target * (1 + s * cfg.slope_rel_tol) for s in (-1, 1))
    paper = "Theorem 1 (mechanism: SA tracks θ̇ = −H(θ))"
    bs = _bootstrap(res, seed=cfg.seed)
    se = np.std(bs, axis=0, ddof=1)
    miss = [float(np.mean(bs[:, 0] > cfg.spearman_max)), float(np.mean((bs[:, 1] < lo) | (bs[:, 1] > hi))),
            float(np.mean(bs[:, 2] > cfg.ratio_max))]
    fa = (f"A point estimate from {cfg.n_replicas} replicas, not a test with a stated false-alarm rate; in "
          f"{bs.shape[0]} replica-bootstrap resamples it misses the threshold in a fraction {{m:.3g}} (an estimate "
          "of the chance that a rerun with new seeds misses it)")
    rows = [
        claim("S5.D_decreasing", "median window deviation D_n decreases along the run (Spearman ρ of D_n vs τ_n)",
              {"Spearman rho": res["spearman"], "bootstrap miss fraction": miss[0]}, f"≤ {cfg.spearman_max}",
              criteria=[crit("Spearman ρ of median D_n vs τ_n", res["spearman"], "<=", cfg.spearman_max)],
              paper=paper, verdict="confirmed",
              note=f"median over {cfg.n_replicas} replicas of D_n at τ_n = {list(cfg.window_starts)}: "
                   + ", ".join(f"{d:.3g}" for d in res["D_med"]) + ". " + fa.format(m=miss[0]) + "."),
        claim("S5.D_slope", "slope of log(median D_n) against τ_n equals the noise-scale rate −1/(2a0)",
              {"slope": res["slope"], "bootstrap SE": float(se[1]), "bootstrap miss fraction": miss[1]},
              f"{cfg.slope_target} ± {cfg.slope_rel_tol:.0%} = [{lo:.3f}, {hi:.3f}]",
              criteria=[crit("slope of log(median D_n) vs τ_n", res["slope"], "in", [lo, hi])],
              paper=paper, verdict="confirmed",
              note="noise scale ∝ √a(t_n) ∝ exp(−τ_n/(2a0)) for a(k) = a0/(k+t0); prototype −0.098. "
                   + fa.format(m=miss[1]) + f"; the nearer band edge is {min(res['slope'] - lo, hi - res['slope']) / se[1]:.1f} "
                   "bootstrap SE away."),
        claim("S5.D_ratio", "tracking error shrinks: D_last / D_first (medians)",
              {"ratio": res["ratio"], "bootstrap SE": float(se[2]), "bootstrap miss fraction": miss[2]},
              f"≤ {cfg.ratio_max}",
              criteria=[crit("median D_last / median D_first", res["ratio"], "<=", cfg.ratio_max)],
              paper=paper, verdict="confirmed",
              note="prototype 0.096. " + fa.format(m=miss[2])
                   + f"; the threshold is {(cfg.ratio_max - res['ratio']) / se[2]:.1f} bootstrap SE away."),
        claim("S5.step_size", "SA→ODE deviation ||θ_T − θ_ODE(τ_T)|| from the same θ0, a0 = 5 vs a0 = 2.5 "
                              "(same t0, T chosen for equal τ_T)",
              {f"a0={cfg.a0:g} median (R={cfg.n_replicas})": float(np.median(res["devT_1"])),
               f"a0={cfg.a0:g} range": [float(res["devT_1"].min()), float(res["devT_1"].max())],
               f"a0={cfg.a0_small:g} median (R={cfg.n_replicas_small})": float(np.median(res["devT_2"])),
               f"a0={cfg.a0_small:g} values": [float(v) for v in res["devT_2"]],
               "T": [res["T1"], res["T2"]], "tau_T": [res["tau_T"], res["tau_T2"]],
               "||H(theta_ODE(tau_T))||": res["H_norm_T"]},
              "none (report): the smaller step should track better", None, paper="Theorem 1 (mechanism)",
              verdict="report",
              note="over the whole horizon the deviation is mostly the early SA noise carried along by the flow; "
                   "halving a(k) halves the noise variance per unit ODE time. Equal τ_T needs T ∝ exp(τ_T/a0) "
                   f"steps, so the a0 = {cfg.a0_small:g} run has only R = {cfg.n_replicas_small} replicas "
                   f"(chained in {cfg.n_segments_small} segments of equal ODE time, fresh sample streams each)"),
    ]
    return rows
