"""S4. Lemma 3: the noise sum xi_t converges, and the role of sum a^2 < infinity.

Ramaswamy's Lemma 3 says xi_t = sum_{s<t} a(s) M(s+1) is a martingale whose limit exists "with high
probability". For classic clipping ||M|| <= 2 lam, so the martingale orthogonality identity
E||xi_T||^2 = sum_t a_t^2 E||M(t+1)||^2 <= lam^2 Sigma_2(T) holds, and xi converges almost surely and in
L^2 whenever Sigma_2 = sum a^2 < infinity (THEORY §2.3). This study varies a(t) = 0.5/(t+10)^kappa with
kappa in {1/2, 0.6, 0.75, 1}: for kappa > 1/2 the tail oscillation Osc_T = max_{T/2<=s<=T} ||xi_s - xi_{T/2}||
shrinks like T^(1/2-kappa); at kappa = 1/2 (sum a^2 = infinity) E||xi_T||^2 grows like ln T and Osc does
not shrink.
Setups (THEORY §5 S4 with the §5b corrections): (i) the two-point 1-D problem y in {0, 10}, lam = 1,
theta_0 = 5, where every step inside [1, 9] is clipped to +-1 and H = 0, so theta_T - theta_0 = -xi_T
exactly and the limit theta_inf is a non-degenerate random variable; (ii) S3's MLP-A on D64-heavy from
S3's theta_c, with xi accumulated exactly by the engine. Figures: F4a the orthogonality identity and
E||xi_T||^2 against lam^2 Sigma_2(T); F4b Osc_T against T (1-D); F4c the 1-D histogram of theta_T.
"""
from dataclasses import dataclass

import numpy as np

import dynclip as dc
from dynclip import clipping as C, schedules as S
from studies._harness import claim, crit
from studies._problems import mlp_heavy, theta_c

TITLE = "Lemma 3: the noise sum converges, and the role of sum a^2 < infinity"
PAPER_CLAIMS = ["Lemma 3", "(A2): sum a^2 < infinity"]


@dataclass(frozen=True)
class Config:
    seed: int = 0
    lam: float = 1.0
    a0: float = 0.5                              # a(t) = a0 / (t + t0)^kappa
    t0: float = 10.0
    kappas: tuple = (0.5, 0.6, 0.75, 1.0)
    T_1d: tuple = (1000, 10000, 100000)          # one run per (kappa, T): Osc_T needs dense records in [T/2, T]
    R_1d: tuple = (500, 500, 200)                # replicas per T (200 at T = 1e5: budget, see note)
    rec_1d: int = 200                            # records per 1-D run
    R_var: int = 20000                           # extra sharp variance check (untracked) at T_var ...
    T_var: int = 1000                            # ... for kappa in var_kappas
    var_kappas: tuple = (0.75, 1.0)
    R_mlp: int = 100
    T_mlp: int = 10000
    rec_mlp: int = 100
    tau_c: float = 2e4                           # S3's theta_c
    n_se: float = 3.0
    slope_tol: float = 0.1
    half_slope_min: float = -0.05
    r2_min: float = 0.95
    note: str = ("1-D: two-point y in {0,10}, mlp([1,1]) with half_mse, theta_0 = (0, 5); xi at records is "
                 "theta_0 - theta (exact while the path stays in [1,9]); for the few kappa = 1/2 paths that leave "
                 "[1,9] the sign is taken from theta_0 - theta and the magnitude from the engine's exact ||xi||. "
                 "Osc slopes are measured on the 1-D problem only; on the MLP the engine gives ||xi|| but not xi at "
                 "records, so the MLP checks the orthogonality identity and the growth of E||xi_T||^2 with T. "
                 "MLP T reduced from 1e5 to 1e4 (R = 100, one run per kappa, records give all T) and 1-D R at T = 1e5 "
                 "reduced from 500 to 200 to fit the 4-min budget (engine cost ~1.7 us per tracked 1-D step). "
                 "Criteria per §5b: paired SE for the identity; E||xi_T||^2 <= lam^2 Sigma_2 + 3 SE; kappa = 1/2 Osc "
                 "slope >= -0.05; Var theta_T = lam^2 Sigma_2 within 3 sqrt(2/(R-1)). E||xi_T||^2 regressed on ln T.")


QUICK = Config(T_1d=(100, 1000), R_1d=(60, 60), rec_1d=50, R_var=1000, T_var=100, R_mlp=8, T_mlp=200,
               rec_mlp=20, tau_c=200.0)   # tau_c as in S3's QUICK: theta_c is computed once per process


def _sched(cfg, kappa):
    return S.power(cfg.a0, cfg.t0, kappa)


def _sigma2(cfg, kappa, T):
    return S.sums(_sched(cfg, kappa), int(T))[1]


def _identity(xi2, m2):
    d = xi2 - m2
    R = d.size
    se_d = float(np.std(d, ddof=1) / np.sqrt(R))
    return dict(E_xi2=float(np.mean(xi2)), E_sumM2=float(np.mean(m2)), diff=float(np.mean(d)), paired_se=se_d,
                z=float(np.mean(d) / se_d) if se_d > 0 else 0.0, se_xi2=float(np.std(xi2, ddof=1) / np.sqrt(R)),
                se_m2=float(np.std(m2, ddof=1) / np.sqrt(R)))


def _osc(xi, steps, T):
    """Osc_T = max over records s in [T/2, T] of |xi_s - xi_{T/2}| per replica (xi: (R, K) scalar)."""
    j0 = int(np.searchsorted(steps, T // 2))
    j1 = int(np.searchsorted(steps, T, side="right"))
    return np.max(np.abs(xi[:, j0:j1] - xi[:, [j0]]), axis=1)


def run(cfg):
    out = dict(kappas=np.array(cfg.kappas, float), T_1d=np.array(cfg.T_1d), lam2=cfg.lam ** 2)
    net1 = dc.mlp([1, 1])
    X1, Y1 = dc.data.two_point()
    th01 = np.array([0.0, 5.0])
    rule = C.classic(cfg.lam)
    nk, nT = len(cfg.kappas), len(cfg.T_1d)
    # ---- 1-D, one tracked run per (kappa, T)
    osc = np.full((nk, nT), np.nan)
    osc_q = np.full((nk, nT, 2), np.nan)
    ident = {}
    var_ratio = np.full((nk, nT), np.nan)
    n_left = np.zeros((nk, nT), int)
    exact_err = 0.0
    curves = {}
    hist = {}
    for i, kap in enumerate(cfg.kappas):
        sched = _sched(cfg, kap)
        for j, (T, R) in enumerate(zip(cfg.T_1d, cfg.R_1d)):
            res = dc.simulate(net1, X1, Y1, rule, sched, n_steps=T, seed=cfg.seed * 1000 + 10 * i + j, n_replicas=R,
                              theta0=th01, loss="half_mse", track_noise=True, record_theta=True,
                              record_every=max(1, T // cfg.rec_1d))
            d = th01[1] - res.theta[:, :, 1]                        # theta_0 - theta_s at records
            inside = res.max_displacement < 4.0                    # never left [1, 9]: xi = theta_0 - theta exactly
            n_left[i, j] = int((~inside).sum())
            if inside.any():
                exact_err = max(exact_err, float(np.max(np.abs(np.abs(d[inside]) - res.noise_norm[inside]))))
            xi = np.sign(d) * res.noise_norm
            o = _osc(xi, res.step, T)
            osc[i, j] = np.median(o)
            osc_q[i, j] = np.quantile(o, [0.25, 0.75])
            ident[(i, j)] = _identity(res.noise_norm[:, -1] ** 2, res.noise_sq_sum)
            ident[(i, j)]["sigma2"] = _sigma2(cfg, kap, T)
            ident[(i, j)]["R"] = R
            var_ratio[i, j] = np.var(res.theta_final[:, 1], ddof=1) / (cfg.lam ** 2 * ident[(i, j)]["sigma2"])
            curves[(i, j)] = (res.step[1:], np.mean(res.noise_norm[:, 1:] ** 2, axis=0))
            if j == nT - 1:
                hist[i] = res.theta_final[:, 1].copy()
    out["osc_median"], out["osc_q"] = osc, osc_q
    out["n_left"], out["exact_err_1d"], out["var_ratio_1d"] = n_left, exact_err, var_ratio
    out["R_1d"] = np.array(cfg.R_1d)
    for key in ("E_xi2", "E_sumM2", "diff", "paired_se", "z", "se_xi2", "se_m2", "sigma2"):
        out["id1d_" + key] = np.array([[ident[(i, j)][key] for j in range(nT)] for i in range(nk)])
    for i in range(nk):
        out[f"thetaT_1d_k{i}"] = hist[i]
        s = np.concatenate([curves[(i, j)][0] for j in range(nT)])
        m = np.concatenate([curves[(i, j)][1] for j in range(nT)])
        # keep, for each run, the records beyond the previous run's horizon (a curve over all T)
        keep = np.concatenate([(curves[(i, j)][0] > (cfg.T_1d[j - 1] if j else 0)) for j in range(nT)])
        o = np.argsort(s[keep])
        out[f"curve1d_s_k{i}"], out[f"curve1d_m_k{i}"] = s[keep][o], m[keep][o]
    # ---- sharp variance check (untracked; paths never leave [1, 9] for these kappa)
    vr = {}
    for kap in cfg.var_kappas:
        if cfg.R_var <= 0:
            break
        res = dc.simulate(net1, X1, Y1, rule, _sched(cfg, kap), n_steps=cfg.T_var, seed=cfg.seed * 1000 + 500 + int(100 * kap),
                          n_replicas=cfg.R_var, theta0=th01, loss="half_mse")
        vr[kap] = dict(ratio=float(np.var(res.theta_final[:, 1], ddof=1) / (cfg.lam ** 2 * _sigma2(cfg, kap, cfg.T_var))),
                       n_left=int((res.max_displacement >= 4.0).sum()))
    out["var_sharp"] = vr
    # ---- MLP-A from S3's theta_c, one run per kappa
    net, X, Y = mlp_heavy()
    thc, Hc, _, _ = theta_c(cfg.lam, cfg.tau_c)
    out["H_theta_c"] = Hc
    for i, kap in enumerate(cfg.kappas):
        res = dc.simulate(net, X, Y, rule, _sched(cfg, kap), n_steps=cfg.T_mlp, seed=cfg.seed * 1000 + 700 + i,
                          n_replicas=cfg.R_mlp, theta0=thc, track_noise=True, record_every=max(1, cfg.T_mlp // cfg.rec_mlp))
        idm = _identity(res.noise_norm[:, -1] ** 2, res.noise_sq_sum)
        for k, v in idm.items():
            out.setdefault("idmlp_" + k, np.zeros(len(cfg.kappas)))[i] = v
        out.setdefault("idmlp_sigma2", np.zeros(len(cfg.kappas)))[i] = _sigma2(cfg, kap, cfg.T_mlp)
        out["mlp_steps"] = res.step
        out[f"mlp_Exi2_k{i}"] = np.mean(res.noise_norm ** 2, axis=0)
        out[f"mlp_se_k{i}"] = np.std(res.noise_norm ** 2, axis=0, ddof=1) / np.sqrt(cfg.R_mlp)
        out.setdefault("mlp_n_diverged", np.zeros(len(cfg.kappas), int))[i] = int(res.diverged.sum())
    return out


def _r2_lnT(s, m, smin, smax, n=30):
    """R^2 and slope of mean ||xi_s||^2 against ln s, on ~n log-spaced records in [smin, smax]."""
    s, m = np.asarray(s, float), np.asarray(m, float)
    grid = np.geomspace(smin, smax, n)
    idx = np.unique([int(np.argmin(np.abs(s - g))) for g in grid])
    x, y = np.log(s[idx]), m[idx]
    c = np.polyfit(x, y, 1)
    yhat = np.polyval(c, x)
    r2 = 1.0 - np.sum((y - yhat) ** 2) / np.sum((y - np.mean(y)) ** 2)
    return float(r2), float(c[0]), idx


def _slope_se(logT, med, q, R):
    """Approximate SE of the least-squares slope of log10(median) on logT, from each median's SE
    IQR / sqrt(R) (the large-sample SE 1 / (2 f sqrt(R)) of a median with the density f taken as 0.5 / IQR)."""
    se_log = (q[:, 1] - q[:, 0]) / np.sqrt(np.asarray(R, float)) / (np.asarray(med) * np.log(10.0))
    w = (logT - logT.mean()) / np.sum((logT - logT.mean()) ** 2)
    return float(np.sqrt(np.sum(w ** 2 * se_log ** 2)))


def check(res, cfg):
    ks, Ts = list(cfg.kappas), list(cfg.T_1d)
    out = []
    lam2 = cfg.lam ** 2
    ncell = len(ks) * len(Ts)
    # identity (1-D and MLP), paired SE
    z1 = res["id1d_z"]
    zm = res["idmlp_z"]
    out.append(claim("S4.orthogonality",
                     "martingale orthogonality E||xi_T||^2 = E sum_t a_t^2 ||M(t+1)||^2 (paired difference within 3 SE)",
                     dict(z_1d={f"kappa={k}": {f"T={T}": float(z1[i, j]) for j, T in enumerate(Ts)} for i, k in enumerate(ks)},
                          z_mlp={f"kappa={k}": float(zm[i]) for i, k in enumerate(ks)}, max_abs_z=float(max(np.max(np.abs(z1)), np.max(np.abs(zm))))),
                     f"|mean(||xi_T||^2 - sum a^2 ||M||^2)| <= {cfg.n_se:g} paired SE, every (kappa, T), 1-D and MLP (T={cfg.T_mlp})",
                     criteria=[crit(f"|z| = |mean difference| / paired SE, 1-D, per (kappa, T) ({ncell} values)",
                                    np.abs(z1).ravel(), "<=", cfg.n_se),
                               crit(f"|z|, MLP, per kappa ({len(ks)} values)", np.abs(zm), "<=", cfg.n_se)],
                     paper="Lemma 3", verdict="confirmed",
                     note="Paired SE of ||xi_T||^2 - sum a^2||M||^2 (§5b). In 1-D inside [1,9] ||M|| = 1 exactly, so both sides "
                          "equal Sigma_2(T) in expectation. False-alarm rate: 0.27 % per value (two-sided 3-SE normal "
                          f"limit), {ncell + len(ks)} values, <= {0.27 * (ncell + len(ks)):.1f} % in all."))
    # <= lam^2 Sigma_2 (+3 SE)
    ex1 = (res["id1d_E_xi2"] - lam2 * res["id1d_sigma2"]) / res["id1d_se_xi2"]
    exm = (res["idmlp_E_xi2"] - lam2 * res["idmlp_sigma2"]) / res["idmlp_se_xi2"]
    out.append(claim("S4.L2_bound",
                     "E||xi_T||^2 <= lam^2 Sigma_2(T): xi is bounded in L^2 whenever sum a^2 < infinity",
                     dict(ratio_1d={f"kappa={k}": {f"T={T}": float(res['id1d_E_xi2'][i, j] / (lam2 * res['id1d_sigma2'][i, j]))
                                                    for j, T in enumerate(Ts)} for i, k in enumerate(ks)},
                          ratio_mlp={f"kappa={k}": float(res["idmlp_E_xi2"][i] / (lam2 * res["idmlp_sigma2"][i])) for i, k in enumerate(ks)},
                          max_excess_in_SE=float(max(np.max(ex1), np.max(exm)))),
                     f"mean ||xi_T||^2 <= lam^2 Sigma_2(T) + {cfg.n_se:g} SE everywhere",
                     criteria=[crit(f"(mean ||xi_T||^2 - lam^2 Sigma_2(T)) / SE, 1-D, per (kappa, T) ({ncell} values)",
                                    ex1.ravel(), "<=", cfg.n_se),
                               crit(f"(mean ||xi_T||^2 - lam^2 Sigma_2(T)) / SE, MLP, per kappa ({len(ks)} values)",
                                    exm, "<=", cfg.n_se)],
                     paper="Lemma 3", verdict="corrected",
                     note="Lemma 3 says the limit exists 'with high probability'; for classic clipping "
                          "sum a^2 E||M||^2 <= lam^2 gamma < infinity gives convergence almost surely and in L^2 (§2.3). "
                          "In 1-D the inequality is an equality, hence the +3 SE allowance (§5b). False-alarm rate: "
                          "0.13 % per value where equality holds (one-sided 3-SE normal limit; less where the bound is "
                          f"loose), {ncell + len(ks)} values."))
    # Osc slopes, kappa > 1/2 (1-D)
    logT = np.log10(np.array(Ts, float))
    slopes = {k: float(np.polyfit(logT, np.log10(res["osc_median"][i]), 1)[0]) for i, k in enumerate(ks)}
    slope_se = {k: _slope_se(logT, res["osc_median"][i], res["osc_q"][i], cfg.R_1d) for i, k in enumerate(ks)}
    out.append(claim("S4.osc_slopes",
                     "for kappa > 1/2 the tail oscillation median Osc_T decays like T^(1/2 - kappa) (1-D)",
                     {f"kappa={k}": dict(slope=slopes[k], target=0.5 - k, approx_se=slope_se[k]) for k in ks if k > 0.5},
                     f"slope of log median Osc_T vs log T within (1/2 - kappa) +- {cfg.slope_tol:g}, T in {Ts}",
                     criteria=[crit(f"kappa = {k:g}: slope of log10 median Osc_T vs log10 T",
                                    slopes[k], "in", [0.5 - k - cfg.slope_tol, 0.5 - k + cfg.slope_tol])
                               for k in ks if k > 0.5],
                     paper="Lemma 3", verdict="confirmed",
                     note="Osc_T = max over records in [T/2, T] (about 100 records) of |xi_s - xi_{T/2}|. A fit through "
                          f"{len(Ts)} medians of R = {list(cfg.R_1d)} replicas; the band +-{cfg.slope_tol:g} is the "
                          "specification's tolerance, not a confidence interval. approx_se is the slope's sampling SE "
                          "from the medians' SE (IQR / sqrt(R) each, the large-sample SE of a median with the density "
                          "taken as 0.5 / IQR): the false-alarm rate is that of a normal error beyond "
                          f"{cfg.slope_tol:g} / approx_se = {min(cfg.slope_tol / max(slope_se[k], 1e-300) for k in ks if k > 0.5):.1f} "
                          "SE or more (plus any bias of the finite-T fit)."))
    # kappa = 1/2
    if 0.5 in ks:
        i = ks.index(0.5)
        r2_1d, sl_1d, _ = _r2_lnT(res[f"curve1d_s_k{i}"], res[f"curve1d_m_k{i}"], max(10, Ts[0] // 10), Ts[-1])
        r2_m, sl_m, _ = _r2_lnT(res["mlp_steps"][1:], res[f"mlp_Exi2_k{i}"][1:], max(10, cfg.T_mlp // 20), cfg.T_mlp, n=15)
        osl = slopes[0.5]
        out.append(claim("S4.kappa_half_log_growth",
                         "kappa = 1/2 (sum a^2 = infinity): E||xi_T||^2 grows linearly in ln T",
                         dict(R2_1d=r2_1d, slope_per_lnT_1d=sl_1d, expected_slope_1d=cfg.a0 ** 2 * lam2, R2_mlp=r2_m,
                              slope_per_lnT_mlp=sl_m, T_range_1d=[max(10, Ts[0] // 10), Ts[-1]],
                              T_range_mlp=[max(10, cfg.T_mlp // 20), cfg.T_mlp]),
                         f"R^2 >= {cfg.r2_min} for the regression of mean ||xi_T||^2 on ln T (1-D and MLP)",
                         criteria=[crit("R^2 of mean ||xi_T||^2 on ln T, 1-D", r2_1d, ">=", cfg.r2_min),
                                   crit("R^2 of mean ||xi_T||^2 on ln T, MLP", r2_m, ">=", cfg.r2_min)],
                         paper="(A2): sum a^2 < infinity", verdict="confirmed",
                         note="In 1-D E||xi_T||^2 = Sigma_2(T) = a0^2 sum 1/(t+10) ~ 0.25 ln T: no limit without (A2). "
                              "R^2 of a fit to Monte-Carlo means (R replicas per curve), not a test with a stated "
                              "false-alarm rate; the slope per ln T is recorded next to its expected value."))
        out.append(claim("S4.kappa_half_osc",
                         "kappa = 1/2: the tail oscillation Osc_T does not decrease with T (1-D)",
                         dict(slope=osl, approx_se=slope_se[0.5],
                              osc_median={f"T={T}": float(res['osc_median'][i, j]) for j, T in enumerate(Ts)}),
                         f"slope of log median Osc_T vs log T >= {cfg.half_slope_min}",
                         criteria=[crit("kappa = 1/2: slope of log10 median Osc_T vs log10 T", osl, ">=",
                                        cfg.half_slope_min)],
                         paper="(A2): sum a^2 < infinity", verdict="confirmed",
                         note="'Does not decrease' needs a tolerance: slope >= -0.05 (§5b); the expected slope is 0. "
                              "approx_se as in S4.osc_slopes: a false alarm (true slope >= 0) needs an error of "
                              f"{-cfg.half_slope_min / max(slope_se[0.5], 1e-300):.1f} SE or more."))
    # variance of theta_T in 1-D
    vr = res["var_ratio_1d"]
    tol = cfg.n_se * np.sqrt(2.0 / (np.array(cfg.R_1d, float) - 1.0))
    meas, crits = {}, []
    for i, k in enumerate(ks):
        if k in cfg.var_kappas:
            for j, T in enumerate(Ts):
                meas[f"kappa={k},T={T},R={cfg.R_1d[j]}"] = dict(ratio=float(vr[i, j]), tol=float(tol[j]))
                crits.append(crit(f"|Var theta_T / (lam^2 Sigma_2) - 1|, kappa = {k:g}, T = {T}, R = {cfg.R_1d[j]}",
                                  float(abs(vr[i, j] - 1.0)), "<=", float(tol[j])))
    for k, v in res["var_sharp"].items():
        t = cfg.n_se * np.sqrt(2.0 / (cfg.R_var - 1.0))
        meas[f"kappa={k},T={cfg.T_var},R={cfg.R_var}"] = dict(ratio=v["ratio"], tol=float(t), n_left=v["n_left"])
        crits += [crit(f"|Var theta_T / (lam^2 Sigma_2) - 1|, kappa = {k:g}, T = {cfg.T_var}, R = {cfg.R_var}",
                       float(abs(v["ratio"] - 1.0)), "<=", float(t)),
                  crit(f"paths that left [1, 9], kappa = {k:g}, T = {cfg.T_var}, R = {cfg.R_var}", v["n_left"], "==", 0)]
    out.append(claim("S4.var_theta_1d",
                     "1-D, kappa in {0.75, 1}: theta_T - theta_0 = -xi_T exactly, so Var theta_T = lam^2 Sigma_2(T): "
                     "the limit theta_inf is a non-degenerate random variable in [1, 9]",
                     meas, "|Var theta_T / (lam^2 Sigma_2(T)) - 1| <= 3 sqrt(2/(R-1)); in the sharp R = "
                           f"{cfg.R_var} check no path leaves [1, 9]",
                     criteria=crits, paper="Lemma 3 / Theorem 1 (random limit in the set H = 0)", verdict="confirmed",
                     note="Tolerance is 3 Monte-Carlo SE of a sample variance, sqrt(2/(R-1)) for normal data (§5b: 5 % "
                          "fails from MC noise at R = 500). False-alarm rate at most about 0.27 % per value (two-sided "
                          "3 SE; theta_T - theta_0 is a sum of Rademacher steps, whose kurtosis is below the normal's, "
                          "so the true SE is at most sqrt(2/(R-1))), "
                          f"{sum(1 for c in crits if c['label'].startswith('|Var'))} values."))
    # report: exactness and exits
    out.append(claim("S4.exactness_1d",
                     "1-D: |theta_0 - theta_s| equals the engine's exact ||xi_s|| on paths that stay in [1, 9]; paths that left",
                     dict(max_abs_err=res["exact_err_1d"],
                          paths_left={f"kappa={k}": {f"T={T}": int(res['n_left'][i, j]) for j, T in enumerate(Ts)} for i, k in enumerate(ks)}),
                     "report only", None, paper="eq. (20)", verdict="report"))
    out.append(claim("S4.mlp_growth",
                     "MLP: E||xi_T||^2 at T/10 and T against lam^2 Sigma_2",
                     {f"kappa={k}": dict(E_xi2_T10=float(res[f"mlp_Exi2_k{i}"][int(np.searchsorted(res['mlp_steps'], cfg.T_mlp // 10))]),
                                         E_xi2_T=float(res[f"mlp_Exi2_k{i}"][-1]),
                                         lam2_Sigma2_T10=lam2 * _sigma2(cfg, k, cfg.T_mlp // 10),
                                         lam2_Sigma2_T=lam2 * _sigma2(cfg, k, cfg.T_mlp)) for i, k in enumerate(ks)},
                     "report only", None, paper="Lemma 3", verdict="report",
                     note=f"S3's theta_c at tau = {cfg.tau_c:g}, ||H(theta_c)|| = {res['H_theta_c']:.2e}; R = {cfg.R_mlp}, T = {cfg.T_mlp}."))
    return out
