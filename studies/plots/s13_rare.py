"""Figures of study S13 (studies/s13_rare.py): F13."""

import numpy as np

from dynclip import plotting

BOUND_STYLE = {"azuma": ("C2", "-", "scalar Azuma: $2e^{-r^2/(2\\lambda^2\\Sigma_2)}$"),
               "pinelis": ("C1", "--", "Pinelis–Azuma: $2e^{-r^2/(8\\lambda^2\\Sigma_2)}$"),
               "coordinate_union": ("C4", ":", "coordinate union: $2d\\,e^{-r^2/(2d\\lambda^2\\Sigma_2)}$"),
               "pinelis_bennett": ("C5", "-.", "Pinelis–Bennett"),
               "sure": ("0.3", "-", "sure bound: P = 0 beyond $\\lambda A(T)$")}


def _estimates(ax, r, p, lo, hi, color, marker, label):
    ok = p > 0
    ax.errorbar(r[ok], p[ok], yerr=[p[ok] - lo[ok], hi[ok] - p[ok]], fmt=marker, color=color, ms=5, capsize=2,
                label=label)


def plot(res, cfg, outdir):
    plt = plotting.plt()
    fig, axs = plt.subplots(2, 3, figsize=(16, 9.5), gridspec_kw=dict(height_ratios=[3, 1.6]))
    floor = 1e-17
    # (a) walk
    ax, axr = axs[0, 0], axs[1, 0]
    r = res["walk_r"]
    ax.plot(res["walk_r_fine"], res["walk_exact_fine"], color="k", lw=1.4, label="exact (dynamic programming)")
    wb = {k[len("walk_bound_"):]: res[k] for k in res if k.startswith("walk_bound_")}
    for n, v in wb.items():
        if n == "coordinate_union":          # equals scalar Azuma for d = 1
            continue
        c, ls, lab = BOUND_STYLE[n]
        ax.plot(res["walk_r_fine"], v, color=c, ls=ls, lw=1.6, label=lab)
        axr.plot(res["walk_r_fine"], v / res["walk_exact_fine"], color=c, ls=ls, lw=1.6, label=lab)
    plotting.prob_with_ci(ax, r + 0.01, res["walk_mc_k"], cfg.walk_mc, color="0.5", marker="s",
                          label=f"plain Monte Carlo, {cfg.walk_mc} runs")
    _estimates(ax, r, res["walk_sp_probability"], res["walk_sp_ci_low"], res["walk_sp_ci_high"], "C3", "o",
               f"splitting, {cfg.walk_particles} particles (95 % CI)")
    ax.set_title(f"(a) 1-D walk: two data points y ∈ {{0, 10}}, start 5, λ = {cfg.lam:g},\nconstant step "
                 f"a = {cfg.walk_step:g}, T = {cfg.walk_steps} steps: every step is ±a, a fair coin;\n"
                 "here the noise is the whole displacement, so every noise bound applies", fontsize=9.5)
    # (b, c) MLP
    for col, q in ((1, "noise"), (2, "displacement")):
        ax, axr = axs[0, col], axs[1, col]
        rq = res[f"{q}_r"]
        plotting.prob_with_ci(ax, rq * 1.01, res[f"{q}_mc_k"], res["mlp_R"], color="0.5", marker="s",
                              label=f"plain Monte Carlo, {res['mlp_R']} runs")
        _estimates(ax, rq, res[f"{q}_sp_probability"], res[f"{q}_sp_ci_low"], res[f"{q}_sp_ci_high"], "C3", "o",
                   f"splitting, {cfg.particles} particles (95 % CI)")
        for n in [k[len(f"{q}_bound_"):] for k in res if k.startswith(f"{q}_bound_")]:
            c, ls, lab = BOUND_STYLE[n]
            if n == "sure":                  # far right of the radii: named in the legend only
                ax.plot([], [], color=c, lw=1.5, label=lab + f" = {res['mlp_A_T'] * cfg.lam:.2f} (off the plot)")
                continue
            ax.plot(res[f"{q}_r_fine"], res[f"{q}_bound_{n}"], color=c, ls=ls, lw=1.6,
                    label=lab + (f", d = {int(res['mlp_d'])}" if n == "coordinate_union" else ""))
            with np.errstate(divide="ignore", invalid="ignore"):
                rat = res[f"{q}_boundat_{n}"] / res[f"{q}_sp_probability"]
            axr.plot(rq, rat, color=c, ls=ls, marker="o", ms=3, lw=1.2, label=lab)
        ax.set_xlim(rq[0] * 0.5, rq[-1] * 1.1)
        what = ("noise of the run: $P(\\max_{t\\leq T}\\|\\xi_t\\|\\geq r)$" if q == "noise" else
                "distance travelled: $P(\\max_{t\\leq T}\\|\\theta_t-\\theta_0\\|\\geq r)$")
        ax.set_title(f"({'b' if q == 'noise' else 'c'}) tanh net 2-8-1, 64 points with heavy-tailed noise,\n"
                     f"λ = {cfg.lam:g}, a(t) = 1/(t+{cfg.t0:g}), T = {cfg.n_steps}, start near a rest point:\n" + what,
                     fontsize=9.5)
        if q == "displacement":
            axr.text(0.5, 0.5, "no concentration bound holds for the displacement\n(it carries the drift "
                     "sum a H(θ)); only the sure bound λA(T),\nfar to the right of the plotted radii",
                     ha="center", va="center", transform=axr.transAxes, fontsize=9)
            axr.axis("off")
    for ax in axs[0]:
        ax.set_yscale("log")
        ax.set_ylim(floor, 2)
        ax.set_xlabel("radius r")
        plotting.legend_outside(ax, "below", offset=0.14, fontsize=7.5)
    axs[0, 0].set_ylabel("probability of ever exceeding r")
    for ax in axs[1, :2]:
        ax.set_yscale("log")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel("radius r")
    axs[1, 0].set_ylabel("bound / true probability")
    axs[1, 0].set_title("(d) how loose each bound is on the walk (bound / exact)", fontsize=9.5)
    axs[1, 1].set_title("(e) how loose each bound is on the net's noise\n(bound / splitting estimate)", fontsize=9.5)
    axs[1, 2].set_title("(f) displacement", fontsize=9.5)
    fig.suptitle("F13. Chance that clipped SGD ever moves (or its noise ever grows) beyond r, down to 1e-10 and "
                 "below:\nmultilevel splitting (red) against exact answers, plain Monte Carlo (grey, blind below "
                 "1/runs) and every bound that holds", fontsize=11)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F13_rare_events")
