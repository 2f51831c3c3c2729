"""Figures of study S11 (studies/s11_zhang_mlp.py): F11a, F11b."""

import numpy as np

from dynclip import plotting
from dynclip import smoothness as sm
from studies.s11_zhang_mlp import _a_stats, _b_stats, _best_lr


def plot(res, cfg, outdir):
    plt = plotting.plt()
    from matplotlib.ticker import NullFormatter
    st, _, sr, ss = _a_stats(res, cfg)
    nL = len(cfg.a_losses)
    isc = len(cfg.a_scales) - 1          # the largest output scale
    fig, axes = plt.subplots(nL, 3, figsize=(16, 4.8 * nL), squeeze=False, layout="constrained")
    cmap = plt.get_cmap("viridis")
    for il, loss in enumerate(cfg.a_losses):
        for col in range(3):
            ax = axes[il, col]
            if col < 2:
                L, g = res["a_L"][il, isc, col], res["a_g"][il, isc, col]
                title = (f"full-batch GD, h = {cfg.a_gd_h[il]:g}" if col == 0 else
                         f"full-batch clipped GD, η = {cfg.a_clip_eta:g}, λ = {cfg.a_clip_lam:g}")
                title += f", high-loss init (output ×{cfg.a_scales[isc]:g})"
                stats = ("binned ρ per seed: " + ", ".join(f"{v:.2f}" for v in st["rho_bin"][il, isc, col])
                         + "\nL1 95 % lower limit: " + ", ".join(f"{v:.2g}" for v in st["L1_lo"][il, isc, col])
                         + "\nwhole-path ρ: " + ", ".join(f"{v:.2f}" for v in st["rho"][il, isc, col]))
            else:
                L, g = res["sgd_L"][il], res["sgd_g"][il]
                title = f"contrast: minibatch SGD (B = {cfg.sgd_batch}, lr {cfg.sgd_lr:g}), standard init"
                stats = "whole-path ρ / log-log slope: " + ", ".join(f"{r:.2f}/{s:.2f}" for r, s in zip(sr[il], ss[il]))
            it = np.broadcast_to(np.arange(L.shape[-1]) * cfg.a_every, L.shape)
            m = np.isfinite(L) & np.isfinite(g) & (L > 0) & (g > 0)
            sc_ = ax.scatter(g[m], L[m], c=it[m], cmap=cmap, s=6, vmin=0, vmax=cfg.a_steps)
            if col < 2:
                for r in range(L.shape[0]):
                    ok = m[r]
                    if ok.sum() >= 3:
                        bs = sm.binned_spearman(g[r][ok], L[r][ok], cfg.a_bins, cfg.a_bin_min)
                        plotting.guide(ax, bs.g_median, bs.L_median, "o", color="k", ms=3, alpha=0.7,
                                       label="bin medians, one dotted guide per seed\n(empty bins: nothing measured in between)"
                                       if r == 0 else None)
            if m.sum() >= 2:
                env = sm.fit_l0_l1(g[m], L[m], cfg.coverage)
                gg = np.geomspace(g[m].min(), g[m].max(), 100)
                ax.plot(gg, env.L0 + env.L1 * gg, "r-", lw=1.5,
                        label=f"envelope L0 + L1‖∇F‖ above {cfg.coverage:.0%}\nL0 = {env.L0:.3g}, L1 = {env.L1:.3g}")
            plotting.legend_outside(ax, "below", offset=0.2, fontsize=7, ncol=2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("gradient norm ‖∇F(x_k)‖")
            ax.set_ylabel("local smoothness L̂_k")
            ax.set_title(f"{loss} loss, {title}\n{stats}", fontsize=8)
        fig.colorbar(sc_, ax=axes[il, :].tolist(), label="iteration k", shrink=0.9)
    fig.suptitle("F11a. Zhang et al. Fig. 1 analogue: local smoothness against gradient norm along the path "
                 f"({plotting.setup('C', 'D256')}, {cfg.a_seeds} seeds)\n"
                 "L̂_k = largest ‖∇F(x_k + αd) − ∇F(x_k)‖ / (α‖d‖) over a few steps α along the update d; "
                 "ρ = Spearman rank correlation of L̂_k with ‖∇F(x_k)‖")
    plotting.savefig(fig, outdir, "F11a_smoothness_vs_gradnorm")
    _plot_b(res, cfg, outdir, plt)


def _plot_b(res, cfg, outdir, plt):
    from matplotlib.ticker import NullFormatter
    b = _b_stats(res, cfg)
    hit, div, clip, lr, stop = res["b_hit"], res["b_diverged"], res["b_is_clip"], res["b_lr"], res["b_stopped"]
    nR = hit.shape[0]
    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(19, 5.6), layout="constrained",
                                        gridspec_kw=dict(width_ratios=[1.1, 1.3, 0.7]))
    # (a) training curves of the first seed: GD near its best h, clipped GD across the eta grid
    curve = res["b_curve"][0]
    steps = np.arange(curve.shape[-1]) * cfg.b_curve_every
    hg, hc = _best_lr(res, False)[0], _best_lr(res, True)[0]
    show = [j for j in range(lr.size) if (not clip[j] and np.isfinite(hg) and hg / 5 <= lr[j] <= hg * 1.6)
            or (clip[j] and (lr[j] == hc or np.isclose(np.log10(lr[j]) % 1, 0) or lr[j] == lr[clip].max()))]
    for j in show:
        same = clip == clip[j]
        span = max(np.log(lr[same].max() / lr[same].min()), 1e-9)
        c = plt.get_cmap("Reds" if clip[j] else "Blues")(0.35 + 0.65 * np.log(lr[j] / lr[same].min()) / span)
        lab = (f"clipped GD η = {lr[j]:g}" if clip[j] else f"GD h = {lr[j]:g}") + (" (diverges)" if div[0, j] >= 0 else "")
        ax0.plot(steps + 1, curve[j], color=c, label=lab, lw=2 if lr[j] in (hg, hc) else 1)
    ax0.axhline(cfg.b_target, color="k", ls=":", lw=1, label=f"target F = {cfg.b_target}")
    ax0.set_xscale("log")
    ax0.set_yscale("log")
    ax0.set_xlabel("iteration k + 1")
    ax0.set_ylabel(f"training loss F ({cfg.b_loss})")
    ax0.set_title(f"seed {cfg.seed}: training curves, output ×{cfg.b_scale:g} (thick: best step)")
    ax0.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(0.0, -0.15))     # below the axes
    # (b) iterations to target against the learning rate, one colour per seed
    for r in range(nR):
        col = f"C{r % 10}"
        for is_c in (False, True):
            m = clip == is_c
            y = np.where(hit[r, m] >= 0, hit[r, m], np.nan).astype(float)
            ax1.plot(lr[m], y, "s-" if not is_c else "o--", color=col, ms=4, lw=1, alpha=0.85,
                     label=f"seed {cfg.seed + r}" if not is_c and nR <= 6 else None)
            if np.isfinite(y).any():
                jb = int(np.nanargmin(y))
                ax1.plot(lr[m][jb], y[jb], "*", color=col, ms=13, mec="k", mew=0.6, zorder=5)
            stp = stop[r, m] >= 0
            ax1.plot(lr[m][stp], stop[r, m][stp] * 1.12, "^", color=col, ms=4, alpha=0.6)
            cen = (hit[r, m] < 0) & (div[r, m] < 0) & ~stp
            ax1.plot(lr[m][cen], np.full(cen.sum(), cfg.b_cap * (1.25 + 0.05 * r)), "v", color=col, mfc="none", ms=5)
            dv = div[r, m] >= 0
            ax1.plot(lr[m][dv], np.full(dv.sum(), cfg.b_cap * (1.8 + 0.08 * r)), "x", color=col, ms=5)
    for mk, ls, lab in (("s", "-", "GD, step h"), ("o", "--", f"clipped GD, step η (λ = {cfg.b_clip_lam:g})"),
                        ("*", "", "best step of the seed"), ("^", "", "GD stopped when a larger h reached the target"),
                        ("v", "", f"stable, target not reached within {cfg.b_cap}"), ("x", "", "diverges")):
        ax1.plot([], [], mk + ls if ls else mk, color="0.3", mfc="none" if mk == "v" else None, label=lab)
    ax1.axhline(cfg.b_cap, color="0.5", ls="--", lw=1)
    lo = np.nanmin(np.where(hit >= 0, hit, np.nan)) if (hit >= 0).any() else cfg.b_cap
    ax1.set_ylim(10 ** np.floor(np.log10(max(lo, 1) * 0.8)), cfg.b_cap * 2.6)
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("learning rate (h for GD, η for clipped GD); six grid points per decade")
    ax1.set_ylabel(f"iterations to F ≤ {cfg.b_target}")
    ax1.set_title(f"iterations to target against the learning rate ({nR} seeds)")
    ax1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.15), ncol=2)     # below the axes
    ax1.yaxis.set_minor_formatter(NullFormatter())
    # (c) the per-seed ratio
    ratio = b["ratio"]
    xs = np.arange(nR)
    ax2.bar(xs, ratio, color=["C2" if v >= cfg.speedup_min else "C1" for v in ratio])
    for x, v, g_, c_ in zip(xs, ratio, b["best_gd"], b["best_clip"]):
        gtxt = f"{int(g_)}" if np.isfinite(g_) else f">{cfg.b_cap}"
        label = f"{v:.1f}×\n{gtxt} / {int(c_) if np.isfinite(c_) else '–'}" if nR <= 6 else f"{v:.1f}"
        ax2.annotate(label, (x, v), ha="center", va="bottom", fontsize=7 if nR <= 6 else 6)
    ax2.axhline(cfg.speedup_min, color="k", ls="--", lw=1, label=f"criterion {cfg.speedup_min:g}×")
    ax2.set_xticks(xs, [str(cfg.seed + r) for r in range(nR)], fontsize=7 if nR > 6 else None)
    ax2.set_xlabel("seed" + ("" if nR <= 6 else " (bar labels: ratio; the counts are in numbers.json)"))
    ax2.set_ylabel("best GD iterations / best clipped GD iterations")
    n_ok = int(np.sum(ratio >= cfg.speedup_min))
    ax2.set_title(f"speed-up per seed: ≥ {cfg.speedup_min:g}× in {n_ok} of {nR}\n(need ≥ {cfg.frac_min:.0%} of the seeds)")
    ax2.set_ylim(0, max(np.nanmax(ratio[np.isfinite(ratio)]) if np.isfinite(ratio).any() else 1, cfg.speedup_min) * 1.3)
    ax2.legend(fontsize=7, loc="upper right")
    lg, lc = b["stable_gd"], b["stable_clip"]
    fig.suptitle(f"F11b. Learning-rate tolerance and speed ({cfg.b_loss} loss, {plotting.setup('C', 'D256')}, "
                 f"high-loss init):\nlargest stable step clipped GD {lc:g} vs GD {lg:g}; best-vs-best speed-up per seed")
    plotting.savefig(fig, outdir, "F11b_lr_tolerance")
