"""S11. Zhang et al. (2020) on an MLP: local smoothness grows with the gradient norm, and clipping
tolerates larger learning rates.

Claims: along a training trajectory the local smoothness L_hat correlates positively with the
gradient norm ||grad F|| (their Fig. 1), so a model ||Hess F|| <= L0 + L1 ||grad F|| fits; and
clipped GD converges faster than fixed-step GD because it tolerates much larger learning rates.

Setup: MLP-C (tanh 4-16-16-16-1, 641 parameters) on D256, high-loss initialisation (torch default
init with the output layer, W and b, multiplied by 5 or 10). All runs are full-batch (exact
gradient of F at every step; the engine's minibatch sampler draws with replacement, so full-batch
GD is a separate loop here): GD theta <- theta - h grad F and clipped GD
theta <- theta - eta clip_lam(grad F) (dynclip's classic rule, applied once to the full gradient).

A (Fig. 1 analogue): squared and quartic loss, T = 2000 steps; every 5 steps the estimator
L_hat = max_alpha ||grad F(x_k + alpha d) - grad F(x_k)|| / (alpha ||d||), d = x_{k+1} - x_k,
alpha in {1/4, 1/2, 3/4, 1} (dynclip.smoothness), full-data gradients. Steps (not given by the
specification): GD h = 1e-3, the largest decade step that is stable from every quartic high-loss
start (B), used for both losses; clipped GD eta = 0.1, lam = 1. Contrast: minibatch SGD (B = 16, lr 0.01) from the standard init.
B (acceleration): quartic loss, output x 10; iterations to F <= 0.03 for GD over a grid of h and
clipped GD (lam = 1) over a grid of eta, capped, 5 seeds.

F11a: log L_hat against log ||grad F|| coloured by iteration, per loss and method, with the fitted
(L0, L1) envelope (smallest line above 99 % of the points). F11b: training curves of one seed
and iterations-to-target against the learning rate.
"""
from dataclasses import dataclass

import numba
import numpy as np
from scipy.stats import spearmanr

import dynclip as dc
from dynclip import clipping as C, schedules as S, smoothness as sm, plotting
from dynclip import meanfield as mf
from dynclip.model import check_data
from studies._harness import claim

TITLE = "Zhang et al.: smoothness grows with the gradient norm, and clipping tolerates larger steps (MLP)"
PAPER_CLAIMS = ["Zhang et al. 2020, Fig. 1: local smoothness correlates with the gradient norm",
                "Zhang et al. 2020: clipped GD converges faster / tolerates larger learning rates"]


@dataclass(frozen=True)
class Config:
    seed: int = 0                        # init seeds are seed, seed+1, ...
    note: str = ("MLP-C = dc.mlp([4, 16, 16, 16, 1]) (tanh, with biases, 641 parameters). Step sizes of A are not "
                 "in the specification: GD h = 1e-3 (largest decade step stable on every quartic high-loss start), "
                 "clipped eta = 0.1, lam = 1. The pass rule of A counts runs over seeds x output scales. To fit the "
                 "4-minute budget B uses the decade grid h in {1e-5, 1e-4, 1e-3, 1e-2} for GD (half-decades for "
                 "clipped GD), keeps the cap 2e4 and 5 seeds, and stops the GD step sizes of a seed once one of them "
                 "reaches the target (the slower ones cannot be the best; they are drawn as 'stopped'). Numba runs "
                 "single-threaded here (faster on a shared 2-core machine).")
    widths: tuple = (4, 16, 16, 16, 1)   # MLP-C
    data_seed: int = 0
    # A: smoothness vs gradient norm
    a_losses: tuple = ("mse", "quartic")
    a_scales: tuple = (5.0, 10.0)        # output layer multiplier (high-loss init)
    a_seeds: int = 3
    a_steps: int = 2000
    a_every: int = 5
    alphas: tuple = (0.25, 0.5, 0.75, 1.0)
    a_gd_h: float = 1e-3
    a_clip_eta: float = 0.1
    a_clip_lam: float = 1.0
    coverage: float = 0.99
    sgd_batch: int = 16
    sgd_lr: float = 0.01
    # B: learning-rate tolerance
    b_loss: str = "quartic"
    b_scale: float = 10.0
    b_seeds: int = 5
    b_gd_h: tuple = (1e-5, 1e-4, 1e-3, 1e-2)
    b_clip_eta: tuple = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)
    b_clip_lam: float = 1.0
    b_target: float = 0.03
    b_cap: int = 20000
    b_curve_every: int = 10
    b_race_gd: bool = True               # stop GD runs of a seed once another h reached the target (cost)
    blowup_factor: float = 1e3           # diverged: F non-finite or > blowup_factor * F(theta0)
    threads: int = 1                     # numba threads while running (0 = leave as is); one thread is fastest on
    #                                      a shared 2-core machine: each ~1 ms parallel region waits for a busy core
    # pass criteria (THEORY §5 S11)
    rho_min: float = 0.8
    slope_min: float = 0.5
    frac_min: float = 2 / 3
    speedup_min: float = 10.0
    lr_ratio_min: float = 30.0


QUICK = Config(a_scales=(10.0,), a_seeds=2, a_steps=100, b_seeds=2, b_gd_h=(1e-3, 1e-2),
               b_clip_eta=(0.1, 0.3), b_cap=500)


# ----------------------------------------------------------------------------------------
def _loss_grad_many(net, X, Y, thetas, loss):
    """Full-data loss and gradient at many points in one compiled call (grad_F's kernel also
    returns the losses; dynclip.meanfield.grad_F discards them)."""
    X2, Y2, lk = check_data(net, X, Y, loss)
    out = np.zeros_like(thetas)
    losses = np.zeros(thetas.shape[0])
    mf._gradF_many(np.ascontiguousarray(thetas), net.widths_array(), net.offsets(), net.act, lk, X2, Y2, out, losses)
    return losses, out


def _high_loss_init(net, seed, scale):
    th = dc.init_params(net, seed)
    sw, sb = net.layer_slices()[-1]
    th[sw] *= scale
    th[sb] *= scale
    return th


def fullbatch_gd(net, X, Y, loss, theta0, a, lam, n_steps, *, target=None, pair_every=0, curve_every=1,
                 blowup_factor=1e3, race=None):
    """Full-batch (clipped) GD for many replicas at once: theta <- theta - a * clip_lam(grad F(theta)).

    ``a``, ``lam`` are arrays (R,) (lam = inf: plain GD). A replica stops when F <= target
    (``hit`` = number of steps taken) or diverges (F non-finite or > blowup_factor * F0).
    ``race`` (R,) ints: replicas with the same label >= 0 race each other; once one reaches the
    target, the others are stopped (``stopped`` = that step): they cannot be the fastest.
    With ``pair_every`` the pairs (theta_k, theta_{k+1}) at k = 0, e, 2e, ... are kept for the
    smoothness estimator. Returns a dict.
    """
    R, P = theta0.shape
    race = np.full(R, -1) if race is None else np.asarray(race)
    stopped = np.full(R, -1)
    th = theta0.copy()
    a = np.asarray(a, float)
    lam = np.asarray(lam, float)
    active = np.ones(R, bool)
    hit = np.full(R, -1)
    div = np.full(R, -1)
    n_rec = n_steps // curve_every + 1
    curve = np.full((R, n_rec), np.nan)
    n_pairs = (n_steps + pair_every - 1) // pair_every if pair_every else 0
    base = np.full((R, n_pairs, P), np.nan)
    nxt = np.full((R, n_pairs, P), np.nan)
    F0 = None
    for k in range(n_steps + 1):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        l, g = _loss_grad_many(net, X, Y, th[idx], loss)
        if F0 is None:
            F0 = l.copy()
            for i in range(R):     # the vectorised clip below is dynclip's classic rule
                u, _ = C.clip(C.classic(lam[i]) if np.isfinite(lam[i]) else C.none(), g[i])
                f = min(1.0, lam[i] / np.linalg.norm(g[i]))
                assert np.allclose(u, f * g[i], rtol=1e-13, atol=0.0)
        if k % curve_every == 0:
            curve[idx, k // curve_every] = l
        bad = ~np.isfinite(l) | (l > blowup_factor * F0[idx]) | ~np.all(np.isfinite(g), axis=1)
        div[idx[bad]] = k
        done = ~bad & (l <= target) if target is not None else np.zeros(idx.size, bool)
        hit[idx[done]] = k
        active[idx[bad | done]] = False
        for lab in np.unique(race[idx[done]]):
            if lab >= 0:
                lose = active & (race == lab)
                stopped[lose] = k
                active[lose] = False
        keep_now = active[idx]
        if k == n_steps:
            break
        idx, g = idx[keep_now], g[keep_now]
        if idx.size == 0:
            break
        gn = np.linalg.norm(g, axis=1)
        f = np.minimum(1.0, lam[idx] / np.maximum(gn, 1e-300))
        new = th[idx] - (a[idx] * f)[:, None] * g
        if pair_every and k % pair_every == 0:
            base[idx, k // pair_every] = th[idx]
            nxt[idx, k // pair_every] = new
        th[idx] = new
    return dict(hit=hit, diverged=div, stopped=stopped, curve=curve, base=base, next=nxt, theta=th)


def _corr(L, g):
    ok = np.isfinite(L) & np.isfinite(g) & (L > 0) & (g > 0)
    if ok.sum() < 3:
        return np.nan, np.nan
    return float(spearmanr(g[ok], L[ok])[0]), plotting.loglog_slope(g[ok], L[ok])


# ----------------------------------------------------------------------------------------
def run(cfg):
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(cfg.threads, old)) if cfg.threads else old)
    try:
        return _run(cfg)
    finally:
        numba.set_num_threads(old)


def _run(cfg):
    net = dc.mlp(list(cfg.widths))
    X, Y = dc.data.d256(cfg.data_seed)
    res = {}
    # ---------------- A
    nL, nS, nM, nR = len(cfg.a_losses), len(cfg.a_scales), 2, cfg.a_seeds
    K = (cfg.a_steps + cfg.a_every - 1) // cfg.a_every
    Lh = np.full((nL, nS, nM, nR, K), np.nan)
    Gn = np.full((nL, nS, nM, nR, K), np.nan)
    Fa = np.full((nL, nS, nM, nR, cfg.a_steps // cfg.a_every + 1), np.nan)
    hstep = np.full((nL, nS, nM, nR, K), np.nan)     # effective step a * min(1, lam/||g||): EoS diagnostic
    divA = np.full((nL, nS, nM, nR), -1)
    for il, loss in enumerate(cfg.a_losses):
        th0, a, lam = [], [], []
        for isc, sc in enumerate(cfg.a_scales):
            for im in range(nM):
                for r in range(nR):
                    th0.append(_high_loss_init(net, cfg.seed + r, sc))
                    a.append(cfg.a_gd_h if im == 0 else cfg.a_clip_eta)
                    lam.append(np.inf if im == 0 else cfg.a_clip_lam)
        out = fullbatch_gd(net, X, Y, loss, np.array(th0), a, lam, cfg.a_steps, pair_every=cfg.a_every,
                           curve_every=cfg.a_every, blowup_factor=cfg.blowup_factor)
        j = 0
        for isc in range(nS):
            for im in range(nM):
                for r in range(nR):
                    ok = np.all(np.isfinite(out["next"][j]), axis=1) & np.all(np.isfinite(out["base"][j]), axis=1)
                    n_ok = int(np.argmin(ok)) if not ok.all() else ok.size
                    if n_ok >= 2:
                        L, g = sm.local_smoothness(net, X, Y, out["base"][j, :n_ok], cfg.alphas, loss,
                                                   next_points=out["next"][j, :n_ok])
                        Lh[il, isc, im, r, :n_ok], Gn[il, isc, im, r, :n_ok] = L, g
                        hstep[il, isc, im, r, :n_ok] = a[j] * np.minimum(1.0, lam[j] / g)
                    Fa[il, isc, im, r] = out["curve"][j]
                    divA[il, isc, im, r] = out["diverged"][j]
                    j += 1
    res.update(a_L=Lh, a_g=Gn, a_F=Fa, a_h=hstep, a_diverged=divA)
    # contrast: minibatch SGD from the standard init (engine, record every step for the step pairs)
    Lc = np.full((nL, nR, K), np.nan)
    Gc = np.full((nL, nR, K), np.nan)
    for il, loss in enumerate(cfg.a_losses):
        th0 = np.array([dc.init_params(net, cfg.seed + r) for r in range(nR)])
        sa = dc.simulate(net, X, Y, C.none(), S.constant(cfg.sgd_lr), n_steps=cfg.a_steps, seed=cfg.seed + 100,
                         batch_size=cfg.sgd_batch, n_replicas=nR, theta0=th0, loss=loss, record_every=1,
                         record_theta=True)
        for r in range(nR):
            path = sa.theta[r]
            ks = np.arange(0, cfg.a_steps, cfg.a_every)
            if np.all(np.isfinite(path)):
                L, g = sm.local_smoothness(net, X, Y, path[ks], cfg.alphas, loss, next_points=path[ks + 1])
                Lc[il, r], Gc[il, r] = L, g
    res.update(sgd_L=Lc, sgd_g=Gc)
    # ---------------- B
    hs, es = np.asarray(cfg.b_gd_h, float), np.asarray(cfg.b_clip_eta, float)
    lrs = np.concatenate([hs, es])
    lams = np.concatenate([np.full(hs.size, np.inf), np.full(es.size, cfg.b_clip_lam)])
    th0 = np.array([_high_loss_init(net, cfg.seed + r, cfg.b_scale) for r in range(cfg.b_seeds) for _ in lrs])
    # GD step sizes of one seed race each other (the slower ones, which would run to the cap, only cost time);
    # every clipped run is followed to the end, for the learning-rate tolerance curve
    race = np.array([r if not np.isfinite(l) else -1 for r in range(cfg.b_seeds) for l in lams])
    out = fullbatch_gd(net, X, Y, cfg.b_loss, th0, np.tile(lrs, cfg.b_seeds), np.tile(lams, cfg.b_seeds),
                       cfg.b_cap, target=cfg.b_target, curve_every=cfg.b_curve_every, blowup_factor=cfg.blowup_factor,
                       race=race if cfg.b_race_gd else None)
    shape = (cfg.b_seeds, lrs.size)
    res.update(b_lr=lrs, b_is_clip=np.isfinite(lams), b_hit=out["hit"].reshape(shape),
               b_diverged=out["diverged"].reshape(shape), b_stopped=out["stopped"].reshape(shape),
               b_curve=out["curve"].reshape(shape + (-1,)))
    return res


# ----------------------------------------------------------------------------------------
def _a_stats(res, cfg):
    L, g = res["a_L"], res["a_g"]
    rho = np.full(L.shape[:4], np.nan)
    slope = np.full(L.shape[:4], np.nan)
    for idx in np.ndindex(L.shape[:4]):
        rho[idx], slope[idx] = _corr(L[idx], g[idx])
    ok = (rho >= cfg.rho_min) & (slope >= cfg.slope_min) & (res["a_diverged"] < 0)
    sr = np.full(res["sgd_L"].shape[:2], np.nan)
    ss = np.full(res["sgd_L"].shape[:2], np.nan)
    for idx in np.ndindex(sr.shape):
        sr[idx], ss[idx] = _corr(res["sgd_L"][idx], res["sgd_g"][idx])
    return rho, slope, ok, sr, ss


def _b_stats(res, cfg):
    hit, div, clip = res["b_hit"], res["b_diverged"], res["b_is_clip"]
    cap = cfg.b_cap
    lr = res["b_lr"]

    def best(mask):
        v = np.where(hit[:, mask] >= 0, hit[:, mask], np.inf).min(axis=1)
        return v                                       # inf: no lr reached the target within the cap
    bg, bc = best(~clip), best(clip)
    ratio = np.where(np.isfinite(bg), bg, cap) / bc   # censored GD counted as the cap: a lower bound
    stable = div < 0

    def largest_stable(mask):
        st = stable[:, mask].all(axis=0)               # stable in every seed
        return float(lr[mask][st].max()) if st.any() else np.nan
    return bg, bc, ratio, largest_stable(~clip), largest_stable(clip)


def _best_lr(res, clip):
    m = res["b_is_clip"] == clip
    h = np.where(res["b_hit"][:, m] >= 0, res["b_hit"][:, m], np.iinfo(np.int64).max)
    return [float(res["b_lr"][m][i]) if h[r, i] < np.iinfo(np.int64).max else float("nan")
            for r, i in enumerate(np.argmin(h, axis=1))]


def check(res, cfg):
    rho, slope, ok, sr, ss = _a_stats(res, cfg)
    out = []
    methods = ("GD", "clipped GD")
    for il, loss in enumerate(cfg.a_losses):
        for im, mname in enumerate(methods):
            o = ok[il, :, im, :]
            frac = float(o.mean())
            passed = frac >= cfg.frac_min
            eos = res["a_L"][il, :, im] * res["a_h"][il, :, im] / 2
            eos_med = float(np.nanmedian(eos)) if np.isfinite(eos).any() else float("nan")
            per = "; ".join(f"x{sc:g}: rho " + ", ".join(f"{v:.2f}" for v in rho[il, isc, im])
                            + " / slope " + ", ".join(f"{v:.2f}" for v in slope[il, isc, im])
                            for isc, sc in enumerate(cfg.a_scales))
            step = f"h={cfg.a_gd_h:g}" if im == 0 else f"eta={cfg.a_clip_eta:g}, lam={cfg.a_clip_lam:g}"
            note = f"{per}. Median of L_hat h_eff / 2 = {eos_med:.2g} (h_eff = the step size applied; 1 = edge of stability). "
            if 0.7 <= eos_med <= 1.3:
                note += ("The path runs at the edge of stability, L_hat ~ 2/h_eff, and while clipping is active "
                         "h_eff = eta lam/||grad F||, so the step-size rule itself ties L_hat to ||grad F|| "
                         "(slope ~1): part of this correlation is made by the optimiser. ")
            fails = [(isc, r) for isc in range(o.shape[0]) for r in range(o.shape[1]) if not o[isc, r]]
            if fails:
                spans = []
                for isc, r in fails:
                    Lr, gr = res["a_L"][il, isc, im, r], res["a_g"][il, isc, im, r]
                    h2 = slice(Lr.size // 10, None)
                    m = np.isfinite(Lr[h2]) & (Lr[h2] > 0) & (gr[h2] > 0)
                    if m.sum() >= 2:
                        spans.append((np.ptp(np.log10(gr[h2][m])), np.ptp(np.log10(Lr[h2][m]))))
                if spans:
                    sg, sl_ = np.array(spans).T
                    note += (f"In the {len(fails)} failing run(s), after the first 10 % of the steps the path spans "
                             f"{sg.min():.2f}-{sg.max():.2f} decades of ||grad F|| and {sl_.min():.2f}-{sl_.max():.2f} "
                             "decades of L_hat")
                    if np.median(sl_) > np.median(sg):
                        note += (": smoothness keeps changing at nearly constant gradient norm (a vertical band in "
                                 "F11a), so there it is not a function of the gradient norm; the correlation is "
                                 "carried by the first steps, where both fall together.")
                    else:
                        note += (": the gradient norm keeps changing at nearly constant smoothness (a flat band in "
                                 "F11a, the L0 part of the model), which lowers the slope and the rank correlation.")
            out.append(claim(f"S11.A_{loss}_{'gd' if im == 0 else 'clip'}",
                             f"{loss} loss, full-batch {mname} ({step}) from a high-loss init, T={cfg.a_steps}: "
                             f"fraction of runs (seeds x output scales {cfg.a_scales}) with Spearman(L_hat, ||grad F||) "
                             f">= {cfg.rho_min} and log-log slope >= {cfg.slope_min}", round(frac, 3),
                             f">= {cfg.frac_min:.3f}", passed, paper="Fig. 1: smoothness grows with the gradient norm",
                             verdict="confirmed" if passed else "refuted", note=note))
    for il, loss in enumerate(cfg.a_losses):
        pooled_L = res["a_L"][il, :, :, :].ravel()
        pooled_g = res["a_g"][il, :, :, :].ravel()
        env = sm.fit_l0_l1(pooled_g, pooled_L, cfg.coverage)
        out.append(claim(f"S11.A_{loss}_envelope", f"{loss} loss: (L0, L1) envelope, smallest line L0 + L1 ||grad F|| "
                         f"above {cfg.coverage:.0%} of all full-batch high-loss points", {"L0": round(env.L0, 4),
                         "L1": round(env.L1, 4), "coverage": round(env.coverage, 4), "n": env.n_points}, "report", None,
                         paper="(L0, L1)-smoothness", verdict="report",
                         note="1-D search over L1 with L0 the coverage quantile of L - L1 g (dynclip.smoothness.fit_l0_l1)."))
    out.append(claim("S11.A_minibatch_contrast", f"minibatch SGD (B={cfg.sgd_batch}, lr={cfg.sgd_lr:g}) from the standard "
                     "init: Spearman(L_hat, ||grad F||) per run", {loss: [round(float(v), 3) for v in sr[il]]
                                                                     for il, loss in enumerate(cfg.a_losses)},
                     "report (THEORY prototype: 0 to 0.33)", None, paper="Fig. 1 (the effect is weaker in other settings)",
                     verdict="report", note="log-log slopes " + "; ".join(
                         f"{loss}: " + ", ".join(f"{v:.2f}" for v in ss[il]) for il, loss in enumerate(cfg.a_losses))
                     + ". From a standard init the loss and the gradient norm change little, so there is little "
                       "range for a correlation: the strong effect needs a high-loss start."))
    bg, bc, ratio, lg, lc = _b_stats(res, cfg)
    frac = float(np.mean(ratio >= cfg.speedup_min))
    passed = frac >= cfg.frac_min
    cens = not np.isfinite(bg).all()
    out.append(claim("S11.B_speedup", f"{cfg.b_loss} loss, output x{cfg.b_scale:g}: fraction of seeds where the best "
                     f"clipped GD (lam={cfg.b_clip_lam:g}) needs >= {cfg.speedup_min:g}x fewer iterations to F <= "
                     f"{cfg.b_target} than the best GD", round(frac, 3), f">= {cfg.frac_min:.3f}", passed,
                     paper="clipped GD converges faster", verdict="confirmed" if passed else "refuted",
                     note="best GD per seed: " + ", ".join(str(int(v)) if np.isfinite(v) else f">{cfg.b_cap}" for v in bg)
                          + " (h = " + ", ".join(f"{v:g}" for v in _best_lr(res, False)) + ")"
                          + "; best clipped: " + ", ".join(str(int(v)) if np.isfinite(v) else f">{cfg.b_cap}" for v in bc)
                          + " (eta = " + ", ".join(f"{v:g}" for v in _best_lr(res, True)) + ")"
                          + "; ratio " + ", ".join(f"{v:.1f}" for v in ratio)
                          + (f". GD runs that never reach the target are counted as {cfg.b_cap} (the cap), so the "
                             "ratio is a lower bound" if cens else "")
                          + (". GD step sizes of a seed race: once one reaches the target the slower ones are stopped "
                             "(they cannot be the best)." if cfg.b_race_gd else "")))
    lr_ratio = lc / lg if np.isfinite(lc) and np.isfinite(lg) else float("nan")
    ok = lr_ratio >= cfg.lr_ratio_min
    top = np.max(np.asarray(cfg.b_clip_eta))
    out.append(claim("S11.B_lr_tolerance", "largest learning rate stable (no divergence within the cap) in every "
                     "seed: clipped GD / GD", round(lr_ratio, 2), f">= {cfg.lr_ratio_min:g}", ok,
                     paper="clipping tolerates larger learning rates", verdict="confirmed" if ok else "refuted",
                     note=f"GD {lg:g}, clipped {lc:g}" + (" (the top of the eta grid: a lower bound)"
                                                          if lc == top else "")))
    return out


def plot(res, cfg, outdir):
    plt = plotting.plt()
    rho, slope, ok, sr, ss = _a_stats(res, cfg)
    nL = len(cfg.a_losses)
    isc = len(cfg.a_scales) - 1          # the largest output scale
    from matplotlib.ticker import NullFormatter
    fig, axes = plt.subplots(nL, 3, figsize=(16, 4.6 * nL), squeeze=False, layout="constrained")
    cmap = plt.get_cmap("viridis")
    for il, loss in enumerate(cfg.a_losses):
        for col in range(3):
            ax = axes[il, col]
            if col < 2:
                L, g = res["a_L"][il, isc, col], res["a_g"][il, isc, col]
                title = (f"full-batch GD, h = {cfg.a_gd_h:g}" if col == 0 else
                         f"full-batch clipped GD, η = {cfg.a_clip_eta:g}, λ = {cfg.a_clip_lam:g}")
                title += f"\nhigh-loss init (output ×{cfg.a_scales[isc]:g})"
                stats = ", ".join(f"{r:.2f}/{s:.2f}" for r, s in zip(rho[il, isc, col], slope[il, isc, col]))
            else:
                L, g = res["sgd_L"][il], res["sgd_g"][il]
                title = f"contrast: minibatch SGD (B = {cfg.sgd_batch}, lr {cfg.sgd_lr:g})\nstandard init"
                stats = ", ".join(f"{r:.2f}/{s:.2f}" for r, s in zip(sr[il], ss[il]))
            it = np.broadcast_to(np.arange(L.shape[-1]) * cfg.a_every, L.shape)
            m = np.isfinite(L) & np.isfinite(g) & (L > 0) & (g > 0)
            sc_ = ax.scatter(g[m], L[m], c=it[m], cmap=cmap, s=6, vmin=0, vmax=cfg.a_steps)
            if m.sum() >= 2:
                env = sm.fit_l0_l1(g[m], L[m], cfg.coverage)
                gg = np.geomspace(g[m].min(), g[m].max(), 100)
                ax.plot(gg, env.L0 + env.L1 * gg, "r-", lw=1.5,
                        label=f"envelope L0 + L1‖∇F‖ above {cfg.coverage:.0%}\nL0 = {env.L0:.3g}, L1 = {env.L1:.3g}")
                ax.legend(loc="upper left")
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("gradient norm ‖∇F(x_k)‖")
            ax.set_ylabel("local smoothness L̂_k")
            ax.set_title(f"{loss} loss, {title}\nSpearman ρ / log-log slope per seed: {stats}", fontsize=9)
        fig.colorbar(sc_, ax=axes[il, :].tolist(), label="iteration k", shrink=0.9)
    fig.suptitle("F11a. Zhang et al. Fig. 1 analogue: local smoothness against gradient norm along the path "
                 "(MLP-C on D256, all seeds)")
    plotting.savefig(fig, outdir, "F11a_smoothness_vs_gradnorm")

    bg, bc, ratio, lg, lc = _b_stats(res, cfg)
    hit, div, clip, lr = res["b_hit"], res["b_diverged"], res["b_is_clip"], res["b_lr"]
    from matplotlib.ticker import NullFormatter
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(15, 5.2), layout="constrained")
    curve = res["b_curve"][0]
    steps = np.arange(curve.shape[-1]) * cfg.b_curve_every
    for j in range(lr.size):
        c = plt.get_cmap("Reds" if clip[j] else "Blues")(0.35 + 0.65 * (np.log(lr[j] / lr[clip == clip[j]].min())
                                                                       / max(np.log(lr[clip == clip[j]].max()
                                                                                     / lr[clip == clip[j]].min()), 1e-9)))
        lab = (f"clipped GD η = {lr[j]:g}" if clip[j] else f"GD h = {lr[j]:g}") + (" (diverges)" if div[0, j] >= 0 else "")
        ax0.plot(steps + 1, curve[j], color=c, label=lab)
    ax0.axhline(cfg.b_target, color="k", ls=":", lw=1, label=f"target F = {cfg.b_target}")
    ax0.set_xscale("log")
    ax0.set_yscale("log")
    ax0.set_xlabel("iteration k + 1")
    ax0.set_ylabel(f"training loss F ({cfg.b_loss})")
    ax0.set_title(f"seed {cfg.seed}: full-batch training curves, output ×{cfg.b_scale:g}")
    ax0.legend(fontsize=7, ncol=2, loc="lower left")
    for is_c, col, name in ((False, "C0", "GD (step h)"), (True, "C3", f"clipped GD (step η, λ = {cfg.b_clip_lam:g})")):
        m = clip == is_c
        for r in range(hit.shape[0]):
            y = np.where(hit[r, m] >= 0, hit[r, m], np.nan).astype(float)
            ax1.plot(lr[m], y, "s-" if not is_c else "o-", color=col, alpha=0.8 if not is_c else 0.5,
                     ms=8 if not is_c else 4, mfc="none" if not is_c else col, mew=1.5, zorder=3 if not is_c else 2,
                     label=name if r == 0 else None)
            stp = res["b_stopped"][r, m] >= 0
            cen = (hit[r, m] < 0) & (div[r, m] < 0) & ~stp
            ax1.plot(lr[m][cen], np.full(cen.sum(), cfg.b_cap) * (1.15 + 0.03 * r), "^", color=col, mfc="none", ms=7,
                     label=f"{name.split(' (')[0]}: not reached within {cfg.b_cap} (stable)" if r == 0 and cen.any() else None)
            ax1.plot(lr[m][stp], res["b_stopped"][r, m][stp] * (1.15 + 0.03 * r), "^", color=col, ms=6, alpha=0.6,
                     label=(f"{name.split(' (')[0]}: stopped when a larger step reached the target\n(slower, so "
                            "more iterations than marked)") if r == 0 and stp.any() else None)
            dv = div[r, m] >= 0
            ax1.plot(lr[m][dv], np.full(dv.sum(), cfg.b_cap) * (1.6 + 0.05 * r), "x", color=col, ms=7,
                     label=f"{name.split(' (')[0]}: diverges (drawn above the cap)" if r == 0 and dv.any() else None)
    ax1.axhline(cfg.b_cap, color="0.5", ls="--", lw=1, label=f"cap {cfg.b_cap}")
    lo = np.nanmin(np.where(hit >= 0, hit, np.nan)) if (hit >= 0).any() else cfg.b_cap
    ax1.set_ylim(10 ** np.floor(np.log10(max(lo, 1) * 0.8)), cfg.b_cap * 2.2)
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("learning rate (h for GD, η for clipped GD)")
    ax1.set_ylabel(f"iterations to F ≤ {cfg.b_target}")
    ax1.set_title(f"iterations to target against learning rate ({hit.shape[0]} seeds)")
    ax1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for ax in (ax0, ax1):
        ax.yaxis.set_minor_formatter(NullFormatter())
    fig.suptitle(f"F11b. Clipping tolerates ≥ {lc / lg if lg > 0 else float('nan'):.0f}× larger steps and "
                 f"converges faster ({cfg.b_loss} loss, MLP-C, high-loss init)")
    plotting.savefig(fig, outdir, "F11b_lr_tolerance")
