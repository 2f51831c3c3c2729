"""S2. The Hoeffding-Azuma constant in Ramaswamy (2023) eqs. (14)-(16): paper vs correct.

The paper assumes increments |X_{t+1} - X_t| <= a(t) lambda and writes
(14) P(|X_s - X_0| > rho) <= 2 exp(-2 rho^2 / (lambda^2 Sigma_2)), Sigma_2 = sum_t a(t)^2.
That is Hoeffding's formula for increments in an interval of *length* a(t) lambda; a bound
|Delta| <= a(t) lambda only gives an interval of length 2 a(t) lambda, and the correct
(Azuma) statement is P(max_{s<=T} |X_s - X_0| >= r) <= 2 exp(-r^2 / (2 lambda^2 Sigma_2)):
the paper's exponent is 4x too large. The two-point 1-D example (y in {0, 10}, equal weights,
loss (theta - y)^2 / 2, classic lambda = 1, a(t) = 1/(t+1), theta_0 = 5) realises the paper's
hypothesis exactly: while theta is in [1, 9] every step is clipped to +-a(t) with a fair sign,
so theta_s - theta_0 = -X_s with X_s = sum_{t<s} a(t) eps_t (Rademacher eps). With T = 5000 and
R = 2e4 replicas, P(max_s |theta_s - theta_0| >= r) is measured (the engine tracks the maximum
over every step) and compared with both bounds. The events {max_s |theta_s - theta_0| >= r} and
{max_s |X_s| >= r} coincide for r <= 4 (the two processes agree until |X| first exceeds 4).
Analytic cross-check: the exact law of X_T by numerical convolution on a grid (mean-preserving
linear interpolation of each +-a(t) step), compared with the Monte-Carlo P(|theta_T - theta_0| >= r)
at the final time; the maximum over s has no simple closed form, so the convolution checks the
final-time value only. Because P(max_s |X_s| >= r) >= P(|X_T| >= r), the exact final-time law
alone already refutes the paper's bound. Note: |X_2| = 1 + 1/2 = 1.5 exactly on half the paths,
so at r = 1.5 the inequality direction matters; every probability here uses ">=".
F2: log P_hat(max_s |theta_s - theta_0| >= r) with 95 % Clopper-Pearson intervals, the final-time
P_hat and its exact convolution value, the paper's 2 exp(-2 r^2/(lambda^2 Sigma_2)) and the correct
2 exp(-r^2/(2 lambda^2 Sigma_2)); inset: the plug-in exponents of (16) (rho = 2^10, lambda = 30,
gamma = pi^2/6) for the paper's constant, correct scalar Azuma, Pinelis (vector noise xi) and
Pinelis-Bennett.
"""
from dataclasses import dataclass
import itertools

import numpy as np

import dynclip as dc
from dynclip import clipping as C, schedules as S, bounds, rare
from studies._harness import claim, crit

TITLE = "Hoeffding-Azuma constant: the paper's (14)-(16) vs the correct bound"
PAPER_CLAIMS = ["eq. (14)-(16)"]


@dataclass(frozen=True)
class Config:
    seed: int = 0
    T: int = 5000
    R: int = 20_000
    lam: float = 1.0
    a0: float = 1.0                        # a(t) = a0 / (t + 1)
    theta0: float = 5.0
    r_pass: tuple = (1.5, 2.0, 2.5, 3.0)   # paper's bound checked here (lower CI > bound)
    r_grid: tuple = (1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0)  # correct bound here
    conv_h: float = 5e-4                   # convolution grid spacing
    enum_T: int = 16                       # validate the convolution against exact enumeration (2^16 paths)
    mc_level: float = 0.999                # MC-vs-exact cross-check: exact value inside this CP interval
    # plug-in exponents (16): rho = 2^10, lambda = 30, gamma = pi^2/6; targets to 4 significant figures
    exp_targets: tuple = (("paper", 1416.6), ("azuma", 354.1), ("pinelis", 88.54), ("pinelis_bennett", 48.47))


QUICK = Config(T=400, R=1000, conv_h=1e-3)


def _tail_from_grid(p, h, r):
    """P(|X| >= r) from grid masses p at x_j = j h (j = -n..n)."""
    n = (p.size - 1) // 2
    x = np.abs(np.arange(-n, n + 1) * h)
    return np.array([p[x >= rr - 1e-9 * h].sum() for rr in np.atleast_1d(r)])


def _sig4(x):
    return float(f"{x:.4g}")


def run(cfg):
    net = dc.mlp([1, 1])
    X, Y = dc.data.two_point()
    sched = S.inverse(cfg.a0, 1.0)
    sim = dc.simulate(net, X, Y, C.classic(cfg.lam), sched, n_steps=cfg.T, seed=cfg.seed, n_replicas=cfg.R,
                      theta0=np.array([0.0, cfg.theta0]), loss="half_mse", record_every=cfg.T, progress=False)
    A_T, sum_a2 = S.sums(sched, cfg.T)
    r = np.asarray(cfg.r_grid)
    maxd = sim.max_displacement
    fin = sim.displacement[:, -1]
    k_max = np.array([np.sum(maxd >= rr) for rr in r])
    k_fin = np.array([np.sum(fin >= rr) for rr in r])
    # exact law of X_T on a grid; validation against exact enumeration at small T
    a = sched.values(0, cfg.T)
    p = rare.rademacher_sum_law(a, cfg.conv_h)
    p2 = rare.rademacher_sum_law(a, 2 * cfg.conv_h)
    r_fine = np.linspace(0.0, 4.5, 181)
    exact_fin = _tail_from_grid(p, cfg.conv_h, r)
    exact_fin_2h = _tail_from_grid(p2, 2 * cfg.conv_h, r)
    exact_curve = _tail_from_grid(p, cfg.conv_h, r_fine)
    ae = a[:cfg.enum_T]
    sums = np.abs(np.array(list(itertools.product((-1.0, 1.0), repeat=cfg.enum_T))) @ ae)
    pe = rare.rademacher_sum_law(ae, cfg.conv_h)
    r_enum = np.linspace(0.05, 3.3, 66) + 0.5 * cfg.conv_h * 0.37      # off-atom thresholds
    enum_err = float(np.max(np.abs(_tail_from_grid(pe, cfg.conv_h, r_enum) - np.array([np.mean(sums >= rr) for rr in r_enum]))))
    n_exit = int(np.sum(maxd > 4.0))
    return dict(
        r=r, k_max=k_max, k_fin=k_fin, R=cfg.R, A_T=A_T, sum_a2=sum_a2,
        k_max_gt15=int(np.sum(maxd > 1.5)), k_at15=int(np.sum(np.abs(maxd - 1.5) == 0.0)),
        exact_fin=exact_fin, conv_err_h=float(np.max(np.abs(exact_fin - exact_fin_2h))), r_fine=r_fine,
        exact_curve=exact_curve, conv_mass=float(p.sum()), conv_var=float(np.sum(p * (np.arange(p.size) - (p.size - 1) // 2) ** 2) * cfg.conv_h ** 2),
        enum_err=enum_err, n_exit=n_exit, maxdisp_max=float(maxd.max()),
        plugin=np.array([bounds.paper_plugin_exponents()[k] for k, _ in cfg.exp_targets]),
    )


def check(res, cfg):
    out = []
    r, R = res["r"], res["R"]
    lam, s2 = cfg.lam, res["sum_a2"]
    lo, hi = bounds.clopper_pearson(res["k_max"], R)
    paper = bounds.paper_azuma(r, lam, s2)
    correct = bounds.azuma(r, lam, s2)
    sel = np.isin(r, cfg.r_pass)
    rp = [f"{x:g}" for x in r[sel]]
    out.append(claim(
        "S2.paper_bound",
        "lower 95 % CP limit of P_hat(max_s |theta_s - theta_0| >= r) exceeds the paper's 2 exp(-2 r^2/(lambda^2 Sigma_2)) "
        "(two-point 1-D, an exact Rademacher martingale with |Delta| <= a(t) lambda)",
        {f"r={rr:g}": {"P_hat": k / R, "CP95 lower": l, "paper": pb} for rr, k, l, pb, s_ in
         zip(r, res["k_max"], lo, paper, sel) if s_},
        f"lower CI > paper bound at every r in {list(cfg.r_pass)}",
        criteria=[crit(f"CP95 lower limit minus the paper's bound, at r = {rp}", lo[sel] - paper[sel], ">", 0)],
        paper="eq. (14)-(15)", verdict="refuted", basis="ci",
        note=f"Sigma_2 = sum_(t<T) a(t)^2 = {s2:.4f}. At r = 1.5, |X_2| = 1 + 1/2 = 1.5 exactly on half of the "
             f"paths, so '>=' is used throughout: P_hat(>= 1.5) = {res['k_max'][r == 1.5][0] / R:.4f}, "
             f"P_hat(> 1.5) = {res['k_max_gt15'] / R:.4f}; both exceed the paper's {bounds.paper_azuma(1.5, lam, s2):.3g}. "
             f"False-alarm rate (a refutation although the paper's bound held): <= 2.5 % per r (one-sided limit of "
             f"a 95 % Clopper-Pearson interval), {int(sel.sum())} values of r, <= {2.5 * sel.sum():g} % in all."))
    ex = res["exact_fin"]
    out.append(claim(
        "S2.exact_final_time",
        "no Monte Carlo: the exact P(|X_T| >= r) (grid convolution) is a lower bound on P(max_s |X_s| >= r) and "
        "already exceeds the paper's bound",
        {f"r={rr:g}": {"exact P(|X_T|>=r)": e, "paper": pb} for rr, e, pb, s_ in zip(r, ex, paper, sel) if s_},
        f"exact > paper bound at every r in {list(cfg.r_pass)}, by more than the grid error (|h - 2h| difference)",
        criteria=[crit(f"exact P(|X_T| >= r) minus its grid error ({res['conv_err_h']:.1e}) minus the paper's bound, "
                       f"at r = {rp}", ex[sel] - res["conv_err_h"] - paper[sel], ">", 0)],
        paper="eq. (14)-(15)", verdict="refuted", basis="exact",
        note=f"Grid h = {cfg.conv_h:g}: mass {res['conv_mass']:.12f}, variance {res['conv_var']:.5f} (Sigma_2 = "
             f"{s2:.5f}; interpolation adds <= T h^2/4); |h - 2h| difference <= {res['conv_err_h']:.1e}; "
             f"the same convolution matches exact enumeration of all 2^{cfg.enum_T} paths at T = {cfg.enum_T} "
             f"to {res['enum_err']:.1e}. No Monte Carlo: no false-alarm rate."))
    cb = bounds.clip_prob(correct)
    out.append(claim(
        "S2.correct_bound",
        "upper 95 % CP limit of P_hat(max_s |theta_s - theta_0| >= r) <= the correct Azuma bound 2 exp(-r^2/(2 lambda^2 Sigma_2))",
        {f"r={rr:g}": {"P_hat": k / R, "CP95 upper": h_, "correct": c} for rr, k, h_, c in zip(r, res["k_max"], hi, correct)},
        f"upper CI <= min(1, correct bound) at every r in {list(cfg.r_grid)}",
        criteria=[crit(f"min(1, correct bound) minus the CP95 upper limit, at r = {[f'{x:g}' for x in r]}", cb - hi,
                       ">=", 0)],
        paper="eq. (14)-(15)", verdict="corrected",
        note="The correct constant is 1/2, not 2: the paper's bound is the correct one raised to the 4th power "
             "(divided by 8). Replicas whose path left [1, 9] (max displacement > 4): "
             f"{res['n_exit']} of {R}; the events used here (r <= 4) are unaffected. False-alarm rate (a miss "
             f"although the bound holds): <= 2.5 % per r where P equals the bound, far less where the bound is "
             f"loose; {r.size} values of r."))
    lo9, hi9 = bounds.clopper_pearson(res["k_fin"], R, level=cfg.mc_level)
    lv = f"CP{100 * cfg.mc_level:g}"
    out.append(claim(
        "S2.mc_vs_exact",
        "cross-check of the simulation: Monte-Carlo P_hat(|theta_T - theta_0| >= r) at the final time against the "
        "exact P(|X_T| >= r) from the convolution",
        {f"r={rr:g}": {"P_hat": k / R, "exact": e, f"{lv} low": l, f"{lv} high": h_}
         for rr, k, e, l, h_, s_ in zip(r, res["k_fin"], ex, lo9, hi9, sel) if s_},
        f"exact value inside the {100 * cfg.mc_level:g} % CP interval at every r in {list(cfg.r_pass)}",
        criteria=[crit(f"exact minus {lv} lower limit, at r = {rp}", ex[sel] - lo9[sel], ">=", 0),
                  crit(f"{lv} upper limit minus exact, at r = {rp}", hi9[sel] - ex[sel], ">=", 0)],
        paper=None, verdict="report",
        note="The convolution gives the final-time law only; the maximum over s has no simple closed form. "
             "theta_T - theta_0 = -X_T except on paths that left [1, 9] (max displacement > 4). False-alarm rate: "
             f"{100 * (1 - cfg.mc_level):g} % per r (two-sided {100 * cfg.mc_level:g} % interval), "
             f"{int(sel.sum())} values of r."))
    got = {k: float(v) for (k, _), v in zip(cfg.exp_targets, res["plugin"])}
    # independent closed forms at rho = 1024, lambda = 30, gamma = pi^2/6, a_max = 1
    rho, L, g = 1024.0, 30.0, np.pi ** 2 / 6
    b, B2 = 2 * L, L ** 2 * g
    indep = {"paper": 2 * rho ** 2 / (g * L ** 2), "azuma": rho ** 2 / (2 * g * L ** 2),
             "pinelis": rho ** 2 / (8 * g * L ** 2),
             "pinelis_bennett": (rho / b + B2 / b ** 2) * np.log1p(rho * b / B2) - rho / b}
    crits = [crit(f"{k}: exponent rounded to 4 significant figures (target {t:g})", _sig4(got[k]), "==", _sig4(t))
             for k, t in cfg.exp_targets]
    crits.append(crit("relative difference to independent closed forms (" + ", ".join(got) + ")",
                      [abs(got[k] - indep[k]) / indep[k] for k in got], "<=", 1e-9))
    out.append(claim(
        "S2.plugin_exponents",
        "(16) redone at rho = 2^10, lambda = 30, gamma = pi^2/6: exponents E of 2 e^{-E} for the paper's constant, "
        "correct scalar Azuma, Pinelis (vector noise xi, ||M|| <= 2 lambda) and Pinelis-Bennett",
        got, {"targets (4 significant figures)": {k: t for k, t in cfg.exp_targets},
              "independent closed forms": "relative difference <= 1e-9"},
        criteria=crits, paper="eq. (16)", verdict="corrected",
        note="bounds.paper_plugin_exponents() agrees with the targets to 4 significant figures and with "
             "independent closed forms to 1e-9. THEORY rounds the last two to 88.5 and 48.5. All four are "
             "astronomically small, but they bound the noise xi, not theta; the displacement is bounded surely (S1). "
             "Deterministic: no false-alarm rate."))
    return out
