"""Figures of study S10 (studies/s10_zhang_1d.py): F10a, F10b."""

import numpy as np

from dynclip import plotting
from studies.s10_zhang_1d import CENSORED, DIVERGED, _slopes


def plot(res, cfg, outdir):
    plt = plotting.plt()
    s = _slopes(res, cfg)
    fig, axes = plt.subplots(1, 2, figsize=(12, 7.4))
    styles = [("gd", "fixed-step GD, h tuned", "C0", "o"),
              ("clip_zhang", "clipped GD, Zhang's η = 1/(10 L0), γ = min(1/η, 1/(10 L1 η))", "C3", "s"),
              ("clip_tuned", "clipped GD, (η, γ) tuned", "C1", "^"),
              ("normalized", "normalized GD, η = 1/(10 L0), β tuned", "C2", "v")]
    for ax, name, eps in ((axes[0], "cosh", cfg.cosh_eps), (axes[1], "quartic", cfg.quartic_eps)):
        M = res[f"{name}_M"]
        for key, lab, col, mk in styles:
            it = res[f"{name}_{key}"].astype(float)
            sl = s[f"{name}_{key}"]
            plotting.guide(ax, M[it > 0], it[it > 0], mk, color=col, label=f"{lab} (fitted slope {sl:.2f})")
        ax.plot(M, res[f"{name}_bound"], "--", color="C3", lw=1,
                label="Zhang's upper bound, valid for clipped GD with Zhang's η, γ only:\n20 L0 Δ/ε² + 20 max(1, L1²) Δ/L0")
        Mg = np.geomspace(M.min(), M.max(), 50)
        gd, cz = res[f"{name}_gd"], res[f"{name}_clip_tuned"]
        if name == "cosh":
            ax.plot(Mg, gd[-1] * (Mg / np.log(Mg)) / (M[-1] / np.log(M[-1])), ":", color="k", lw=1,
                    label="reference slope ∝ M / log M")
            ax.plot(Mg, res["cosh_clip_zhang"][-1] * np.log(Mg) / np.log(M[-1]), "-.", color="gray", lw=1,
                    label="reference slope ∝ log M")
            ax.set_title(f"f = cosh x, (L0, L1) = (1, 1), ε = {eps:g}; Zhang's η = 0.1, γ = 1")
            ax.set_xlabel("M = sup |f'| on the sublevel set = sinh x0")
        else:
            ax.plot(Mg, gd[-1] * (Mg / M[-1]) ** (2 / 3), ":", color="k", lw=1, label="reference slope ∝ M^(2/3)")
            ax.plot(Mg, cz[-1] * (Mg / M[-1]) ** (1 / 3), "-.", color="gray", lw=1, label="reference slope ∝ M^(1/3)")
            ax.set_title(f"f = x⁴, (L0, L1) = (16, 1), ε = {eps:g}; Zhang's η = 1/160, γ = 16")
            ax.set_xlabel("M = sup |f'| on the sublevel set = 4 x0³")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("iterations to |f'(x)| ≤ ε (worst over starts)")
        plotting.legend_outside(ax, "below", offset=0.14, fontsize=7.5)
        for x0, m in zip(res[f"{name}_x0"], M):
            ax.annotate(f"x0={x0:g}", (m, 1.5), fontsize=7, ha="center", color="0.4")
        ax.set_ylim(1, None)
    fig.suptitle("F10a. Zhang et al. (2020): iterations against the gradient bound M "
                 "(every method tuned by the minimax over start points)\n"
                 "markers: the measured start ranges (0, x0]; dotted lines only guide the eye; "
                 "(L0, L1): f'' ≤ L0 + L1|f'|; Δ = f(x0) − min f")
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F10a_iterations_vs_M")

    per = res["protocol_per_start"].astype(float)
    hs = res["protocol_h"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    single = np.where(per[:, 0] >= 0, per[:, 0], np.nan)
    mm = np.where((per < 0).any(1), np.nan, per.max(1))
    ax.plot(hs, mm, "s-", ms=5, lw=3, color="C3", alpha=0.6,
            label=f"worst over {per.shape[1]} starts in (0, x0] (minimax)")
    ax.plot(hs, single, "o--", ms=3, color="C0", label="from x0 only (single start; on the grid it is the worst start)")
    cens = (per == CENSORED).any(1) & ~(per == DIVERGED).any(1)
    if cens.any():
        ax.plot(hs[cens], np.full(cens.sum(), cfg.protocol_cap), "^", color="0.5", ms=4,
                label=f"some start not done within {cfg.protocol_cap:.0e} iterations")
    div = (per == DIVERGED).any(1)
    if div.any():
        ax.axvspan(hs[div].min(), hs.max(), color="0.9", label="some start diverges")
    lk = res["protocol_lucky_per_start"].astype(float)
    hl = float(res["protocol_lucky_h"])
    ax.plot([hl], [max(lk[0], 1)], "*", color="C0", ms=12, mec="k",
            label=f"lucky step h = x0/sinh x0: {int(lk[0])} iteration from x0")
    if (lk >= 0).all():
        ax.plot([hl], [lk.max()], "*", color="C3", ms=12, mec="k", label="... and its worst case over the starts")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("fixed step h")
    ax.set_ylabel(f"iterations to |f'(x)| ≤ {cfg.cosh_eps:g}")
    ax.set_title(f"F10b. Why minimax: fixed-step GD on f = cosh x, x0 = {cfg.protocol_x0:g}, grid of h\n"
                 "a step tuned to one start can land on the minimiser by luck (star)")
    ax.legend(loc="lower left")
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F10b_minimax_protocol")
