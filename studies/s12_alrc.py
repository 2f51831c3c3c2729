"""S12. ALRC analogue of Ede & Beanland's Table 1 (CIFAR-10 2x super-sampling), on synthetic 1-D signals.

Claim tested (Ede & Beanland, Table 1 and its caption): adaptive learning rate clipping (ALRC, a
per-example *loss* clip at L_max = mu1 + n sigma from running moments of the minibatch-mean loss)
"lowers errors for unstable quartic error training at low batch sizes and otherwise has little effect".
Setup (THEORY 4.4): periodic 32-sample signals (8 random cosines, 5 % single-sample Pareto spikes: the
rare hard examples), the paper's augmentation pipeline (flip, brightness, contrast, standardisation,
2x downsampling by pair averaging), a fixed linear upsampler U plus a residual tanh MLP 16-32-32-32,
per-example mean squared or mean quartic error, constant-lr SGD, T steps at batch sizes 1, 4, 16, 64,
thresholds n = 2, 3, 4, inf, ALRC as in the paper's Algorithm 1 (and the authors' public code as a
second variant), the same seeds (= data stream and init) across n. F12a shows both tables in the
paper's layout beside the paper's own numbers and the relative effect of each n against n = inf;
F12b the learning curves for B = 1, 16 (n = 3 against inf); F12c the fraction of clipped examples
against B.
"""
import math
from dataclasses import dataclass

import numpy as np

from studies._harness import claim

TITLE = "ALRC (Ede & Beanland): loss clipping helps quartic, small-batch training and is neutral otherwise"
PAPER_CLAIMS = ["Ede & Beanland, Table 1 (CIFAR-10 2x super-sampling, squared vs quartic errors)",
                "Ede & Beanland, Algorithm 1 (ALRC) and the batch-size rule (per-example clip, batch-mean moments)"]

# Ede & Beanland, Table 1 (seed 001; transcribed in THEORY 4.2 and checked against the paper's LaTeX
# source): mean and standard deviation over 10 runs of the mean of the final 5000 training errors, x100.
# Rows n = 2, 3, 4, inf; columns B = 1, 4, 16, 64; NaN = not reported (squared, n = 2, B = 64).
# The paper used Adam (lr 1/1280, 1e5 iterations) on a CNN, not SGD on an MLP: only the pattern is
# comparable, not the values.
PAPER_N = (2.0, 3.0, 4.0, math.inf)
PAPER_B = (1, 4, 16, 64)
PAPER_MEAN = {"squared": np.array([[5.55, 4.96, 4.58, np.nan],
                                   [5.52, 4.96, 4.58, 3.90],
                                   [5.56, 4.97, 4.58, 3.89],
                                   [5.55, 4.98, 4.59, 3.89]]),
              "quartic": np.array([[3.54, 3.02, 2.60, 1.65],
                                   [3.59, 3.08, 2.61, 1.58],
                                   [3.61, 3.13, 2.64, 1.57],
                                   [3.88, 3.32, 2.74, 1.61]])}
PAPER_SD = {"squared": np.array([[0.048, 0.016, 0.010, np.nan],
                                 [0.054, 0.029, 0.004, 0.013],
                                 [0.048, 0.017, 0.007, 0.016],
                                 [0.041, 0.017, 0.006, 0.014]]),
            "quartic": np.array([[0.084, 0.023, 0.012, 0.011],
                                 [0.055, 0.024, 0.014, 0.016],
                                 [0.054, 0.023, 0.016, 0.016],
                                 [0.108, 0.037, 0.020, 0.008]])}
LOSSES = ("squared", "quartic")
ENGINE_LOSS = {"squared": "mse", "quartic": "quartic"}   # engine: sum over the 32 outputs


@dataclass(frozen=True)
class Config:
    seed: int = 0                     # data pool seed; replica i = "seed" i of the table (stream + init)
    n_seeds: int = 6                  # runs per cell (THEORY: 5-10; 6 fills 2 threads evenly)
    n_pool: int = 50_000              # augmented pool rows (THEORY 4.4 value; a pool of 8192 changes the result, see note)
    n_fine: int = 32                  # target length
    n_modes: int = 8                  # cosines k = 1..8
    spike_prob: float = 0.05          # rare hard examples
    spike_scale: float = 3.0          # amplitude +-3 (1 + Pareto(2))
    pareto_a: float = 2.0
    hidden: tuple = (32, 32)
    lr: float = 0.05                  # SGD lr on the paper's mean-over-outputs loss (engine lr = lr / 32)
    n_steps: int = 10_000
    batch_sizes: tuple = (1, 4, 16, 64)
    n_sigmas: tuple = (2.0, 3.0, 4.0, math.inf)
    variants: tuple = ("paper", "code")
    code_n_sigmas: tuple = (3.0,)     # the public-code variant is run at these finite n only (time)
    beta: float = 0.999
    n_warmup: int = 256               # examples for the initial moments mu1 = 2 mean L0, mu2 = 4 mean L0^2
    record_every: int = 500
    last_frac: float = 0.2            # metric: full-data loss averaged over the records in the last 20 %
    # pass criteria (THEORY 5 S12)
    p_max: float = 0.05
    min_rel_quartic_b1: float = 0.03
    max_abs_rel_squared: float = 0.01
    min_ratio_quartic_squared: float = 3.0
    note: str = ("Model: dynclip MLPs have no fixed path, so the MLP learns the residual target "
                 "Y_res = Y - X U^T (U the fixed 32x16 periodic linear upsampler); the loss of f(x) against "
                 "Y_res equals the loss of U x + f(x) against Y. Xavier (Glorot-uniform) init, zero biases, "
                 "from the study's own rng per seed. Loss scale: the engine's per-example losses are sums "
                 "over the 32 outputs; the paper's mean-over-outputs loss is obtained by running SGD with "
                 "lr/32 and moments on the sum scale (ALRC is scale-equivariant: L -> cL, mu1 -> c mu1, "
                 "mu2 -> c^2 mu2 leave every clip weight min(1, L_max/L) unchanged; the code variant's "
                 "1e-8 inside the sqrt is the one non-equivariant term, negligible here); all reported "
                 "values are on the mean-over-outputs scale x100. Data: the augmentation is drawn once per "
                 "pool row (frozen), not redrawn at each step. Pool size matters: a pilot with a pool of 8192 rows "
                 "(6 seeds, T = 1e4) gave quartic B = 4: +3.2 % (ALRC worse, p = 0.014) against about -0.5 % with "
                 "50 000 rows: on a small frozen pool unclipped SGD revisits and partly fits the same spike rows, which "
                 "ALRC down-weights; so the spec's 50 000 is kept. "
                 "Brightness and contrast are applied before the per-signal standardisation, exactly as in "
                 "the paper's pipeline, which annihilates them: only the flip survives. Metric: the engine "
                 "records the full-data loss, not the minibatch training loss, so the metric is the "
                 "full-data (pool) loss averaged over the records in the last 20 % of the steps, not the "
                 "mean of the last 2000 minibatch losses. Initial moments are pooled over seeds (the "
                 "engine takes one (mu1, mu2) for all replicas). Optimizer: SGD only; dynclip has no Adam. "
                 "The public-code variant is run at n = 3 only (time). Spike counts (iterations with a minibatch "
                 "loss > 10x the running median, THEORY 4.4) are not reported: the engine does not record "
                 "minibatch losses.")


QUICK = Config(n_seeds=2, n_pool=256, n_steps=200, record_every=20, n_warmup=32)


# ---------------------------------------------------------------------------------------------
# data and model
# ---------------------------------------------------------------------------------------------
def upsampler(n_coarse):
    """Periodic linear (bilinear, half-pixel centres) 2x upsampling matrix U (2n x n).

    Coarse sample m sits at fine position 2m + 1/2: fine 2m = 1/4 x_{m-1} + 3/4 x_m and
    fine 2m+1 = 3/4 x_m + 1/4 x_{m+1} (indices mod n).
    """
    U = np.zeros((2 * n_coarse, n_coarse))
    for m in range(n_coarse):
        U[2 * m, (m - 1) % n_coarse] += 0.25
        U[2 * m, m] += 0.75
        U[2 * m + 1, m] += 0.75
        U[2 * m + 1, (m + 1) % n_coarse] += 0.25
    return U


def make_pool(cfg):
    """The augmented pool: X (N, 16) downsampled inputs, Y (N, 32) standardised targets, spike flags."""
    rng = np.random.default_rng([cfg.seed, 12])
    N, n = cfg.n_pool, cfg.n_fine
    u = np.arange(n) / n
    k = np.arange(1, cfg.n_modes + 1)
    Z = rng.standard_normal((N, cfg.n_modes))
    phi = rng.uniform(0, 2 * np.pi, (N, cfg.n_modes))
    s = np.zeros((N, n))
    for j in range(cfg.n_modes):
        s += (Z[:, j:j + 1] / k[j]) * np.cos(2 * np.pi * k[j] * u[None, :] + phi[:, j:j + 1])
    spike = rng.random(N) < cfg.spike_prob
    pos = rng.integers(0, n, N)
    # numpy's pareto is the Lomax (Pareto II, support [0, inf)), so 1 + Pareto(2) is the classical Pareto
    # with minimum 1 and tail index 2 (finite mean, infinite variance)
    amp = cfg.spike_scale * (1.0 + rng.pareto(cfg.pareto_a, N)) * rng.choice([-1.0, 1.0], N)
    s[spike, pos[spike]] += amp[spike]
    # augmentation, in the paper's order: flip, brightness, contrast, standardise, downsample
    flip = rng.random(N) < 0.5
    s[flip] = s[flip, ::-1]
    s = s + rng.uniform(-0.5, 0.5, (N, 1))
    s = s * rng.uniform(0.5, 1.5, (N, 1))
    s = (s - s.mean(1, keepdims=True)) / s.std(1, keepdims=True)
    X = 0.5 * (s[:, 0::2] + s[:, 1::2])
    return X, s, spike


def xavier(net, rng):
    theta = np.zeros(net.n_params)
    for l, (sw, sb) in enumerate(net.layer_slices()):
        ni, no = net.widths[l], net.widths[l + 1]
        bound = math.sqrt(6.0 / (ni + no))
        theta[sw] = rng.uniform(-bound, bound, no * ni)
    return theta


def per_example_loss(net, theta, X, Y, p):
    """Per-example sum over outputs of |f - y|^p (numpy; the engine's 'mse' (p=2) / 'quartic' (p=4))."""
    a = X
    layers = net.unpack(theta)
    for l, (W, b) in enumerate(layers):
        a = a @ W.T + b
        if l < len(layers) - 1:
            a = np.tanh(a)
    return np.sum((a - Y) ** p, axis=1)


# ---------------------------------------------------------------------------------------------
def _rules(cfg):
    """(n, variant) pairs run: n = inf once (it never clips, the variants coincide), then each finite n x variant."""
    out = [(math.inf, "paper")]
    for v in cfg.variants:
        for n in (cfg.n_sigmas if v == "paper" else cfg.code_n_sigmas):
            if math.isfinite(n):
                out.append((n, v))
    return out


def run(cfg):
    import dynclip as dc
    from dynclip import clipping as C, schedules as S
    import time
    cpu0 = time.process_time()
    X, Yfull, spike = make_pool(cfg)
    n = cfg.n_fine
    U = upsampler(n // 2)
    Yres = Yfull - X @ U.T
    net = dc.mlp([n // 2, *cfg.hidden, n], activation="tanh")
    R = cfg.n_seeds
    theta0 = np.stack([xavier(net, np.random.default_rng([cfg.seed, 1, i])) for i in range(R)])
    wrng = np.random.default_rng([cfg.seed, 2])
    warm = wrng.integers(0, cfg.n_pool, (R, cfg.n_warmup))
    rules = _rules(cfg)
    nL, nB, nR = len(LOSSES), len(cfg.batch_sizes), len(rules)
    steps = None
    metric = np.full((nL, nB, nR, R), np.nan)
    clipfrac = np.full((nL, nB, nR, R), np.nan)
    curves = None
    diverged = np.zeros((nL, nB, nR, R), dtype=bool)
    mu0 = np.zeros((nL, 2))
    lr_engine = cfg.lr / n
    sched = S.constant(lr_engine)
    for il, lname in enumerate(LOSSES):
        p = 2 if lname == "squared" else 4
        L0 = np.concatenate([per_example_loss(net, theta0[r], X[warm[r]], Yres[warm[r]], p) for r in range(R)])
        mu1, mu2 = 2.0 * L0.mean(), 4.0 * np.mean(L0 ** 2)
        mu0[il] = mu1, mu2
        for ib, B in enumerate(cfg.batch_sizes):
            for ir, (ns, var) in enumerate(rules):
                rule = C.alrc(n_sigma=ns, beta1=cfg.beta, beta2=cfg.beta, mu1=mu1, mu2=mu2, variant=var)
                res = dc.simulate(net, X, Yres, rule, sched, n_steps=cfg.n_steps, seed=cfg.seed, batch_size=B,
                                  n_replicas=R, theta0=theta0, loss=ENGINE_LOSS[lname],
                                  record_every=cfg.record_every, progress=False)
                if curves is None:
                    steps = res.step
                    curves = np.full((nL, nB, nR, R, steps.size), np.nan)
                loss100 = res.loss / n * 100.0          # mean over outputs, x100
                curves[il, ib, ir] = loss100
                last = steps >= (1.0 - cfg.last_frac) * cfg.n_steps
                metric[il, ib, ir] = loss100[:, last].mean(axis=1)
                clipfrac[il, ib, ir] = res.clip_fraction
                diverged[il, ib, ir] = res.diverged
    return dict(metric=metric, clip_fraction=clipfrac, curves=curves, steps=steps, diverged=diverged,
                mu0=mu0, rule_n=np.array([r[0] for r in rules]),
                rule_variant=np.array([0 if r[1] == "paper" else 1 for r in rules]),
                batch_sizes=np.array(cfg.batch_sizes), spike_frac=float(spike.mean()),
                cpu_s=float(time.process_time() - cpu0),
                pool_loss_linear=np.array([np.mean(np.sum(Yres ** 2, 1)) / n * 100,
                                           np.mean(np.sum(Yres ** 4, 1)) / n * 100]))


# ---------------------------------------------------------------------------------------------
# analysis
# ---------------------------------------------------------------------------------------------
def _ir(res, n, variant="paper"):
    """Index of the run with threshold n (and variant, for finite n)."""
    rn, rv = res["rule_n"], res["rule_variant"]
    v = 0 if variant == "paper" else 1
    for i in range(rn.size):
        if (math.isinf(n) and math.isinf(rn[i])) or (rn[i] == n and rv[i] == v):
            return i
    raise KeyError((n, variant))


def _has(res, n, variant="paper"):
    try:
        _ir(res, n, variant)
        return True
    except KeyError:
        return False


def effect(res, loss, B, n, variant="paper"):
    """Relative change of the mean metric at threshold n against n = inf (negative = ALRC lowers the loss),
    its paired standard error (sd of per-seed relative differences / sqrt(R)) and the paired t-test p-value."""
    from scipy import stats
    il = LOSSES.index(loss)
    ib = list(res["batch_sizes"]).index(B)
    a = res["metric"][il, ib, _ir(res, n, variant)]
    b = res["metric"][il, ib, _ir(res, math.inf)]
    rel = float(a.mean() / b.mean() - 1.0)
    d = a / b - 1.0
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else float("nan")
    if np.all(a == b):
        p = 1.0
    else:
        p = float(stats.ttest_rel(a, b).pvalue)
    return rel, se, p


def table(res, loss, variant="paper"):
    """(mean, sd) over seeds, x100 on the mean-over-outputs scale, rows n = 2, 3, 4, inf, columns B."""
    il = LOSSES.index(loss)
    nB = len(res["batch_sizes"])
    mean = np.full((len(PAPER_N), nB), np.nan)
    sd = np.full_like(mean, np.nan)
    for i, n in enumerate(PAPER_N):
        try:
            ir = _ir(res, n, variant)
        except KeyError:
            continue
        m = res["metric"][il, :, ir]
        mean[i] = m.mean(axis=1)
        sd[i] = m.std(axis=1, ddof=1) if m.shape[1] > 1 else np.nan
    return mean, sd


def _criteria(res, cfg, variant):
    Bs = list(res["batch_sizes"])
    out = {}
    q = {B: effect(res, "quartic", B, 3.0, variant) for B in Bs}
    sq = {(B, n): effect(res, "squared", B, n, variant) for B in Bs for n in (3.0, 4.0) if _has(res, n, variant)}
    small = [B for B in (1, 4) if B in Bs]
    out["small"] = ({f"B={B}": dict(rel_pct=100 * q[B][0], paired_se_pct=100 * q[B][1], p=q[B][2]) for B in small},
                    all(q[B][0] < 0 and q[B][2] < cfg.p_max for B in small))
    red_q1 = -q[Bs[0]][0]
    out["size"] = (100 * red_q1, red_q1 >= cfg.min_rel_quartic_b1)
    red_qlast = -q[Bs[-1]][0]
    out["fade"] = ({f"reduction_B={Bs[0]}_pct": 100 * red_q1, f"reduction_B={Bs[-1]}_pct": 100 * red_qlast,
                    **{f"rel_B={B}_pct": 100 * q[B][0] for B in Bs}}, red_q1 > red_qlast)
    worst = max(abs(v[0]) for v in sq.values())
    out["squared"] = ({f"B={B},n={n:g}": 100 * sq[(B, n)][0] for (B, n) in sq} | {"max_abs_pct": 100 * worst},
                      worst < cfg.max_abs_rel_squared)
    red_s1 = -effect(res, "squared", Bs[0], 3.0, variant)[0]
    out["ratio"] = ({"quartic_reduction_pct": 100 * red_q1, "squared_reduction_pct": 100 * red_s1,
                     "ratio": red_q1 / red_s1 if red_s1 != 0 else float("inf")},
                    red_q1 > 0 and red_q1 >= cfg.min_ratio_quartic_squared * red_s1)
    return out


def check(res, cfg):
    out = []
    crit = _criteria(res, cfg, "paper")
    B0, Bl = cfg.batch_sizes[0], cfg.batch_sizes[-1]
    t1 = "Ede & Beanland, Table 1"
    ndiv = int(res["diverged"].sum())
    base_note = (f"SGD, lr {cfg.lr:g} (mean-over-outputs loss), T = {cfg.n_steps}, {cfg.n_seeds} paired seeds, "
                 f"ALRC as in Algorithm 1 (moments from the raw batch-mean loss). Metric: full-data pool loss x100 "
                 f"averaged over the records in the last {100 * cfg.last_frac:g} % of steps. Diverged runs: {ndiv}. "
                 f"Simulation CPU time {res['cpu_s']:.0f} s (all threads).")

    def verdict(ok):
        return "confirmed" if ok else "refuted"

    m, ok = crit["small"]
    cc = _criteria(res, cfg, "code")
    b1 = m.get("B=1", {})
    b1_ok = bool(b1) and b1["rel_pct"] < 0 and b1["p"] < cfg.p_max
    if ok:
        v, extra = "confirmed", ""
    elif b1_ok:
        # Algorithm 1 helps only at B = 1; say whether the authors' code (capped-loss moments) restores B = 4
        v = "corrected"
        extra = (" Algorithm 1 as printed lowers the quartic loss only at B = 1 here; at B = 4 its effect is not "
                 "significant. Corrected statement: the benefit is confined to the least stable setting (B = 1)"
                 + (", unless the moments are updated with the capped loss as in the authors' public code, which "
                    "passes at B = 1 and 4 (row S12.code_variant)." if cc["small"][1] else "."))
    else:
        v, extra = "refuted", " The analogue does not reproduce the quartic small-batch benefit."
    out.append(claim("S12.quartic_small_batch",
                     "Quartic errors, B in {1, 4}: ALRC n = 3 gives a lower final loss than n = inf (paired seeds)",
                     m, f"mean below n = inf and paired t-test (two-sided) p < {cfg.p_max:g} at each B", ok,
                     paper=t1, verdict=v, note=base_note + " Paper: -7.5 % (B=1), -7.2 % (B=4)." + extra))
    m, ok = crit["size"]
    out.append(claim("S12.quartic_B1_size", f"Quartic errors, B = {B0}: relative reduction of n = 3 against n = inf (%)",
                     m, f">= {100 * cfg.min_rel_quartic_b1:g} % (prototype 4.7 %; paper 7.5 %)", ok, paper=t1,
                     verdict=verdict(ok)))
    m, ok = crit["fade"]
    out.append(claim("S12.fades_with_B", f"The quartic reduction (n = 3 vs inf) shrinks with batch size: B = {B0} vs B = {Bl}",
                     m, f"reduction(B={B0}) > reduction(B={Bl})", ok, paper=t1, verdict=verdict(ok),
                     note="Paper: 7.5, 7.2, 4.7, 1.9 % at B = 1, 4, 16, 64."))
    m, ok = crit["squared"]
    out.append(claim("S12.squared_neutral", "Squared errors: ALRC (n = 3, 4) leaves the final loss unchanged at every B "
                     "(relative change against n = inf, %)", m, f"|rel| < {100 * cfg.max_abs_rel_squared:g} % at every B",
                     ok, paper=t1, verdict=verdict(ok), note="Paper: -0.5, -0.4, -0.2, +0.3 % (n = 3). Largest paired "
                     "t-test p over B (n = 3): " + f"{max(effect(res, 'squared', B, 3.0)[2] for B in cfg.batch_sizes):.2g}"
                     ": with paired seeds even sub-1 % changes are resolved, so 'neutral' here means |rel| < 1 %, "
                     "not 'no detectable effect'."))
    m, ok = crit["ratio"]
    out.append(claim("S12.differential", f"B = {B0}: the quartic improvement is at least "
                     f"{cfg.min_ratio_quartic_squared:g}x the squared improvement (n = 3)", m,
                     f"quartic reduction > 0 and >= {cfg.min_ratio_quartic_squared:g} x squared reduction", ok,
                     paper=t1, verdict=verdict(ok), note="Paper: 7.5 % vs 0.5 % (15x)."))
    # the authors' public code (moments from the capped loss, 1e-8 in the sqrt): same criteria, report only
    out.append(claim("S12.code_variant", "The same five criteria with the authors' public-code ALRC (moments updated "
                     "with the capped loss)", {k: dict(measured=v[0], criterion_met=v[1]) for k, v in cc.items()},
                     "as the five rows above", None, paper="Ede & Beanland, Algorithm 1 vs public code",
                     verdict="report", note="Updating the moments with the capped loss keeps sigma small (spikes do "
                     "not inflate it), so L_max is lower and more examples are clipped (F12c); this variant gives "
                     "a larger quartic benefit at small B than the paper's Algorithm 1."))
    # quartic at large B: the paper's 'otherwise little effect'
    big = {}
    for B in cfg.batch_sizes[2:]:
        r, se, p = effect(res, "quartic", B, 3.0)
        big[f"B={B}"] = dict(rel_pct=100 * r, paired_se_pct=100 * se, p=p)
    out.append(claim("S12.quartic_large_B", "Quartic errors, large B: relative change of n = 3 against n = inf (%)",
                     big, "report only (paper: -4.7 % at B = 16, -1.9 % at B = 64; n = 2 at B = 64: +2.5 %)", None,
                     paper=t1, verdict="report",
                     note="A positive value means ALRC raises the (unclipped) loss: the clip threshold, built from "
                     "batch-mean moments, tightens with B (F12c), and the clipped mean field is the gradient of a "
                     "log-capped, robustified objective (THEORY 4.3) whose minimiser is biased for the plain loss."))
    # clip fraction against B
    cf = {}
    for loss in LOSSES:
        il = LOSSES.index(loss)
        cf[loss] = {f"B={B}": 100 * float(res["clip_fraction"][il, ib, _ir(res, 3.0)].mean())
                    for ib, B in enumerate(cfg.batch_sizes)}
    out.append(claim("S12.clip_fraction", "Fraction of examples clipped (%, n = 3, Algorithm 1) against batch size",
                     cf, "THEORY 4.1: with batch-mean moments sigma estimates the sd of a batch mean, so individual "
                     "losses should be clipped more often as B grows (prototype, MSE: 0.56 % at B=1, 1.0 % at B=16)",
                     None, paper="Ede & Beanland, batch-size rule", verdict="report",
                     note="Clip fraction over the whole run, including the transient. Increasing in B for every n "
                     "and both losses: " + ("yes" if all(np.all(np.diff(res["clip_fraction"][il, :, ir].mean(1)) > 0)
                                                        for il in range(len(LOSSES))
                                                        for ir in range(1, res["rule_n"].size)) else "no") + "."))
    out.append(claim("S12.adam", "Adam (the paper's optimiser, lr 1/1280): is the effect differential between losses?",
                     "not run", "report only (THEORY prototype: not differential under Adam)", None, paper=t1,
                     verdict="report", note="Skipped: dynclip implements SGD only (no Adam). The SGD rows above "
                     "are the primary test of THEORY S12."))
    return out


# ---------------------------------------------------------------------------------------------
# figures and the markdown table
# ---------------------------------------------------------------------------------------------
def _nlab(n):
    return "∞" if math.isinf(n) else f"{n:g}"


def markdown_table(res, cfg):
    """The tables in the paper's layout: ours (Algorithm 1 and public-code variant) beside the paper's Table 1."""
    Bs = list(res["batch_sizes"])
    L = [f"# S12: ALRC analogue of Ede & Beanland's Table 1", "",
         f"Values are mean ± sd over {cfg.n_seeds} paired seeds of the final loss ×100 (per-example loss = mean over "
         f"the 32 outputs). Ours: synthetic 1-D 2× super-sampling, SGD lr {cfg.lr:g}, T = {cfg.n_steps}, metric = "
         f"full-data pool loss averaged over the records in the last {100 * cfg.last_frac:g} % of steps. "
         "Paper: CIFAR-10 2× super-sampling, Adam, 10 runs, mean of the final 5000 training errors "
         "(Ede & Beanland, Table 1). Only the pattern across n and B is comparable, not the values.", ""]
    for loss in LOSSES:
        m, s = table(res, loss, "paper")
        mc, sc = table(res, loss, "code")
        L += [f"## {loss.capitalize()} errors", "",
              "| n | " + " | ".join(f"B = {B}: ours (Alg. 1) | ours (code) | paper" for B in Bs) + " |",
              "|---|" + "---|---|---|" * len(Bs)]
        for i, n in enumerate(PAPER_N):
            cells = []
            for j, B in enumerate(Bs):
                jp = PAPER_B.index(B) if B in PAPER_B else None
                pm = PAPER_MEAN[loss][i, jp] if jp is not None else np.nan
                ps = PAPER_SD[loss][i, jp] if jp is not None else np.nan
                paper = "–" if not np.isfinite(pm) else f"{pm:.2f} ({ps:.3f})"
                code = ("= Alg. 1" if math.isinf(n) else f"{mc[i, j]:.3f} ± {sc[i, j]:.3f}" if _has(res, n, "code")
                        else "not run")
                cells += [f"{m[i, j]:.3f} ± {s[i, j]:.3f}", code, paper]
            L.append(f"| {_nlab(n)} | " + " | ".join(cells) + " |")
        L += ["", f"Relative change against n = ∞ (%), ours (Alg. 1) [paired t-test p] / ours (code) / paper:", "",
              "| n | " + " | ".join(f"B = {B}" for B in Bs) + " |", "|---|" + "---|" * len(Bs)]
        for i, n in enumerate(PAPER_N[:-1]):
            cells = []
            for j, B in enumerate(Bs):
                r, se, p = effect(res, loss, B, n, "paper")
                rc, _, pc = effect(res, loss, B, n, "code") if _has(res, n, "code") else (np.nan, 0, np.nan)
                jp = PAPER_B.index(B) if B in PAPER_B else None
                pr = 100 * (PAPER_MEAN[loss][i, jp] / PAPER_MEAN[loss][3, jp] - 1) if jp is not None else np.nan
                prs = "–" if not np.isfinite(pr) else f"{pr:+.1f}"
                cs = f"{100 * rc:+.2f} [p={pc:.2g}]" if np.isfinite(rc) else "not run"
                cells.append(f"{100 * r:+.2f} ± {100 * se:.2f} [p={p:.2g}] / {cs} / {prs}")
            L.append(f"| {_nlab(n)} | " + " | ".join(cells) + " |")
        L.append("")
    L += ["Clipped-example fraction (%, mean over seeds, Alg. 1):", "",
          "| loss | n | " + " | ".join(f"B = {B}" for B in Bs) + " |", "|---|---|" + "---|" * len(Bs)]
    for il, loss in enumerate(LOSSES):
        for n in PAPER_N[:-1]:
            ir = _ir(res, n, "paper")
            L.append(f"| {loss} | {_nlab(n)} | " + " | ".join(
                f"{100 * res['clip_fraction'][il, j, ir].mean():.2f}" for j in range(len(Bs))) + " |")
    L += ["", "Notes: " + cfg.note, ""]
    return "\n".join(L)


def plot(res, cfg, outdir):
    import os
    from dynclip import plotting
    plt = plotting.plt()
    Bs = list(res["batch_sizes"])
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "table.md"), "w") as f:
        f.write(markdown_table(res, cfg))

    # F12a: tables in the paper's layout + relative effects against B
    fig = plt.figure(figsize=(13, 10.0))
    gs = fig.add_gridspec(2, 2, height_ratios=[0.7, 1.0], hspace=0.15, wspace=0.18)
    for k, loss in enumerate(LOSSES):
        ax = fig.add_subplot(gs[0, k])
        ax.axis("off")
        m, s = table(res, loss, "paper")
        rows = []
        for i, n in enumerate(PAPER_N):
            row = []
            for j, B in enumerate(Bs):
                jp = PAPER_B.index(B) if B in PAPER_B else None
                pm = PAPER_MEAN[loss][i, jp] if jp is not None else np.nan
                ps = PAPER_SD[loss][i, jp] if jp is not None else np.nan
                pstr = "–" if not np.isfinite(pm) else f"{pm:.2f} ({ps:.3f})"
                row.append(f"{m[i, j]:.3f} ± {s[i, j]:.3f}\npaper {pstr}")
            rows.append(row)
        tb = ax.table(cellText=rows, rowLabels=[f"n = {_nlab(n)}" for n in PAPER_N],
                      colLabels=[f"B = {B}" for B in Bs], loc="center", cellLoc="center")
        tb.auto_set_font_size(False)
        tb.set_fontsize(8.5)
        tb.scale(1.0, 2.6)
        # highlight the lowest mean per column (ours)
        for j in range(len(Bs)):
            i = int(np.nanargmin(m[:, j]))
            tb[(i + 1, j)].set_facecolor("#dfe9f7")
        ax.set_title(f"{loss.capitalize()} errors, final loss ×100\nours: mean ± sd ({cfg.n_seeds} seeds); "
                     "paper: mean (sd)")
        ax2 = fig.add_subplot(gs[1, k])
        for i, n in enumerate(PAPER_N[:-1]):
            c = f"C{i}"
            for v, ls, off in (("paper", "-", 0.0), ("code", ":", 0.04)):
                if not _has(res, n, v):
                    continue
                e = np.array([effect(res, loss, B, n, v) for B in Bs])
                ax2.errorbar(np.array(Bs) * (1 + off), 100 * e[:, 0], yerr=100 * e[:, 1], color=c, ls=ls,
                             marker="o", ms=4, capsize=2,
                             label=f"ours n = {_nlab(n)}, " + ("Algorithm 1" if v == "paper" else "public code"))
            pr = 100 * (PAPER_MEAN[loss][i] / PAPER_MEAN[loss][3] - 1)
            ax2.plot(np.array(PAPER_B) * 0.96, pr, color=c, ls="--", marker="s", mfc="none", ms=6, alpha=0.8,
                     label=f"paper n = {_nlab(n)} (CIFAR-10, Adam)")
        ax2.axhline(0, color="k", lw=0.8)
        if loss == "squared":
            ax2.axhspan(-100 * cfg.max_abs_rel_squared, 100 * cfg.max_abs_rel_squared, color="g", alpha=0.08,
                        label=f"pass band |rel| < {100 * cfg.max_abs_rel_squared:g} % (n = 3, 4)")
        else:
            ax2.axhline(-100 * cfg.min_rel_quartic_b1, color="g", lw=1, ls="-.",
                        label=f"pass: ≤ −{100 * cfg.min_rel_quartic_b1:g} % at B = 1 (n = 3)")
        ax2.set_xscale("log", base=2)
        ax2.set_xticks(Bs)
        ax2.set_xticklabels([str(B) for B in Bs])
        ax2.set_xlabel("batch size B")
        ax2.set_ylabel("relative change of the final loss vs n = ∞ (%)")
        ax2.set_title(f"{loss.capitalize()} errors: effect of ALRC threshold n (error bars: paired SE)")
        ax2.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.suptitle("F12a  ALRC analogue of Ede & Beanland's Table 1: synthetic 1-D 2× super-sampling, SGD "
                 f"(lr {cfg.lr:g}, T = {cfg.n_steps})\nTables: rows n = ALRC threshold (std devs), Algorithm 1; "
                 "shaded = lowest of ours per column. Paper = its Table 1 (CIFAR-10, Adam, 10 runs): compare "
                 "patterns, not values", fontsize=11, y=0.99)
    plotting.savefig(fig, outdir, "F12a_alrc_table")

    # F12b: learning curves, B = 1 and 16 (or the first two B), n = 3 vs inf
    Bc = [B for B in (1, 16) if B in Bs] or Bs[:2]
    steps = res["steps"]
    fig, axes = plt.subplots(2, len(Bc) + 1, figsize=(4.6 * (len(Bc) + 1), 7.5), squeeze=False)
    for il, loss in enumerate(LOSSES):
        axr = axes[il, -1]
        for jb, B in enumerate(Bc):
            ib = Bs.index(B)
            ax = axes[il, jb]
            c3 = res["curves"][il, ib, _ir(res, 3.0)]
            ci = res["curves"][il, ib, _ir(res, math.inf)]
            plotting.band(ax, steps, ci, color="k", label="n = ∞ (no clipping)", q=(0.0, 0.5, 1.0), alpha=0.15)
            plotting.band(ax, steps, c3, color="C3", label="n = 3 (ALRC, Algorithm 1)", q=(0.0, 0.5, 1.0), alpha=0.2)
            ax.axvspan((1 - cfg.last_frac) * cfg.n_steps, cfg.n_steps, color="y", alpha=0.15, label="metric window")
            ax.set_yscale("log")
            ax.set_xlabel("SGD step k")
            ax.set_ylabel("full-data loss ×100 (mean over outputs)")
            ax.set_title(f"{loss.capitalize()}, B = {B}")
            ax.legend(fontsize=7)
            d = 100 * (c3 / ci - 1)
            plotting.band(axr, steps[1:], d[:, 1:], color=f"C{jb}", label=f"B = {B}", q=(0.0, 0.5, 1.0), alpha=0.2)
        axr.axhline(0, color="k", lw=0.8)
        axr.set_xlabel("SGD step k")
        axr.set_ylabel("(loss(n=3) − loss(n=∞)) / loss(n=∞)  (%)")
        axr.set_title(f"{loss.capitalize()}: paired relative difference")
        axr.legend(fontsize=7)
    fig.suptitle("F12b  Learning curves (median and min–max over paired seeds; full-data loss at records every "
                 f"{cfg.record_every} steps, no boxcar needed)", fontsize=11)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F12b_learning_curves")

    # F12c: clipped-example fraction against B
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2))
    for il, loss in enumerate(LOSSES):
        ax = axes[il]
        for i, n in enumerate(PAPER_N[:-1]):
            for v, ls, mk in (("paper", "-", "o"), ("code", ":", "^")):
                if not _has(res, n, v):
                    continue
                cf = 100 * res["clip_fraction"][il, :, _ir(res, n, v)]
                ax.errorbar(Bs, cf.mean(1), yerr=[cf.mean(1) - cf.min(1), cf.max(1) - cf.mean(1)], color=f"C{i}",
                            ls=ls, marker=mk, ms=4, capsize=2,
                            label=f"n = {_nlab(n)}, " + ("Algorithm 1" if v == "paper" else "public code"))
        ax.set_xscale("log", base=2)
        ax.set_xticks(Bs)
        ax.set_xticklabels([str(B) for B in Bs])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("batch size B")
        ax.set_ylabel("examples clipped (%, whole run)")
        ax.set_title(f"{loss.capitalize()} errors")
        ax.legend(fontsize=7)
    fig.suptitle("F12c  Fraction of examples whose loss exceeds L_max = μ1 + nσ (moments from batch-mean losses); "
                 "mean and min–max over seeds", fontsize=10)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F12c_clip_fraction")
