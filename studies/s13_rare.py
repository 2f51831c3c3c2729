"""S13. Blow-up probabilities down to 1e-10 and below: multilevel splitting against exact answers and the bounds.

The S3 figure stops near 1/R: with R replicas nothing rarer is seen, exactly where the
concentration bounds (Pinelis-Azuma, coordinate union, Pinelis-Bennett) claim to say something.
Here dynclip.rare.exceedance estimates P(max_{s<=T} Q_s >= r) by adaptive multilevel splitting
(generalised AMS, unbiased; 95 % log-normal intervals from the theory's relative variance) down to
1e-10 and below:

(a) the two-point walk (mlp([1, 1]), y in {0, 10}, loss mse, classic lambda = 1, theta_0 = (0, 5),
    constant step a = 2^-6): b moves by +-a with a fair sign while it stays in (0.5, 9.5), so
    P(max_s |theta_s - theta_0| >= r) is known exactly (dynamic programming on the lattice,
    rare.walk_max_tail). Here the drift H is 0, so the displacement is the noise xi and every noise
    bound applies, with d = 1 (scalar Azuma too).
(b, c) S3's MLP: tanh 2-8-1 on D64-heavy, classic lambda = 1, a(t) = 1/(t+10), T = 2000, B = 1, from
    theta_c (S3's end point of the clipped ODE): the noise ||xi|| (where Pinelis, coordinate union and
    Pinelis-Bennett hold) and the displacement ||theta - theta_0|| (where only the sure bound lambda A(T)
    does). Plain Monte Carlo (R runs, Clopper-Pearson) beside the splitting where it resolves.
The bottom row gives the tightness of each valid bound in the tail: bound / true probability at each
r (the exact value on the walk, the splitting estimate on the MLP).
"""
from dataclasses import dataclass
import math

import numpy as np

import dynclip as dc
from dynclip import bounds, clipping as C, rare, schedules as S
from studies._harness import claim, crit
from studies._problems import mlp_heavy, theta_c


def _norm_isf(q):
    from scipy.stats import norm
    return norm.isf(q)

TITLE = "Blow-up probabilities down to 1e-10: multilevel splitting vs exact answers and the bounds"
PAPER_CLAIMS = ["Lemma 1, eqs. (14)-(16)"]


@dataclass(frozen=True)
class Config:
    seed: int = 0
    # (a) the two-point walk
    walk_step: float = 2.0 ** -6
    walk_steps: int = 400
    walk_m: tuple = (40, 60, 80, 100, 120, 140)   # radii (m - 1/2) a: P from ~0.1 down to ~3e-12
    walk_particles: int = 1000
    walk_mc: int = 20_000
    # (b, c) S3's MLP
    lam: float = 1.0
    a0: float = 1.0
    t0: float = 10.0
    n_steps: int = 2000
    tau_c: float = 2e4
    mc_replicas: int = 2000
    particles: int = 300
    n_r: int = 7                    # radii per quantity, from the MC median to the extrapolated p_target
    p_target: float = 1e-13
    cost_p: float = 1e-9            # the cost ratio is reported at the radius whose p is nearest this
    cost_min: float = 1e4


QUICK = Config(walk_steps=100, walk_m=(20, 30, 40, 50), walk_particles=100, walk_mc=2000, n_steps=100,
               tau_c=200.0, mc_replicas=300, particles=40, n_r=4, p_target=1e-6, cost_p=1e-6, cost_min=10.0)


def _walk(cfg):
    net, (X, Y) = dc.mlp([1, 1]), dc.data.two_point()
    a, T = cfg.walk_step, cfg.walk_steps
    sched, th0 = S.constant(a), np.array([0.0, 5.0])
    r = (np.asarray(cfg.walk_m) - 0.5) * a
    kw = dict(n_steps=T, radius=r, theta0=th0)
    sp = rare.exceedance(net, X, Y, C.classic(cfg.lam), sched, seed=cfg.seed, n_particles=cfg.walk_particles, **kw)
    mc = rare.exceedance(net, X, Y, C.classic(cfg.lam), sched, seed=cfg.seed + 1, method="mc",
                         n_particles=cfg.walk_mc, **kw)
    m_fine = np.arange(1, int(max(cfg.walk_m)) + 11)
    r_fine = (m_fine - 0.5) * a
    out = dict(walk_r=r, walk_exact=rare.walk_max_tail(np.full(T, a), r), walk_r_fine=r_fine,
               walk_exact_fine=rare.walk_max_tail(np.full(T, a), r_fine), walk_sum_a2=T * a * a)
    b = rare.valid_bounds(C.classic(cfg.lam), net, sched, T, r_fine, noise_dim=1)
    for name, v in b.items():
        out[f"walk_bound_{name}"] = v
    out.update(_pack("walk_sp", sp))
    out.update(_pack("walk_mc", mc))
    out["walk_mc_k"] = np.round(mc.probability * cfg.walk_mc).astype(np.int64)
    return out


def _pack(prefix, res):
    d = {f"{prefix}_{k}": getattr(res, k) for k in ("probability", "std_error", "ci_low", "ci_high")}
    d[f"{prefix}_steps"] = res.n_model_steps
    d[f"{prefix}_cost_ratio"] = res.mc_cost_ratio() if res.method == "splitting" else np.full(res.radius.size, np.nan)
    return d


def _radii(scores, cfg):
    """n_r radii from the MC median to where a Gaussian tail fitted to the resolved MC points reaches p_target."""
    s = np.sort(scores[np.isfinite(scores)])
    R = s.size
    grid = np.quantile(s, [0.5, 0.8, 0.9, 0.95, 0.98, 0.99])
    grid = grid[grid < s[-1]]
    p = np.array([np.mean(s >= x) for x in grid])
    ok = p >= 10.0 / R
    slope, icpt = np.polyfit(grid[ok] ** 2, np.log(p[ok]), 1) if ok.sum() >= 2 else (-1.0 / s[-1] ** 2, 0.0)
    slope = min(slope, -1e-12)
    r_hi = math.sqrt(max((math.log(cfg.p_target) - icpt) / slope, grid[0] ** 2 * 1.5))
    return np.linspace(grid[0], max(r_hi, grid[0] * 1.5), cfg.n_r)


def _mlp(cfg):
    net, X, Y = mlp_heavy()
    rule, sched = C.classic(cfg.lam), S.inverse(cfg.a0, cfg.t0)
    thc = theta_c(cfg.lam, cfg.tau_c)[0]
    sim = dc.simulate(net, X, Y, rule, sched, n_steps=cfg.n_steps, seed=cfg.seed + 2, n_replicas=cfg.mc_replicas,
                      theta0=thc, track_noise=True, record_every=cfg.n_steps, progress=False)
    A_T, S2 = S.sums(sched, cfg.n_steps)
    out = dict(mlp_A_T=A_T, mlp_sum_a2=S2, mlp_R=cfg.mc_replicas, mlp_d=net.n_params)
    for q, scores in (("noise", sim.max_noise), ("displacement", sim.max_displacement)):
        scores = np.where(np.isfinite(scores), scores, np.inf)
        r = _radii(scores, cfg)
        sp = rare.exceedance(net, X, Y, rule, sched, n_steps=cfg.n_steps, radius=r, seed=cfg.seed + 3, quantity=q,
                             n_particles=cfg.particles, theta0=thc)
        k = np.array([np.sum(scores >= x) for x in r])
        lo, hi = bounds.clopper_pearson(k, cfg.mc_replicas)
        out.update({f"{q}_r": r, f"{q}_mc_k": k, f"{q}_mc_low": np.asarray(lo), f"{q}_mc_high": np.asarray(hi)})
        out.update(_pack(f"{q}_sp", sp))
        rf = np.linspace(r[0] * 0.5, r[-1] * 1.1, 300)
        out[f"{q}_r_fine"] = rf
        for name, v in rare.valid_bounds(rule, net, sched, cfg.n_steps, rf, quantity=q).items():
            out[f"{q}_bound_{name}"] = v
            out[f"{q}_boundat_{name}"] = rare.valid_bounds(rule, net, sched, cfg.n_steps, r, quantity=q)[name]
    return out


def run(cfg):
    out = _walk(cfg)
    out.update(_mlp(cfg))
    return out


def _walk_bounds(res):
    names = [k[len("walk_bound_"):] for k in res if k.startswith("walk_bound_")]
    m = (res["walk_r"][:, None] == res["walk_r_fine"][None, :]).argmax(axis=1)
    return {n: res[f"walk_bound_{n}"][m] for n in names}


def check(res, cfg):
    out = []
    r, ex = res["walk_r"], res["walk_exact"]
    lo, hi, p = res["walk_sp_ci_low"], res["walk_sp_ci_high"], res["walk_sp_probability"]
    N = cfg.walk_particles
    rs = [f"{x:.4g}" for x in r]
    # each radius at level 1 - 0.05 / n_r (Bonferroni): the whole check has a false-alarm rate <= 5 %
    s = np.sqrt(np.log1p((res["walk_sp_std_error"] / p) ** 2))
    z = np.abs(np.log(p / ex)) / s
    zb = float(_norm_isf(0.025 / r.size))
    inside95 = int(np.sum((lo <= ex) & (ex <= hi)))
    out.append(claim(
        "S13.walk_exact",
        "two-point walk: the splitting estimate agrees with the exact P(max_s |theta_s - theta_0| >= r) at every r, "
        "from ~1e-1 down to the smallest exact value, within its own error",
        dict(per_radius={f"r={x:.4g}": {"exact": e, "splitting": pp, "CI95": [l, h], "z": zz}
                         for x, e, pp, l, h, zz in zip(r, ex, p, lo, hi, z)},
             n_inside_CI95=inside95, n_radii=int(r.size)),
        f"|ln(p_hat / p)| / s <= {zb:.3f} at every r (s: the estimate's log-normal sd; level 1 - 0.05/{r.size} per r); "
        "smallest exact value <= 1e-10 (full size)",
        criteria=[crit(f"|ln(p_hat/p)| / s, r = {rs}", list(z), "<=", zb)]
        + ([crit("smallest exact probability reached", float(ex.min()), "<=", 1e-10)] if cfg.p_target <= 1e-10 else []),
        paper=None, verdict="report",
        note=f"N = {N} particles, a tenth killed per iteration (ties: all at the level), constant step a = "
             f"{cfg.walk_step:g}, T = {cfg.walk_steps}; exact by dynamic programming on the lattice (radii halfway "
             f"between lattice points, so rounding cannot move a path across r). {inside95} of {r.size} 95 % "
             "intervals contain the exact value. False-alarm rate: <= 5 % for the whole check if the log-normal "
             "interval is calibrated (Bonferroni over the radii); the spread of log p_hat measured over 20 seeds "
             "is 1.0-1.35 x the theory's, which raises it to at most ~15 %."))
    theory = np.sqrt(-np.log(ex) / N)
    rel = res["walk_sp_std_error"] / np.where(p > 0, p, np.nan)
    out.append(claim(
        "S13.walk_relerr",
        "two-point walk: the splitting's relative standard error is the theory's sqrt(-ln p / N) (ideal AMS)",
        {f"r={x:.4g}": {"relative error": e, "sqrt(-ln p / N)": t} for x, e, t in zip(r, rel, theory)},
        "relative error / sqrt(-ln p / N) in [0.8, 1.6] at every r with p < 0.5",
        criteria=[crit("relative error / sqrt(-ln p/N) where p < 0.5", list((rel / theory)[ex < 0.5]), "in", [0.8, 1.6])],
        paper=None, verdict="report",
        note="The reported error is the fixed-level formula along the levels used (1/N per e-fold of probability "
             "for a small killed fraction); the spread of the estimates over seeds is checked against it in "
             "tests/test_rare.py (measured 1.0-1.35 x). Deterministic given the seed."))
    i = int(np.argmin(np.abs(np.log(ex / cfg.cost_p))))
    ratio = float(res["walk_sp_cost_ratio"][i])
    out.append(claim(
        "S13.walk_cost",
        f"cost: SGD steps plain Monte Carlo needs for the splitting's relative error at p ~ {cfg.cost_p:g}, "
        "divided by the splitting's SGD steps (all radii)",
        dict(r=float(r[i]), exact=float(ex[i]), relative_error=float(rel[i]), splitting_steps=res["walk_sp_steps"],
             mc_steps_needed=float(ratio * res["walk_sp_steps"]), ratio=ratio),
        f"ratio >= {cfg.cost_min:g}",
        criteria=[crit(f"MC steps / splitting steps at r = {r[i]:.4g} (p = {ex[i]:.2g})", ratio, ">=", cfg.cost_min)],
        paper=None, verdict="report",
        note="MC needs (1 - p) / (p e^2) runs of T steps for a relative error e. Deterministic given the seed."))
    # MLP: splitting against MC where MC resolves; the valid bounds above the estimates
    meas, crits, bmeas, bcrits = {}, [], {}, []
    for q in ("noise", "displacement"):
        k, R = res[f"{q}_mc_k"], res["mlp_R"]
        ok = k >= 10
        sl, sh = res[f"{q}_sp_ci_low"], res[f"{q}_sp_ci_high"]
        ml, mh = res[f"{q}_mc_low"], res[f"{q}_mc_high"]
        meas[q] = {f"r={x:.4g}": {"MC": kk / R, "MC CI95": [a, b], "splitting": pp, "splitting CI95": [c, d]}
                   for x, kk, a, b, pp, c, d, o in zip(res[f"{q}_r"], k, ml, mh, res[f"{q}_sp_probability"], sl, sh, ok) if o}
        crits += [crit(f"{q}: MC upper minus splitting lower, where MC has >= 10 hits", list((mh - sl)[ok]), ">=", 0),
                  crit(f"{q}: splitting upper minus MC lower, where MC has >= 10 hits", list((sh - ml)[ok]), ">=", 0)]
        vb = {n[len(f"{q}_boundat_"):]: res[n] for n in res if n.startswith(f"{q}_boundat_")}
        if vb:
            vmin = np.min(np.array(list(vb.values())), axis=0)
            bmeas[q] = {f"r={x:.4g}": {"splitting CI95 lower": a, "min valid bound": b}
                        for x, a, b in zip(res[f"{q}_r"], sl, vmin)}
            bcrits.append(crit(f"{q}: min(valid bounds) minus splitting lower limit, every r", list(vmin - sl), ">=", 0))
    out.append(claim(
        "S13.mlp_mc_agreement",
        "MLP (S3's setup): splitting and plain Monte Carlo agree where Monte Carlo resolves the probability",
        meas, "the two 95 % intervals overlap at every r where MC has >= 10 hits",
        criteria=crits, paper=None, verdict="report",
        note=f"MC: R = {res['mlp_R']} runs (Clopper-Pearson); splitting: {cfg.particles} particles, another seed. "
             "False-alarm rate: two valid 95 % intervals miss each other far less often than 5 % per r."))
    wb = _walk_bounds(res)
    wmin = np.min(np.array(list(wb.values())), axis=0)
    out.append(claim(
        "S13.tail_valid_bounds",
        "in the tail (down to 1e-10): the probability that clipped SGD's noise exceeds r stays under every valid "
        "bound (exact on the two-point walk; splitting's lower 95 % limit on the MLP noise; the sure bound on "
        "the MLP displacement)",
        dict(walk={f"r={x:.4g}": {"exact": e, "min valid bound": b} for x, e, b in zip(r, ex, wmin)}, **bmeas),
        "exact <= min(valid bounds) on the walk; splitting lower limit <= min(valid bounds) on the MLP, every r",
        criteria=[crit("walk: min(valid bounds) minus exact, every r", list(wmin - ex), ">=", 0)] + bcrits,
        paper="eqs. (14)-(15) applied to xi (Lemma 3 noise)", verdict="corrected",
        note="The correct (dimension-free Pinelis, coordinate union, Pinelis-Bennett; scalar Azuma on the walk) "
             "bounds hold deep in the tail, where S3's Monte Carlo could not look. The walk comparison is exact "
             "(no false alarm); on the MLP a miss although the bound holds has probability <= 2.5 % per r "
             "(one-sided limit), far less where the bound is loose."))
    # tightness: bound / true probability
    tight = {"walk (bound / exact)": {n: {f"r={x:.4g}": b / e for x, b, e in zip(r, v, ex)} for n, v in wb.items()}}
    for q in ("noise",):
        pp = res[f"{q}_sp_probability"]
        vb = {n[len(f"{q}_boundat_"):]: res[n] for n in res if n.startswith(f"{q}_boundat_")}
        with np.errstate(divide="ignore", invalid="ignore"):
            tight[f"MLP {q} (bound / splitting estimate)"] = {n: {f"r={x:.4g}": b / e for x, b, e in
                                                                  zip(res[f"{q}_r"], v, pp)} for n, v in vb.items()}
    j = int(np.argmin(ex))
    pn, rn = res["noise_sp_probability"], res["noise_r"]
    vbn = {n[len("noise_boundat_"):]: res[n] for n in res if n.startswith("noise_boundat_")}
    jn = int(np.argmin(np.where(pn > 0, pn, np.inf)))
    out.append(claim(
        "S13.tightness", "how tight is each valid bound in the tail? bound / true probability at each r",
        tight, "report only", None, paper="eqs. (14)-(16)", verdict="report",
        note=f"Walk, at p = {ex[j]:.2g} (r = {r[j]:.4g}): " + ", ".join(f"{n} {wb[n][j] / ex[j]:.3g} x"
                                                                      for n in wb)
             + f". MLP noise, at p = {pn[jn]:.2g} (r = {rn[jn]:.4g}): " + ", ".join(
                 f"{n} {vbn[n][jn] / pn[jn]:.3g} x" for n in vbn)
             + ". Every ratio grows with r: each bound decays more slowly than the true tail (on the walk only "
               "scalar Azuma, = coordinate union with d = 1, stays within a factor ~20); on the MLP the noise of clipped "
               "SGD near theta_c is far below lambda per step, and the bounds, built on ||M|| <= 2 lambda, exceed the "
               "truth by many orders of magnitude."))
    return out
