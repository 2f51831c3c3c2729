"""Figures of study S7 (studies/s07_not_gradient.py): F7a, F7b, F7c."""

import numpy as np

from dynclip import plotting
from studies.s07_not_gradient import C1, C2


def _rms(a, axis=-1):
    return np.sqrt(np.mean(np.asarray(a) ** 2, axis=axis))


def plot(res, cfg, outdir):
    plt = plotting.plt()
    from matplotlib.colors import TwoSlopeNorm
    # F7a
    fig, ax = plt.subplots(figsize=(7.5, 7.4))
    cm = res["curl_map"]
    v = np.nanmax(np.abs(cm))
    im = ax.pcolormesh(res["grid_x"], res["grid_y"], cm, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -v, v),
                       shading="auto")
    fig.colorbar(im, ax=ax, label="curl H = ∂H₂/∂θ₁ − ∂H₁/∂θ₂", fraction=0.046, pad=0.03)
    Q, HQ = res["quiver_pts"], res["quiver_H"]
    ax.quiver(Q[..., 0], Q[..., 1], HQ[..., 0], HQ[..., 1], color="k", alpha=0.7, width=0.003)
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(cfg.circle_center[0] + cfg.circle_radius * np.cos(t), cfg.circle_center[1] + cfg.circle_radius * np.sin(t),
            "g-", lw=1.5, label="circle r = 0.5 at (1, 1): ∮H·dθ = %.4f" % res["circ2d"])
    ax.plot(*C1, "ks", ms=7, mfc="w")
    ax.plot(*C2, "ks", ms=7, mfc="w", label="sample centres c₁, c₂")
    ax.plot(0, 0, "m*", ms=12, label="curl H(0, 0) = %.6f" % res["curl0"])
    ax.plot(*res["theta_star_2d"], "o", color="C1", ms=11, label="θ* (minimiser of F)")
    ax.plot(*res["theta_c_2d"], "o", color="C2", ms=6, mec="k", label="zero of H found from θ*: ‖∇F‖ = %.1g\n"
            "(two samples: g₁ = −g₂ at θ*, so clipping is symmetric there)" % res["gradF_at_theta_c_2d"])
    ax.set_xlabel("θ₁")
    ax.set_ylabel("θ₂")
    ax.set_aspect("equal")
    ax.set_xlim(res["grid_x"][0], res["grid_x"][-1])
    ax.set_ylim(res["grid_y"][0], res["grid_y"][-1])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=7)
    ax.set_title("F7a. Arrows H(θ) = mean clipped gradient (two per-sample quadratics, λ = 1; the flow\n"
                 "θ' = −H runs against them), colour curl H: not a gradient field (curl ≠ 0)", fontsize=10)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F7a_curl_quiver")
    # F7b
    fig, axs = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axs[0]
    t1 = res["tau_1d"][1:]
    ax.plot(t1, res["F_excess_1d"][1:], "C0", lw=2, label="clipped ODE (dynclip.ode)")
    ax.plot(t1, res["F_excess_1d_exact"][1:], "k:", label="exact: θ(τ) = 1/9 + 8/9 e^(−0.9τ)")
    ax.axhline(0.5 * (8 / 9) ** 2, color="0.5", ls="--", lw=1, label="F(1/9) − F(1) = 0.395")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ODE time τ")
    ax.set_ylabel("F(θ(τ)) − F(θ*)")
    ax.set_title("1-D, y ∈ {0 (0.9), 10 (0.1)}, λ = 1, from θ* = 1:\nF rises (dF/dτ = %.3f at θ = 0.5)"
                 % res["dFdtau_at_half"])
    ax.legend(fontsize=8)
    ax = axs[1]
    tau = res["tau"]
    floor = 1e3 * np.finfo(float).eps * res["F_star"]
    for m, ex, col in zip(res["flow_lams"], res["F_excess_path"], plt.cm.viridis(np.linspace(0, 0.9, len(res["flow_lams"])))):
        ax.plot(tau[1:], np.maximum(ex[1:], floor / 10), color=col, lw=1.8, label=f"λ = {m:g} λ_ref")
    ax.axhline(cfg.excess_rel * res["F_star"], color="r", ls=":", lw=1, label="criterion: final excess ≥ 1e-3 F_μ(θ*)")
    ax.axhline(floor, color="0.5", ls="--", lw=0.8, label="roundoff level of F")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ODE time τ")
    ax.set_ylabel("F_μ(θ(τ)) − F_μ(θ*)")
    ax.set_title("%s,\nloss F_μ = F + (μ/2)‖θ‖², μ = %g, from the certified minimiser θ* (F_μ(θ*) = %.3f):\n"
                 "F_μ rises along every clipped flow (LSODA) to a certified root; λ_ref = median ‖g‖ at θ*"
                 % (plotting.setup("A", "skew"), cfg.mu, res["F_star"]), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("F7b. The loss F is not a Lyapunov function of the clipped flow θ' = −H(θ), H = mean clipped gradient", fontsize=11)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F7b_F_along_flow")
    # F7c
    lams = res["lam_mults"]
    fin = np.isfinite(lams)
    xinf = 2.0 * lams[fin].max()
    x = np.where(fin, lams, xinf)
    o = np.argsort(x)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7.5, 7.2), sharex=True, gridspec_kw=dict(height_ratios=(2, 1)))
    rmsH = _rms(res["circ_H"])
    maxG = np.max(np.abs(res["circ_gradF"]), axis=-1)
    fo = o[fin[o]]                       # finite thresholds: dotted guides; lambda = inf: a separate point
    for j, rho in enumerate(res["rhos"]):
        for sel in (fo, o[~fin[o]]):
            first = sel is fo
            plotting.guide(ax, x[sel], rmsH[sel, j], "o", color=f"C{j}",
                           label=f"|∮H_μ·dθ|, ρ = {rho:g} (RMS over planes)" if first else None)
            plotting.guide(ax, x[sel], np.maximum(maxG[sel, j], 1e-20), "x", color=f"C{j}",
                           label=f"|∮∇F_μ·dθ| (control, max over planes), ρ = {rho:g}" if first else None)
            plotting.guide(ax2, x[sel], 100 * res["clip_fraction_circle"][sel, j].mean(axis=-1), "s", color=f"C{j}",
                           ms=4, label=f"ρ = {rho:g}" if first else None)
    ax2.axhspan(100 * cfg.clip_lo, 100 * cfg.clip_hi, color="0.92", zorder=0, label="10-90 %: criterion applies")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import NullFormatter
    ax2.set_xticks(list(x[o]))
    ax2.xaxis.set_minor_formatter(NullFormatter())
    ax2.set_xticklabels([("∞" if np.isinf(v) else f"{v:g}") for v in lams[o]])
    ax2.set_xlabel("clipping threshold λ / λ_ref   (λ_ref = median ‖g‖ at θ* = %.2f; ∞ = no clipping)\n"
                   "markers: measured; dotted lines only guide the eye" % res["lam_ref"])
    ax.set_ylabel("circulation")
    ax2.set_ylabel("% samples clipped\non the circles (mean)")
    ax2.set_ylim(0, 100)
    ax2.legend(fontsize=7, loc="upper right")
    ax.legend(fontsize=7, loc="center left")
    ax.set_title("F7c. %s, weight decay μ = %g:\ncirculation on small circles around the certified zero θ_c(λ) of H\n"
                 % (plotting.setup("A", "skew"), cfg.mu) +
                 "(a gradient field has zero circulation: the control is quadrature roundoff)", fontsize=9)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F7c_mlp_circulation")
