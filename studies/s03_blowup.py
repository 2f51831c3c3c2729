"""S3. Blow-up probability on an MLP: the paper's Azuma bound vs the correct vector martingale bounds.

Ramaswamy's Lemma 1 bounds the chance that clipped SGD leaves a ball with Hoeffding-Azuma,
eqs. (14)-(15): P <= 2 exp(-2 r^2 / (lam^2 sum a^2)). The object that such a bound can control is
the martingale noise xi_t = sum_{s<t} a(s) M(s+1) of the SA form (20), a vector with
||a M|| <= 2 lam a; the valid bounds for it are the dimension-free Pinelis-Azuma bound
2 exp(-r^2 / (8 lam^2 Sigma_2)), the coordinate union bound and Pinelis-Bennett (THEORY §2.2).
The displacement ||theta_t - theta_0|| itself is bounded surely by lam A(T) (§2.1).
Setup (THEORY §5 S3 with the §5b corrections): MLP-A (tanh 2-8-1) on D64-heavy, classic clipping
lam = 1, a(t) = 1/(t+10), T = 2000 steps, B = 1, xi accumulated exactly (H recomputed at every
step). Replicas start from theta_c, the end point of the clipped ODE theta' = -H(theta) at a fixed
ODE time (the ODE never reaches ||H|| < 1e-8 here, §5b), and a second batch from random inits.
Unclipped SGD on the same data and schedule (xi then uses grad F) is the control.
Figure F3 shows the empirical tail probabilities with Clopper-Pearson 95 % intervals against every
bound; F3b shows the noise and displacement paths against lam A(t).
"""
from dataclasses import dataclass

import numpy as np

import dynclip as dc
from dynclip import bounds, clipping as C, meanfield as mf, schedules as S
from studies._harness import claim, crit
from studies._problems import mlp_heavy, theta_c

TITLE = "Blow-up probability on an MLP: the paper's Azuma bound vs correct vector martingale bounds"
PAPER_CLAIMS = ["Lemma 1, eqs. (14)-(16)", "eq. (20) and Lemma 3 (noise xi)"]


@dataclass(frozen=True)
class Config:
    seed: int = 0
    lam: float = 1.0                 # classic clipping threshold
    a0: float = 1.0                  # a(t) = a0 / (t + t0)
    t0: float = 10.0
    n_steps: int = 2000
    n_replicas: int = 2000           # clipped, from theta_c (the headline batch)
    n_replicas_init: int = 2000      # clipped, from random inits (one torch-default init per replica)
    n_replicas_none: int = 2000      # unclipped control, from theta_c
    init_seed: int = 0               # init of the ODE that gives theta_c
    tau_c: float = 2e4               # ODE time of theta_c (§5b: the pilot's value)
    ode_method: str = "BDF"          # the late flow is slow and stiff; BDF agrees with LSODA to 1e-6
    ode_rtol: float = 1e-7
    ode_atol: float = 1e-10
    pct_seeds: int = 5               # init seeds over which lam's percentile of ||g_j|| is reported
    n_r: int = 48                    # grid of radii r (log-spaced)
    r_min: float = 0.05
    ci_resolution: float = 3.7       # upper CI is only checked where the bound >= ci_resolution / R (§5b)
    pinelis_max: float = 1e-3        # unclipped test: radii with Pinelis(r) <= this ...
    unclipped_factor: float = 10.0   # ... must have lower CI >= factor * Pinelis(r) somewhere
    note: str = ("lam = 1 as in the spec; it sits near the 25th percentile of the per-sample gradient norms "
                 "at init, not the 75th (§5b; measured value in the claims). theta_c = ODE end point at "
                 "tau_c (BDF), ||H(theta_c)|| recorded. R = 2000 replicas in each of the three batches "
                 "(clipped from theta_c, clipped from random inits, unclipped from theta_c). The unclipped Pinelis curve uses the clipped lam = 1, as the pilot did; "
                 "the unclipped runs start at theta_c. Pass criteria corrected per §5b: lower CI <= min(valid "
                 "bounds) at every r, upper CI <= it where the bound >= 3.7/R.")


QUICK = Config(n_steps=200, n_replicas=100, n_replicas_init=40, n_replicas_none=40, tau_c=200.0, n_r=24)


def _batch(net, X, Y, rule, sched, cfg, R, theta0, seed):
    res = dc.simulate(net, X, Y, rule, sched, n_steps=cfg.n_steps, seed=seed, n_replicas=R, theta0=theta0,
                      track_noise=True, record_every=max(1, cfg.n_steps // 200))
    mx = np.where(np.isfinite(res.max_noise), res.max_noise, np.inf)   # a non-finite run exceeds every r
    md = np.where(np.isfinite(res.max_displacement), res.max_displacement, np.inf)
    return dict(max_noise=mx, max_disp=md, S_T=res.update_sum[:, -1], xi_T2=res.noise_norm[:, -1] ** 2,
                noise_norm=res.noise_norm, disp=res.displacement, time=res.time,
                clip_fraction=res.clip_fraction, n_diverged=int(res.diverged.sum()), n_nonfinite=int(res.nonfinite.sum()))


def run(cfg):
    net, X, Y = mlp_heavy()
    clip, none = C.classic(cfg.lam), C.none()
    sched = S.inverse(cfg.a0, cfg.t0)
    A_T, S2 = S.sums(sched, cfg.n_steps)
    a = sched.values(0, cfg.n_steps)
    thc, Hc, Fc, thi = theta_c(cfg.lam, cfg.tau_c, cfg.init_seed, cfg.ode_method, cfg.ode_rtol, cfg.ode_atol)
    pct = []
    for s in range(cfg.pct_seeds):
        g = mf.per_sample_grad_norms(net, X, Y, dc.init_params(net, seed=cfg.init_seed + s))
        pct.append(100.0 * np.mean(g <= cfg.lam))
    gc = mf.per_sample_grad_norms(net, X, Y, thc)
    runs = dict(clip_c=_batch(net, X, Y, clip, sched, cfg, cfg.n_replicas, thc, cfg.seed),
                clip_init=_batch(net, X, Y, clip, sched, cfg, cfg.n_replicas_init, None, cfg.seed + 1),
                none_c=_batch(net, X, Y, none, sched, cfg, cfg.n_replicas_none, thc, cfg.seed + 2))
    rmax = max(2.0 * cfg.lam * A_T, *(np.max(np.where(np.isfinite(b["max_noise"]), b["max_noise"], 0))
                                       for b in runs.values()))
    r = np.geomspace(cfg.r_min, 1.05 * rmax, cfg.n_r)
    out = dict(r=r, A_T=A_T, sum_a2=S2, a_max=float(a.max()), sure=cfg.lam * A_T, d=net.n_params,
               theta_c=thc, H_c=Hc, F_c=Fc, theta_c_norm=float(np.linalg.norm(thc)),
               lam_percentile_init=np.array(pct), lam_percentile_c=100.0 * float(np.mean(gc <= cfg.lam)),
               grad_norm_pcts_init=np.percentile(
                   mf.per_sample_grad_norms(net, X, Y, thi), [25, 50, 75]))
    for name, b in runs.items():
        R = b["max_noise"].size
        out[name + "_R"] = R
        out[name + "_k_xi"] = np.array([(b["max_noise"] >= x).sum() for x in r])
        out[name + "_k_th"] = np.array([(b["max_disp"] >= x).sum() for x in r])
        out[name + "_k_th_sure"] = int((b["max_disp"] >= cfg.lam * A_T).sum())
        for k in ("max_noise", "max_disp", "S_T", "xi_T2", "clip_fraction"):
            out[f"{name}_{k}"] = b[k]
        out[name + "_n_diverged"] = b["n_diverged"]
        out[name + "_n_nonfinite"] = b["n_nonfinite"]
        out[name + "_time"] = b["time"]
        out[name + "_noise_q"] = np.nanquantile(b["noise_norm"], [0.1, 0.5, 0.9, 1.0], axis=0)
        out[name + "_disp_q"] = np.nanquantile(b["disp"], [0.1, 0.5, 0.9, 1.0], axis=0)
    return out


def _bounds(r, res, lam):
    S2, am, d = res["sum_a2"], res["a_max"], int(res["d"])
    return dict(paper=bounds.clip_prob(bounds.paper_azuma(r, lam, S2)),
                pinelis=bounds.clip_prob(bounds.pinelis(r, lam, S2)),
                union=bounds.clip_prob(bounds.coordinate_union(r, d, lam, S2)),
                bennett=bounds.clip_prob(bounds.pinelis_bennett(r, lam, S2, am)))


def _valid_min(r, res, lam):
    b = _bounds(r, res, lam)
    return np.minimum(np.minimum(b["pinelis"], b["union"]), b["bennett"])


def check(res, cfg):
    r, lam = res["r"], cfg.lam
    vmin = _valid_min(r, res, lam)
    b = _bounds(r, res, lam)
    out = []
    # (1) clipped xi under the valid bounds (corrected criterion, §5b)
    meas, crits = {}, []
    for name in ("clip_c", "clip_init"):
        R = res[name + "_R"]
        lo, hi = bounds.clopper_pearson(res[name + "_k_xi"], R)
        elig = vmin >= cfg.ci_resolution / R
        with np.errstate(divide="ignore", invalid="ignore"):
            rlo = np.where((lo > 0) & (vmin < 1), lo / vmin, 0.0)   # informative r only: bound < 1 (it underflows
        meas[name] = dict(max_lowerCI_over_bound_where_bound_lt_1=float(np.max(rlo)),   # to 0 at large r, where lo = 0)
                          max_upperCI_over_bound_where_resolvable=float(np.max(hi[elig] / vmin[elig])) if elig.any() else None,
                          n_r_resolvable=int(elig.sum()), max_xi=float(np.max(res[name + "_max_noise"])),
                          E_xi_T2=float(np.mean(res[name + "_xi_T2"])))
        crits += [crit(f"{name}: min(valid bounds) minus CP95 lower limit, all {r.size} r", vmin - lo, ">=", 0),
                  crit(f"{name}: min(valid bounds) minus CP95 upper limit, the {int(elig.sum())} r with bound >= "
                       f"{cfg.ci_resolution:g}/R", vmin[elig] - hi[elig], ">=", 0)]
    meas["lam2_Sigma2"] = lam ** 2 * res["sum_a2"]
    out.append(claim("S3.clipped_xi_valid_bounds",
                     "clipped SGD: P(max_t ||xi_t|| >= r) lies under min(Pinelis-Azuma, coordinate union, Pinelis-Bennett) "
                     "at every r, from theta_c and from random init",
                     meas, f"lower CI <= bound at all {r.size} r; upper CI <= bound where bound >= {cfg.ci_resolution}/R",
                     criteria=crits, paper="eqs. (14)-(15) applied to xi (Lemma 3 noise)", verdict="corrected",
                     note="The paper's exponent is 16x too large for the vector noise xi; the correct dimension-free "
                          "bound 2exp(-r^2/(8 lam^2 Sigma_2)) (and the others) hold. Upper-CI check restricted to bounds "
                          ">= 3.7/R because zero hits still give an upper CI of 3.69/R (§5b). False-alarm rate (a miss "
                          "although the bounds hold): <= 2.5 % per r and limit where P equals the bound (one-sided limit "
                          f"of a 95 % Clopper-Pearson interval), far less where the bound is loose; {r.size} r, 2 batches."))
    # (2) sure displacement bound
    meas = {}
    for name in ("clip_c", "clip_init"):
        md, ST = res[name + "_max_disp"], res[name + "_S_T"]
        meas[name] = dict(n_max_disp_ge_lamA=res[name + "_k_th_sure"], max_disp_over_lamA=float(np.max(md) / res["sure"]),
                          max_S_T_over_lamA=float(np.max(ST) / res["sure"]))
    meas["lamA_T"] = res["sure"]
    meas["none_c_P_disp_ge_lamA"] = res["none_c_k_th_sure"] / res["none_c_R"]
    out.append(claim("S3.sure_bound", "clipped SGD never moves further than lam A(T): P_hat(max_t ||theta_t - theta_0|| >= lam A(T)) = 0",
                     meas, "0 replicas with max_t ||theta_t - theta_0|| >= lam A(T) (and S_T <= lam A(T) (1 + 1e-12))",
                     criteria=[crit("replicas with max_t ||theta_t - theta_0|| >= lam A(T) (clip_c, clip_init)",
                                    [res["clip_c_k_th_sure"], res["clip_init_k_th_sure"]], "==", 0),
                               crit("max over replicas of S_T / (lam A(T)) (clip_c, clip_init)",
                                    [meas[n]["max_S_T_over_lamA"] for n in ("clip_c", "clip_init")], "<=", 1 + 1e-12)],
                     paper="Lemma 1", verdict="corrected",
                     note="Holds surely (triangle inequality), so it is vacuous as a probability statement: no "
                          "concentration inequality is needed on a finite horizon; deterministic, no false-alarm "
                          "rate. Unclipped runs are shown for contrast."))
    # (3) unclipped exceedance
    R = res["none_c_R"]
    lo, hi = bounds.clopper_pearson(res["none_c_k_xi"], R)
    pin = b["pinelis"]
    sel = pin <= cfg.pinelis_max
    good = sel & (lo > 0) & (lo >= cfg.unclipped_factor * pin)    # lo > 0: both sides 0 (underflow) does not count
    ok = bool(np.any(good))
    j = int(np.argmax(sel)) if sel.any() else 0                  # first r with Pinelis <= pinelis_max
    i = int(np.max(np.flatnonzero(good))) if ok else j           # largest r that passes
    # the witness of the criteria: the smallest r that passes (else the first r with Pinelis <= pinelis_max)
    w = int(np.min(np.flatnonzero(good))) if ok else j
    with np.errstate(divide="ignore"):
        ratio_w = float(lo[w] / pin[w]) if pin[w] > 0 else (np.inf if lo[w] > 0 else 0.0)
    out.append(claim("S3.unclipped_exceeds",
                     "unclipped SGD: the noise exceeds the clipped Pinelis bound (lam = 1) by far",
                     dict(first_r_with_pinelis_le_max=float(r[j]), P_hat_there=float(res["none_c_k_xi"][j] / R),
                          lowerCI_there=float(lo[j]), pinelis_there=float(pin[j]),
                          smallest_r_passing=float(r[w]) if ok else None,
                          largest_r_passing=float(r[i]) if ok else None,
                          P_hat_at_largest_r_passing=float(res["none_c_k_xi"][i] / R) if ok else None,
                          lowerCI_at_largest_r_passing=float(lo[i]) if ok else None,
                          pinelis_at_largest_r_passing=float(pin[i]) if ok else None,
                          E_xi_T2=float(np.mean(res["none_c_xi_T2"])), lam2_Sigma2=lam ** 2 * res["sum_a2"],
                          n_nonfinite=res["none_c_n_nonfinite"]),
                     f"some r with Pinelis(r) <= {cfg.pinelis_max:g} has lower CI >= {cfg.unclipped_factor:g} x Pinelis(r) "
                     "and lower CI > 0",
                     criteria=[crit(f"Pinelis(r) at r = {r[w]:.4g} (the smallest r that passes)", float(pin[w]), "<=",
                                    cfg.pinelis_max),
                               crit(f"CP95 lower limit at r = {r[w]:.4g}", float(lo[w]), ">", 0),
                               crit(f"CP95 lower limit / Pinelis(r) at r = {r[w]:.4g}", ratio_w, ">=",
                                    cfg.unclipped_factor)],
                     paper="Lemma 1 (role of clipping: |increment| <= a lam)", verdict="confirmed",
                     note="Pinelis evaluated with the clipped lam = 1 (as in the pilot); without clipping no lam exists, "
                          "and the bound, which needs ||M|| <= 2 lam, does not apply. False-alarm rate (a pass although "
                          "P < 10 x Pinelis at every r): <= 2.5 % per r (one-sided limit of a 95 % Clopper-Pearson "
                          f"interval), {int(sel.sum())} r searched."))
    # (4) report: paper's printed constant against the clipped noise
    rep = {}
    for name in ("clip_c", "clip_init"):
        R = res[name + "_R"]
        k = res[name + "_k_xi"]
        lo, hi = bounds.clopper_pearson(k, R)
        with np.errstate(divide="ignore", invalid="ignore"):
            rat = np.where(lo > 0, lo / b["paper"], 0.0)
        i = int(np.argmax(rat))
        j = int(np.argmax(k / R - b["paper"]))
        rep[name] = dict(violated=bool(rat[i] > 1), r_max_lowerCI_over_paper=float(r[i]),
                         lowerCI_over_paper=float(rat[i]), r_max_excess=float(r[j]), P_hat_there=float(k[j] / R),
                         CI_there=[float(lo[j]), float(hi[j])], paper_bound_there=float(b["paper"][j]),
                         pinelis_there=float(b["pinelis"][j]))
    out.append(claim("S3.paper_constant_on_xi",
                     "does the clipped noise violate the paper's printed bound 2exp(-2 r^2/(lam^2 Sigma_2))?",
                     rep, "report only (violation = lower CI above the paper's bound at some r)", None,
                     paper="eqs. (14)-(15)", verdict="report",
                     note="The printed bound is not a valid bound for xi (exponent 16x too large, §2.2)."))
    # (5) report: setup facts
    out.append(claim("S3.setup",
                     "where lam = 1 sits among the per-sample gradient norms, and how close theta_c is to a zero of H",
                     dict(lam_percentile_at_init_seeds=res["lam_percentile_init"],
                          grad_norm_p25_p50_p75_at_init=res["grad_norm_pcts_init"],
                          lam_percentile_at_theta_c=res["lam_percentile_c"], tau_c=cfg.tau_c,
                          H_norm_theta_c=res["H_c"], theta_c_norm=res["theta_c_norm"], F_theta_c=res["F_c"],
                          A_T=res["A_T"], Sigma2_T=res["sum_a2"],
                          clip_fraction_mean={n: float(np.mean(res[n + "_clip_fraction"])) for n in ("clip_c", "clip_init")}),
                     "report only", None, paper=None, verdict="report",
                     note="Spec said lam ~ 75th percentile at init; it is near the 25th (§5b). The clipped ODE does not "
                          "reach ||H|| < 1e-8 on D64-heavy, so theta_c is the ODE end point at tau_c."))
    return out
