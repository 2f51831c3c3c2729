"""Figures of study S6 (studies/s06_bias.py): F6a, F6b."""

import numpy as np

from dynclip import plotting


def _xpos(lams):
    """x positions for lambda / lambda_ref on a log axis, with lambda = inf drawn at 2 x the largest."""
    fin = lams[np.isfinite(lams)]
    return np.where(np.isfinite(lams), lams, 2.0 * fin.max()), 2.0 * fin.max()


def plot(res, cfg, outdir):
    from matplotlib.ticker import NullFormatter
    plt = plotting.plt()
    lams = np.array(cfg.lam_mults, dtype=float)
    x, xinf = _xpos(lams)
    o = np.argsort(x)
    fin = np.isfinite(lams[o])
    fig, axs = plt.subplots(1, 2, figsize=(12, 5.2))
    styles = [("root1", "B = 1: certified root of H_μ (the limit)", "k", "o", "-")]
    for B, col in zip(cfg.batch_sizes, ["C0", "C1", "C2", "C4"]):
        styles.append((f"sgd{B}", f"B = {B}: SGD from θ*, Polyak average, τ_T = {res['tau_T']:.1f} (short bars: its noise floor)",
                       col, "s", "--"))
    styles.append(("rootN", "B = N: certified root of ∇F/c + μθ (full-batch clipped GD, the limit)", "C3", "^", "-"))
    floor_y = {"grad": 1e-13, "F": 1e-5}
    for ax, what, ylab in [(axs[0], "grad", "bias ‖∇F_μ(θ_c)‖"), (axs[1], "F", "F_μ(θ_c) − F_μ(θ*)")]:
        lo = floor_y[what]
        for key, lab, col, mk, ls in styles:
            y = res[f"{key}_grad_norm" if what == "grad" and key.startswith("root") else
                    f"{key}_bias" if what == "grad" else f"{key}_F_excess"][o]
            y = np.maximum(y, lo) if what == "grad" else y
            plotting.guide(ax, x[o][fin], y[fin], mk, color=col, label=lab if what == "grad" else None)
            ax.plot(x[o][~fin], y[~fin], mk, color=col, ms=6)           # lambda = inf, not joined
            if key.startswith("sgd"):
                f = (res[f"{key}_floor"] if what == "grad" else res[f"{key}_F_floor"])[o]
                ax.plot(x[o], f, "_", color=col, ms=14, mew=2, alpha=0.6)
        ax.set_xscale("log")
        if what == "grad":
            ax.set_yscale("log")
            ax.set_ylim(bottom=lo / 3)
        else:
            ax.set_yscale("symlog", linthresh=lo)
            ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(list(x[o]))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticklabels([("∞" if np.isinf(v) else f"{v:g}") for v in lams[o]])
        ax.set_xlabel("clipping threshold λ / λ_ref   (λ_ref = median ‖g‖ at θ* = %.2f)" % res["lam_ref"])
        ax.set_ylabel(ylab)
    plotting.guide(axs[0], x[o][fin], np.maximum(res["ode1_horizon_grad_norm"][o][fin], 1e-13), "o", color="k",
                   mfc="none", label=f"B = 1: clipped ODE at τ_T = {res['tau_T']:.1f} (the SGD horizon)")
    axs[0].axhline(cfg.bias_min, color="0.5", ls=":", lw=1)
    axs[0].text(x[o][0], cfg.bias_min * 1.6, "criterion ≥ 1e-2 (B = 1, λ ≤ λ_ref)", fontsize=7, color="0.35")
    axs[0].axhline(cfg.fullbatch_max, color="C3", ls=":", lw=1)
    axs[0].text(x[o][0], cfg.fullbatch_max * 1.6, "B = N criterion ≤ 1e-6", fontsize=7, color="C3")
    axs[0].set_title("gradient of the loss F_μ = F + (μ/2)‖θ‖² (μ = %g) at the limit θ_c of clipped SGD\n"
                     "(values below 1e-13 drawn at 1e-13)" % cfg.mu, fontsize=10)
    axs[1].set_title("loss excess of the clipped limit over the minimiser θ* (symlog: linear below 1e-5)\n"
                     "B = N ends at a critical point of F_μ: θ* itself, or another one (negative excess)", fontsize=10)
    fig.legend(loc="lower center", ncol=2, fontsize=8, frameon=False, title="markers: measured at 5 thresholds and "
               "without clipping (∞); dotted lines only guide the eye", title_fontsize=8)
    # inset: the 1-D H and F'
    ins = axs[0].inset_axes([0.22, 0.16, 0.5, 0.27])
    ins.plot(res["grid_a"], res["H_a"], "C0", label="H (clipped field)")
    ins.plot(res["grid_a"], res["Fp_a"], "C1", label="F′ (true gradient)")
    ins.axhline(0, color="k", lw=0.6)
    ins.plot([1 / 9], [0], "o", color="C0", ms=5)
    ins.plot([1], [0], "o", color="C1", ms=5)
    ins.annotate("θ_c = 1/9", (1 / 9, 0), (0.4, -1.25), fontsize=7, color="C0", arrowprops=dict(arrowstyle="-", lw=0.5))
    ins.annotate("θ* = 1", (1, 0), (1.9, -0.9), fontsize=7, color="C1", arrowprops=dict(arrowstyle="-", lw=0.5))
    ins.set_title("inset: 1-D, y ∈ {0 (0.9), 10 (0.1)}, λ = 1", fontsize=7)
    ins.set_xlabel("θ", fontsize=7)
    ins.tick_params(labelsize=6)
    ins.legend(fontsize=6, loc="upper left")
    ins.set_ylim(-1.5, 1.5)
    ins.grid(True, alpha=0.3)
    fig.suptitle("F6a. Clipping bias: a zero of H = E[g/c] (eq. 22) is not a zero of ∇F = E[g] unless c is "
                 "deterministic\n%s; B = batch size; θ* = certified minimiser of F_μ" % plotting.setup("A", "skew"),
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    plotting.savefig(fig, outdir, "F6a_bias_vs_lambda")

    fig, axs = plt.subplots(1, 2, figsize=(12, 4.3))
    th = res["theta_T_1d"]
    axs[0].hist(th, bins=40, color="C0", alpha=0.8)
    axs[0].axvline(1 / 9, color="k", ls="--", label="θ_c = 1/9 (zero of H)")
    axs[0].set_xlabel("θ_T after T = %.0e clipped SGD steps, a(t) = %g/(t+%g)" % (cfg.T_1d, cfg.a0_1d, cfg.t0_1d))
    axs[0].set_ylabel("runs")
    axs[0].set_title("(i) 1-D, y = 0 (weight 0.9) or 10 (weight 0.1), λ = 1: %d runs from θ* = 1 all end at 1/9\nmean %.5f, E g(θ_T) = %.4f ≈ −8/9"
                     % (th.size, th.mean(), res["Eg_1d"]))
    axs[0].legend()
    gb = res["grid_b"]
    axs[1].axvspan(1, 9, color="C2", alpha=0.12, label="H ≡ 0 on [1, 9]")
    axs[1].plot(gb, res["H_b"], "C0", lw=2, label="H(θ) = ½ clip(θ) + ½ clip(θ − 10)")
    axs[1].plot(gb, res["Fp_b"], "C1", label="F′(θ) = θ − 5")
    axs[1].axhline(0, color="k", lw=0.6)
    axs[1].set_xlabel("θ")
    axs[1].set_ylabel("field value")
    axs[1].plot([1], [res["Fp_eq_at_1"]], "o", color="C1")
    axs[1].annotate("F′(1) = %g" % res["Fp_eq_at_1"], (1, res["Fp_eq_at_1"]), (2.0, -4.6), fontsize=8, color="C1",
                    arrowprops=dict(arrowstyle="-", lw=0.6))
    axs[1].set_ylim(-5, 3)
    axs[1].set_title("(ii) equal weights y ∈ {0, 10}, λ = 1: every θ in [1, 9] satisfies (22),\n"
                     "yet F′(1) = %g" % res["Fp_eq_at_1"])
    axs[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F6b_one_dimensional")
