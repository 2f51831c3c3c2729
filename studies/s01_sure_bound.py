"""S1. Lemma 1 of Ramaswamy (2023): the sure displacement bound, and why (14)-(15) fail.

Lemma 1 sums the clipped updates (12)-(13): ||theta_s|| <= ||theta_0|| + S_s with
S_s = sum_{t<s} a(t) ||g_t / c_t|| (the paper's M_s - M_0). It then calls M_s a
*super*martingale with |M_{t+1} - M_t| <= a(t) lambda and applies Hoeffding-Azuma:
(14) P(S_s > rho) <= 2 exp(-2 rho^2 / (lambda^2 sum_{t<s} a(t)^2)), and, uniformly in s,
(15) P(S_s > rho) <= 2 exp(-2 rho^2 / (gamma lambda^2)) with gamma = pi^2/6.
In fact S_s is nondecreasing, so M_s is a *sub*martingale with compensator increments
a(s) E(theta_s) > 0, E(theta) = mean_j ||clip_lambda g(theta; z_j)||, and no concentration
inequality bounds its upper tail. What does hold, on every path and for any loss, is the
sure bound ||theta_s - theta_0|| <= S_s <= lambda A(s), A(s) = sum_{t<s} a(t).
Setups (THEORY S1): (i) two-point 1-D location model y in {0, 10}, lambda = 1, a = 1/(t+1),
theta_0 = 5, T = 1e4, R = 1000: every step is clipped while theta is in [1, 9], so S_s equals
the harmonic number H_s deterministically and exceeds 5 for s >= 83, where (15) promises
P <= 1.26e-13; (ii) MLP-A (tanh 2-8-1) on D64-heavy, loss (f-y)^2, lambda = 1, a = 1/(t+10),
T = 2e4, R = 200, from the standard init and from a far init (output weights x20);
(iii) 1-D quadratic, y ~ N(0,1) (N = 1000), theta_0 = 100, lambda = 10, a = 1/(t+1), T = 2000,
R = 100: clipping never switches off, so theta_s = theta_0 - lambda A(s) and the sure bound is
attained (81.8); (iv) logistic loss log(1 + e^-theta) on one separable point, lambda = 1 (never
active), a = 1/(t+1), T = 1e6 (dynclip.toys.run): theta_t increases without bound along the ODE solution
theta + e^theta = tau + C, so no finite-horizon bound can be uniform in time.
F1a: S_s and ||theta_s - theta_0|| against A(s), with the sure bound lambda A(s).
F1b: P(S_T > rho) and P(max_s ||theta_s - theta_0|| > rho) against rho, with the paper's (15).
F1c: the compensator increments a(s) E(theta_s) > 0 (submartingale), and E[S_s] against the
compensator (for the MLP: exact over the first 1000 steps, from a replay of the same replicas recorded
at every step, then a trapezoid rule over the records). F1d: the unbounded escape of (iv), SA against the ODE solution.
"""
from dataclasses import dataclass

import numpy as np
from scipy.special import lambertw

import dynclip as dc
from dynclip import clipping as C, schedules as S, meanfield as mf, bounds, toys
from dynclip.rng import replica_seeds
from studies._harness import claim, crit

TITLE = "Finite-horizon displacement is bounded surely; M_s is a submartingale and (14)-(15) fail"
PAPER_CLAIMS = ["Lemma 1", "eq. (12)-(13)", "eq. (14)-(16)", "M_s is a supermartingale"]

GAMMA = np.pi ** 2 / 6          # the paper's sum of a(t)^2 for a(t) = 1/t


@dataclass(frozen=True)
class Config:
    seed: int = 0
    rel_tol: float = 1e-12                # sure-bound checks: a <= b (1 + rel_tol)
    # (i) two-point 1-D, y in {0, 10}
    i_T: int = 10_000
    i_R: int = 1000
    i_R_fine: int = 20                    # replicas recorded at every step (the first i_R_fine of the bulk)
    i_record_every: int = 83              # bulk records at 0, 83, 166, ...: s = 83 is a record
    i_rho: float = 5.0
    i_theta0: float = 5.0
    i_tol_SH: float = 1e-12               # |S_s - H_s| while theta in [1, 9]
    # (ii) MLP-A on D64-heavy
    ii_T: int = 20_000
    ii_R: int = 200
    ii_lam: float = 1.0
    ii_t0: float = 10.0                   # a = 1/(t + 10)
    ii_far: float = 20.0                  # far init: output weights x 20
    ii_record_every: int = 200
    ii_T_fine: int = 1000                 # compensator exact over the first steps (multiple of ii_record_every)
    # (iii) drift case
    iii_N: int = 1000
    iii_T: int = 2000
    iii_R: int = 100
    iii_lam: float = 10.0
    iii_theta0: float = 100.0
    iii_rho: float = 50.0
    iii_record_every: int = 10            # the full-data loss (N = 1000) is evaluated at every record
    iii_tol: float = 1e-9                 # max_s |theta_s - theta_0| = lambda A(T) to this
    # (iv) logistic escape
    iv_T: int = 1_000_000
    iv_theta0: float = 0.0
    iv_t_min: int = 100
    iv_tol: float = 0.05                  # |theta_SA - theta_ODE| / theta_ODE for t >= iv_t_min
    iv_n_rec: int = 300


QUICK = Config(i_T=1000, i_R=100, i_R_fine=5, ii_T=2000, ii_R=8, ii_record_every=20, ii_T_fine=200, iii_R=10,
               iv_T=100_000)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _sure_violations(disp, Ssum, lamA, tol):
    """Counts of ||theta_s - theta_0|| > S_s (1+tol) and S_s > lambda A(s) (1+tol), and the worst ratios."""
    ok = np.isfinite(disp) & np.isfinite(Ssum)
    d, s, b = disp[ok], Ssum[ok], np.broadcast_to(lamA, disp.shape)[ok]
    v1 = int(np.sum(d > s * (1 + tol)))
    v2 = int(np.sum(s > b * (1 + tol)))
    r1 = float(np.max(d[s > 0] / s[s > 0])) if np.any(s > 0) else 0.0
    r2 = float(np.max(s[b > 0] / b[b > 0])) if np.any(b > 0) else 0.0
    return v1, v2, r1, r2, int(d.size)


def _log_idx(n, k):
    """About k log-spaced indices in [0, n), always including 0 and n - 1."""
    return np.unique(np.concatenate(([0, n - 1], np.geomspace(1, n - 1, k).astype(int))))


# ----------------------------------------------------------------------------------------------
# run
# ----------------------------------------------------------------------------------------------
def _setup_i(cfg):
    net = dc.mlp([1, 1])
    X, Y = dc.data.two_point()
    rule, sched = C.classic(1.0), S.inverse(1.0, 1.0)
    th0 = np.array([0.0, cfg.i_theta0])
    kw = dict(n_steps=cfg.i_T, seed=cfg.seed, theta0=th0, loss="half_mse", progress=False)
    fine = dc.simulate(net, X, Y, rule, sched, n_replicas=cfg.i_R_fine, record_every=1, record_theta=True, **kw)
    bulk = dc.simulate(net, X, Y, rule, sched, n_replicas=cfg.i_R, record_every=cfg.i_record_every, **kw)
    Hs = S.ode_time(sched, cfg.i_T)                       # H_s = sum_{t<s} 1/(t+1), s = 0..T
    same = bool(np.array_equal(fine.theta_final, bulk.theta_final[:cfg.i_R_fine]))
    # S_s = H_s while theta_t in [1, 9] for all t < s (every sample's gradient has |g| >= 1 there)
    b = fine.theta[:, :, 1]
    out_box = (b < 1.0) | (b > 9.0)
    first_out = np.where(out_box.any(1), out_box.argmax(1), cfg.i_T + 1)      # index of the first exit
    valid = np.arange(cfg.i_T + 1)[None, :] <= first_out[:, None]            # steps before the exit
    dSH_fine = float(np.max(np.abs(fine.update_sum - Hs[None, :])[valid]))
    inbox_bulk = bulk.max_displacement <= 4.0
    dSH_bulk = float(np.max(np.abs(bulk.update_sum[inbox_bulk] - Hs[bulk.step][None, :]))) if inbox_bulk.any() else np.nan
    # P(S_s > rho) for s >= 83: bulk records s = 83 k (S is nondecreasing), fine records every s
    s_star = int(np.argmax(Hs > cfg.i_rho))              # smallest s with H_s > rho (83 for rho = 5)
    rec_after = bulk.step >= s_star
    k_after = int(np.sum(np.all(bulk.update_sum[:, rec_after] > cfg.i_rho, axis=1)))
    fine_after = bool(np.all(fine.update_sum[:, s_star:] > cfg.i_rho))
    fine_before = bool(np.all(fine.update_sum[:, :s_star] <= cfg.i_rho))
    # compensator: E(theta) = mean_j min(|theta - y_j|, lambda) (1-D, exact at every step)
    Ebar = np.mean(np.minimum(np.abs(b[:, :, None] - Y[:, 0][None, None, :]), 1.0), axis=2)
    a = sched.values(0, cfg.i_T)
    comp = np.concatenate((np.zeros((b.shape[0], 1)), np.cumsum(a[None, :] * Ebar[:, :-1], axis=1)), axis=1)
    viol = [_sure_violations(fine.displacement, fine.update_sum, Hs[None, :], cfg.rel_tol),
            _sure_violations(bulk.displacement, bulk.update_sum, Hs[bulk.step][None, :], cfg.rel_tol)]
    md = [(bulk.max_displacement, bulk.update_sum[:, -1], Hs[-1])]
    li = _log_idx(cfg.i_T + 1, 300)
    return dict(
        i_same_streams=same, i_dSH_fine=dSH_fine, i_dSH_bulk=dSH_bulk, i_n_exit_fine=int(np.sum(first_out <= cfg.i_T)),
        i_n_exit_bulk=int(np.sum(~inbox_bulk)), i_s_star=s_star, i_k_after=k_after, i_fine_after=fine_after,
        i_fine_before=fine_before, i_H_star=float(Hs[s_star]), i_H_before=float(Hs[s_star - 1]),
        i_sum_a2_star=float(np.sum(a[:s_star] ** 2)), i_A_T=float(Hs[-1]),
        i_A=Hs[li], i_S_fine=fine.update_sum[:, li], i_disp_fine=fine.displacement[:, li],
        i_aE_fine=(a[None, li[:-1]] * Ebar[:, li[:-1]]), i_step_fine=li,
        i_S_T=bulk.update_sum[:, -1].copy(), i_maxdisp=bulk.max_displacement.copy(),
        i_Smean=fine.update_sum[:, li].mean(0), i_compmean=comp[:, li].mean(0),
        i_Ebar_min=float(np.min(Ebar)),
    ), viol, md


def _setup_ii(cfg):
    net = dc.mlp([2, 8, 1])
    X, Y = dc.data.d64("heavy", seed=cfg.seed)
    rule, sched = C.classic(cfg.ii_lam), S.inverse(1.0, cfg.ii_t0)
    _, inits = replica_seeds(cfg.seed, cfg.ii_R)
    th_std = np.stack([dc.init_params(net, int(s)) for s in inits])   # simulate's default init
    th_far = th_std.copy()
    th_far[:, net.layer_slices()[-1][0]] *= cfg.ii_far
    out, viol, md = {}, [], []
    a_all = sched.values(0, cfg.ii_T)
    for name, th0 in (("std", th_std), ("far", th_far)):
        r = dc.simulate(net, X, Y, rule, sched, n_steps=cfg.ii_T, seed=cfg.seed, n_replicas=cfg.ii_R, theta0=th0,
                        loss="mse", record_every=cfg.ii_record_every, record_theta=True, progress=False)
        lamA = cfg.ii_lam * r.time
        viol.append(_sure_violations(r.displacement, r.update_sum, lamA[None, :], cfg.rel_tol))
        # (13): ||theta_s|| <= ||theta_0|| + S_s
        nth = np.linalg.norm(r.theta, axis=2)
        n13 = int(np.sum(nth > (np.linalg.norm(th0, axis=1)[:, None] + r.update_sum) * (1 + cfg.rel_tol)))
        md.append((r.max_displacement, r.update_sum[:, -1], cfg.ii_lam * r.time[-1]))
        # compensator C_s = sum_{t<s} a(t) E(theta_t): exact over the first ii_T_fine steps (a replay of the
        # same replicas recorded at every step), then the trapezoid rule over the records
        Rn, K, P = r.theta.shape
        Tf, e = cfg.ii_T_fine, cfg.ii_record_every
        rf = dc.simulate(net, X, Y, rule, sched, n_steps=Tf, seed=cfg.seed, n_replicas=cfg.ii_R, theta0=th0,
                         loss="mse", record_every=1, record_theta=True, progress=False)
        jf = Tf // e                                            # long-run record index of step Tf
        viol.append(_sure_violations(rf.displacement, rf.update_sum, cfg.ii_lam * rf.time[None, :], cfg.rel_tol))
        replay_ok = bool(np.array_equal(rf.theta[:, ::e], r.theta[:, :jf + 1]))
        Ef = np.mean(np.minimum(mf.per_sample_grad_norms(net, X, Y, rf.theta.reshape(-1, P), "mse"), cfg.ii_lam),
                     axis=1).reshape(Rn, Tf + 1)
        Ebar = np.mean(np.minimum(mf.per_sample_grad_norms(net, X, Y, r.theta.reshape(-1, P), "mse"), cfg.ii_lam),
                       axis=1).reshape(Rn, K)
        comp_f = np.concatenate((np.zeros((Rn, 1)), np.cumsum(a_all[None, :Tf] * Ef[:, :-1], axis=1)), axis=1)
        trap = 0.5 * (Ebar[:, jf:-1] + Ebar[:, jf + 1:]) * np.diff(r.time[jf:])[None, :]
        comp_r = comp_f[:, -1:] + np.concatenate((np.zeros((Rn, 1)), np.cumsum(trap, axis=1)), axis=1)
        lf = _log_idx(Tf, 120)                                   # prefix steps shown (< Tf)
        c_step = np.concatenate((lf, r.step[jf:]))
        comp = np.concatenate((comp_f[:, lf], comp_r), axis=1)
        Sc = np.concatenate((rf.update_sum[:, lf], r.update_sum[:, jf:]), axis=1)
        aE = np.concatenate((a_all[lf][None, :] * Ef[:, lf], a_all[r.step[jf:-1]][None, :] * Ebar[:, jf:-1]), axis=1)
        out.update({f"ii_{name}_c_step": c_step, f"ii_{name}_c_A": S.ode_time(sched, cfg.ii_T)[c_step],
                    f"ii_{name}_aE_q": np.quantile(aE, [0.1, 0.5, 0.9], axis=0),
                    f"ii_{name}_Smean": Sc.mean(0), f"ii_{name}_compmean": comp.mean(0),
                    f"ii_{name}_replay_ok": replay_ok,
                    f"ii_{name}_Ebar_min": float(min(np.min(Ebar), np.min(Ef))),
                    f"ii_{name}_comp_T_mean": float(comp[:, -1].mean()),
                    f"ii_{name}_SmC_se": float(np.std(r.update_sum[:, -1] - comp[:, -1], ddof=1) / np.sqrt(Rn))})
        out.update({f"ii_{name}_A": r.time, f"ii_{name}_step": r.step,
                    f"ii_{name}_S_q": np.quantile(r.update_sum, [0.1, 0.5, 0.9], axis=0),
                    f"ii_{name}_disp_q": np.quantile(r.displacement, [0.1, 0.5, 0.9], axis=0),
                    f"ii_{name}_S_T": r.update_sum[:, -1].copy(), f"ii_{name}_maxdisp": r.max_displacement.copy(),
                    f"ii_{name}_n13": n13,
                    f"ii_{name}_clip_fraction": float(np.mean(r.clip_fraction)),
                    f"ii_{name}_S_T_se": float(np.std(r.update_sum[:, -1], ddof=1) / np.sqrt(Rn))})
    out["ii_A_T"] = float(out["ii_std_A"][-1])
    return out, viol, md


def _setup_iii(cfg):
    net = dc.mlp([1, 1])
    rng = np.random.default_rng(cfg.seed)
    Y = rng.normal(size=(cfg.iii_N, 1))
    X = np.zeros_like(Y)
    sched = S.inverse(1.0, 1.0)
    r = dc.simulate(net, X, Y, C.classic(cfg.iii_lam), sched, n_steps=cfg.iii_T, seed=cfg.seed,
                    n_replicas=cfg.iii_R, theta0=np.array([0.0, cfg.iii_theta0]), loss="half_mse",
                    record_every=cfg.iii_record_every, record_theta=True, progress=False)
    lamA = cfg.iii_lam * r.time
    b = r.theta[:, :, 1]
    Ebar = np.mean(np.minimum(np.abs(b[:, :, None] - Y[:, 0][None, None, :]), cfg.iii_lam), axis=2)
    a_rec = sched.values(0, cfg.iii_T)[r.step[:-1]]
    viol = [_sure_violations(r.displacement, r.update_sum, lamA[None, :], cfg.rel_tol)]
    md = [(r.max_displacement, r.update_sum[:, -1], lamA[-1])]
    return dict(
        iii_A=r.time, iii_step=r.step, iii_lamA_T=float(lamA[-1]), iii_maxdisp=r.max_displacement.copy(),
        iii_path_err=float(np.max(np.abs(b - (cfg.iii_theta0 - lamA[None, :])))),
        iii_S=r.update_sum[:3].copy(), iii_disp=r.displacement[:3].copy(),
        iii_S_T=r.update_sum[:, -1].copy(), iii_clip_fraction=float(np.min(r.clip_fraction)),
        iii_aE=a_rec[None, :] * Ebar[:, :-1], iii_Ebar_min=float(np.min(Ebar)), iii_y_max=float(Y.max()),
        iii_Smean=r.update_sum.mean(0), iii_compmean=np.concatenate(([0.0], np.cumsum(
            np.diff(r.time) * Ebar[:, :-1].mean(0)))),
    ), viol, md


def _setup_iv(cfg):
    rec = np.unique(np.concatenate(([0, 1, 2, 5], np.geomspace(10, cfg.iv_T, cfg.iv_n_rec).astype(np.int64))))
    # theta <- theta - a(t) clip_1(g), g = d/dtheta log(1 + e^-theta), a(t) = 1/(t+1), every step recorded
    sa = toys.run(toys.logistic(), C.classic(1.0), S.inverse(1.0, 1.0), [cfg.iv_theta0], cfg.iv_T, record_every=1,
                  record_theta=True)
    path = sa.theta[0, :, 0]
    th = path[rec]
    nclip = int(sa.n_clipped[0])
    nonincr = int(np.sum(~(np.diff(path) > 0)))               # steps t < T where theta did not increase
    gmax = float(np.max(sa.grad_norm[0, :-1]))               # max |g| over the steps t < T
    tau = S.ode_time(S.inverse(1.0, 1.0), cfg.iv_T)[rec]
    x = tau + cfg.iv_theta0 + np.exp(cfg.iv_theta0)          # theta + e^theta = tau + C
    ode_th = x - lambertw(np.exp(x)).real
    rel = np.full(th.shape, np.nan)
    nz = ode_th != 0
    rel[nz] = np.abs(th[nz] - ode_th[nz]) / np.abs(ode_th[nz])
    return dict(iv_t=rec, iv_tau=tau, iv_theta=th, iv_theta_ode=ode_th, iv_rel=rel, iv_nclip=int(nclip),
                iv_nonincr=int(nonincr), iv_gmax=float(gmax))


def run(cfg):
    res, viol, md = {}, {}, {}
    for name, fn in (("i", _setup_i), ("ii", _setup_ii), ("iii", _setup_iii)):
        out, v, m = fn(cfg)
        res.update(out)
        viol[name], md[name] = v, m
    res.update(_setup_iv(cfg))
    # max over ALL steps: max_s ||theta_s - theta_0|| <= S_T <= lambda A(T)
    md_viol = sum(int(np.sum(m > s * (1 + cfg.rel_tol)) + np.sum(s > b * (1 + cfg.rel_tol)))
                  for ms in md.values() for m, s, b in ms)
    res["sure_viol_disp_S"] = sum(v[0] for vs in viol.values() for v in vs)
    res["sure_viol_S_lamA"] = sum(v[1] for vs in viol.values() for v in vs)
    res["sure_viol_max"] = md_viol
    res["sure_ratio_disp_S"] = max(v[2] for vs in viol.values() for v in vs)
    res["sure_ratio_S_lamA"] = max(v[3] for vs in viol.values() for v in vs)
    res["sure_n_checked"] = sum(v[4] for vs in viol.values() for v in vs)
    return res


# ----------------------------------------------------------------------------------------------
# check
# ----------------------------------------------------------------------------------------------
def check(res, cfg):
    out = []
    tol = cfg.rel_tol
    out.append(claim(
        "S1.sure_bound",
        "||theta_s - theta_0|| <= S_s <= lambda A(s) on every recorded step of every run (setups i-iii; every step "
        "for setup i's first replicas and the first ii_T_fine steps of setup ii), and max over all steps of ||theta_s - theta_0|| <= S_T <= lambda A(T)",
        {"violations": res["sure_viol_disp_S"] + res["sure_viol_S_lamA"] + res["sure_viol_max"],
         "points_checked": res["sure_n_checked"],
         "max ||theta_s-theta_0|| / S_s": res["sure_ratio_disp_S"], "max S_s / (lambda A(s))": res["sure_ratio_S_lamA"]},
        f"0 violations with relative tolerance {tol:g}",
        criteria=[crit(f"points with ||theta_s - theta_0|| > S_s (1 + {tol:g})", res["sure_viol_disp_S"], "==", 0),
                  crit(f"points with S_s > lambda A(s) (1 + {tol:g})", res["sure_viol_S_lamA"], "==", 0),
                  crit(f"runs with max_s ||theta_s - theta_0|| > S_T (1 + {tol:g}) or S_T > lambda A(T) (1 + {tol:g})",
                       res["sure_viol_max"], "==", 0),
                  crit("points checked", res["sure_n_checked"], ">", 0)],
        paper="Lemma 1, eq. (12)-(13)", verdict="corrected",
        note="Eq. (13) and the displacement bound hold on every path, with no probability at all: Lemma 1's "
             "finite-horizon conclusion is true surely (||theta_s - theta_0|| <= lambda A(s)), and the "
             "martingale argument is not needed. The relative tolerance covers floating-point summation, and "
             "applies to both inequalities (in setup iii they are equalities). Deterministic: no false-alarm rate."))
    n13 = res["ii_std_n13"] + res["ii_far_n13"]
    out.append(claim(
        "S1.eq13", "(13): ||theta_s|| <= ||theta_0|| + S_s at every record of the MLP runs (setup ii, both inits)",
        {"violations": n13}, f"0 violations with relative tolerance {tol:g}",
        criteria=[crit(f"records with ||theta_s|| > (||theta_0|| + S_s)(1 + {tol:g}), both inits", n13, "==", 0)],
        paper="eq. (13)", verdict="confirmed", note="Deterministic (the triangle inequality on every path)."))
    crit_i = [crit("max |S_s - H_s| (every step of the first replicas, before any exit from [1, 9])",
                   res["i_dSH_fine"], "<", cfg.i_tol_SH)]
    if not np.isnan(res["i_dSH_bulk"]):          # no bulk replica stayed in [1, 9]: nothing to compare
        crit_i.append(crit("max |S_s - H_s| (bulk records, replicas that stayed in [1, 9])", res["i_dSH_bulk"],
                           "<", cfg.i_tol_SH))
    out.append(claim(
        "S1.i_S_equals_H",
        "(i) two-point: S_s = H_s = sum_{t<s} 1/(t+1) while theta stays in [1, 9] (every step clipped: S_s is "
        "deterministic)",
        {"max |S_s - H_s| (every step, first replicas)": res["i_dSH_fine"],
         "max |S_s - H_s| (bulk records, replicas that stayed in [1,9])": res["i_dSH_bulk"],
         "replicas leaving [1,9] (bulk)": res["i_n_exit_bulk"], "replicas (bulk)": cfg.i_R,
         "fine replicas identical to bulk replicas": res["i_same_streams"]},
        f"< {cfg.i_tol_SH:g}", criteria=crit_i, paper="eq. (14)-(15)", verdict="report",
        note="A check of the simulation (roundoff-limited), not of the paper."))
    p15 = bounds.paper_azuma(cfg.i_rho, 1.0, GAMMA)
    p14 = bounds.paper_azuma(cfg.i_rho, 1.0, res["i_sum_a2_star"])
    lo, _ = bounds.clopper_pearson(res["i_k_after"], cfg.i_R)
    out.append(claim(
        "S1.i_eq15",
        f"(i) P(S_s > {cfg.i_rho:g}) for every s >= {res['i_s_star']} (S_s nondecreasing; checked at every bulk record "
        f"s = {cfg.i_record_every}k and at every step of the first replicas), against (15)",
        {"P_hat": res["i_k_after"] / cfg.i_R, "CP95 lower": lo, "(15) bound": p15, "(14) bound at s*": p14,
         "H_{s*}": res["i_H_star"], "H_{s*-1}": res["i_H_before"]},
        f"P_hat = 1 for s >= {res['i_s_star']} (so its CP95 lower limit exceeds (15)'s {p15:.3g})",
        criteria=[crit(f"bulk replicas with S_s > {cfg.i_rho:g} at every record s >= {res['i_s_star']} (of {cfg.i_R})",
                       res["i_k_after"], "==", cfg.i_R),
                  crit(f"S_s > {cfg.i_rho:g} at every step s >= {res['i_s_star']} of the first {cfg.i_R_fine} replicas",
                       res["i_fine_after"], "is", True),
                  crit(f"CP95 lower limit of P(S_s > {cfg.i_rho:g}), s = {res['i_s_star']}, minus (15)'s bound",
                       lo - p15, ">", 0)],
        paper="eq. (14)-(15)", verdict="refuted", basis="ci",
        note=f"S_s = H_s exceeds 5 for s >= 83 on every path that stays in [1, 9] ({res['i_H_before']:.4f} at s = 82, "
             f"{res['i_H_star']:.4f} at s = 83), and S_s <= H_s surely gives P(S_s > 5) = 0 for s <= 82 "
             f"(measured: {res['i_fine_before']}). Leaving [1, 9] before s = 83 is possible, so P(S_83 > 5) < 1 "
             "and the refutation rests on the Clopper-Pearson interval (false-alarm rate <= 2.5 %, one-sided "
             "limit of a 95 % interval, one value of s). (15) is uniform in s, so one such s refutes it; Azuma's "
             "inequality needs a martingale, and S_s is a submartingale with drift lambda A(s) -> infinity."))
    # (iii)
    dev = float(np.max(np.abs(res["iii_maxdisp"] - res["iii_lamA_T"])))
    out.append(claim(
        "S1.iii_attained",
        "(iii) drift case: max_s |theta_s - theta_0| = lambda A(T) on every replica (the sure bound is attained; "
        "theta_s = theta_0 - lambda A(s) exactly)",
        {"lambda A(T)": res["iii_lamA_T"], "max |max_s|theta_s-theta_0| - lambda A(T)|": dev,
         "max |theta_s - (theta_0 - lambda A(s))| at records": res["iii_path_err"],
         "min clip fraction": res["iii_clip_fraction"]},
        f"|difference| <= {cfg.iii_tol:g}",
        criteria=[crit("max over replicas of |max_s |theta_s - theta_0| - lambda A(T)|", dev, "<=", cfg.iii_tol)],
        paper="Lemma 1", verdict="corrected",
        note="The sure bound lambda A(T) is sharp: no better finite-horizon bound exists without more assumptions. "
             "Deterministic (every step is clipped on every path): no false-alarm rate."))
    k50 = int(np.sum(res["iii_maxdisp"] > cfg.iii_rho))
    p15b = bounds.paper_azuma(cfg.iii_rho, cfg.iii_lam, GAMMA)
    # every sample is clipped at every step on every path iff theta stays more than lambda above max_j y_j;
    # theta decreases, so its smallest value theta_0 - lambda A(T) decides: then the path is deterministic
    margin = cfg.iii_theta0 - res["iii_lamA_T"] - res["iii_y_max"] - cfg.iii_lam
    out.append(claim(
        "S1.iii_eq15", f"(iii) P(max_s |theta_s - theta_0| > {cfg.iii_rho:g}) and P(S_T > {cfg.iii_rho:g}) against (15)",
        {"P_hat(max disp > rho)": k50 / cfg.iii_R, "P_hat(S_T > rho)": float(np.mean(res["iii_S_T"] > cfg.iii_rho)),
         "CP95 lower": bounds.clopper_pearson(k50, cfg.iii_R)[0], "(15) bound": p15b,
         "lambda A(T)": res["iii_lamA_T"], "max_j y_j": res["iii_y_max"]},
        f"P_hat = 1 against (15)'s {p15b:.3g}, on a path that is deterministic "
        f"(theta_0 - lambda A(T) - max_j y_j > lambda)",
        criteria=[crit(f"replicas with max_s |theta_s - theta_0| > {cfg.iii_rho:g} (of {cfg.iii_R})", k50, "==", cfg.iii_R),
                  crit("theta_0 - lambda A(T) - max_j y_j - lambda (> 0: every sample clipped at every step, "
                       "so P = 1 exactly)", margin, ">", 0)],
        paper="eq. (14)-(15)", verdict="refuted", basis="exact",
        note=f"Every step moves theta by exactly -a(t) lambda whatever the sample, so theta_s = theta_0 - lambda A(s) "
             f"on every path and P(max_s |theta_s - theta_0| > {cfg.iii_rho:g}) = 1 exactly, against (15)'s "
             f"{p15b:.3g}; the replicas confirm it (all {cfg.iii_R} exceed it)."))
    # submartingale
    emin = min(res["i_Ebar_min"], res["ii_std_Ebar_min"], res["ii_far_Ebar_min"], res["iii_Ebar_min"])
    lows = {nm: res[f"ii_{nm}_S_T"].mean() - 3 * res[f"ii_{nm}_S_T_se"] for nm in ("std", "far")}
    out.append(claim(
        "S1.submartingale",
        "M_s - M_0 = S_s has compensator increments a(s) E(theta_s) > 0, E(theta) = mean_j ||clip_lambda g(theta; z_j)||"
        " (at every record of setups i-iii), so E[S_s] increases: M_s is a submartingale, not a supermartingale",
        {"min E(theta_s)": emin, "E[S_T] (ii, std)": float(res["ii_std_S_T"].mean()),
         "E[S_T] (ii, far)": float(res["ii_far_S_T"].mean()), "E[S_T] - 3 SE (ii, std)": lows["std"],
         "E[S_T] - 3 SE (ii, far)": lows["far"]},
        "min E(theta_s) > 0 and E[S_T] - 3 SE > 0 = S_0",
        criteria=[crit("min over records of setups i-iii of E(theta_s) (exact average over the data)", emin, ">", 0),
                  crit("mean S_T - 3 SE (ii: std, far init)", [lows["std"], lows["far"]], ">", 0)],
        paper="Lemma 1: (M_s) is a supermartingale", verdict="refuted", basis="exact",
        note="A supermartingale needs E[S_{s+1} - S_s | F_s] = a(s) E(theta_s) <= 0 at every reached state; "
             "E(theta_s) is computed exactly (average over all N samples) at the recorded states and is > 0, so "
             "the first criterion refutes it without Monte Carlo. The second (a one-sided 3-SE normal limit, "
             "false-alarm rate about 0.13 % per init) shows E[S_T] > 0 = S_0 directly. "
             "The paper's own remark that M_s is 'almost surely increasing' contradicts 'supermartingale'. "
             "E(theta) for the MLP uses the per-sample gradient norms of dynclip.meanfield.per_sample_grad_norms."))
    rel = {nm: (res[f"ii_{nm}_S_T"].mean() - res[f"ii_{nm}_comp_T_mean"]) / res[f"ii_{nm}_comp_T_mean"]
           for nm in ("std", "far")}
    z = {nm: (res[f"ii_{nm}_S_T"].mean() - res[f"ii_{nm}_comp_T_mean"]) / res[f"ii_{nm}_SmC_se"] for nm in ("std", "far")}
    out.append(claim(
        "S1.compensator",
        "(ii) E[S_T] against the compensator E[sum_s a(s) E(theta_s)] (the compensated S is the only martingale "
        "to which the paper's Hoeffding-Azuma step applies, so E[S_T - C_T] = 0)",
        {"relative difference (std)": rel["std"], "relative difference (far)": rel["far"],
         "z = mean(S_T - C_T) / SE (std)": z["std"], "z (far)": z["far"],
         "replay of the first steps identical": bool(res["ii_std_replay_ok"] and res["ii_far_replay_ok"])},
        f"report only: C_s is exact for s <= {cfg.ii_T_fine} and a trapezoid rule over records every "
        f"{cfg.ii_record_every} steps after that", None,
        paper="eq. (14)", verdict="report",
        note="With the compensator, S_s - sum a E(theta) has increments in an interval of length a(s) lambda, and "
             "(14) holds for |S_s - compensator|; it says nothing about ||theta_s - theta_0||. In setups i and "
             "iii the compensator equals S_s exactly (every step is clipped)."))
    t_ok = res["iv_t"] >= cfg.iv_t_min
    worst = float(np.max(res["iv_rel"][t_ok]))
    i100 = int(np.argmax(res["iv_t"] >= cfg.iv_t_min))
    out.append(claim(
        "S1.iv_escape",
        "(iv) logistic loss on one separable point, lambda = 1 never active: theta_t increases at every step and "
        "follows the ODE solution theta + e^theta = tau + C (unbounded as tau -> infinity)",
        {"max rel. error for t >= t_min": worst, f"rel. error at t = {int(res['iv_t'][i100])}": float(res["iv_rel"][i100]),
         "rel. error at T": float(res["iv_rel"][-1]), "theta_T": float(res["iv_theta"][-1]), "T": cfg.iv_T,
         "steps where theta did not increase": res["iv_nonincr"], "clipped steps": res["iv_nclip"],
         "max |g|": res["iv_gmax"]},
        f"rel. error <= {cfg.iv_tol:g} for t >= {cfg.iv_t_min}, theta strictly increasing, no clipped step",
        criteria=[crit(f"max relative error SA vs ODE for {cfg.iv_t_min} <= t <= {cfg.iv_T}", worst, "<=", cfg.iv_tol),
                  crit("steps where theta did not increase", res["iv_nonincr"], "==", 0),
                  crit("clipped steps", res["iv_nclip"], "==", 0)],
        paper="Lemma 1 / Theorem 1 (uniform-in-time stability)", verdict="refuted", basis="exact",
        note="A deterministic recursion (one data point, no sampling) compared with the closed-form ODE solution: "
             "no false-alarm rate. No finite-horizon bound is uniform in time: lambda A(T) -> infinity, and here "
             "||theta_t|| -> infinity like log(tau) = log(ln t) under classic clipping. Theorem 1 needs "
             "sup_t ||theta_t|| < infinity, which Lemma 1 does not give."))
    return out


# ----------------------------------------------------------------------------------------------
# plot
# ----------------------------------------------------------------------------------------------
