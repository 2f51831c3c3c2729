"""Figures of study S2 (studies/s02_azuma.py): F2."""

import numpy as np

from dynclip import bounds, plotting


def plot(res, cfg, outdir):
    plt = plotting.plt()
    r, R, s2, lam = res["r"], res["R"], res["sum_a2"], cfg.lam
    fig, (ax, axt) = plt.subplots(2, 1, figsize=(8.2, 8.0), gridspec_kw=dict(height_ratios=[4.2, 1.4]))
    rr = np.linspace(0.05, 4.5, 400)
    ax.plot(rr, bounds.clip_prob(bounds.paper_azuma(rr, lam, s2)), "r--", lw=1.8,
            label=r"paper (14): $2e^{-2r^2/(\lambda^2\Sigma_2)}$ (wrong constant)")
    ax.plot(rr, bounds.clip_prob(bounds.azuma(rr, lam, s2)), "g-", lw=1.8,
            label=r"correct Azuma: $2e^{-r^2/(2\lambda^2\Sigma_2)}$ (capped at 1)")
    ax.plot(res["r_fine"], res["exact_curve"], color="0.5", lw=1.2, ls="-.",
            label=r"exact $P(|X_T|\geq r)$ (convolution, final time only)")
    plotting.prob_with_ci(ax, r + 0.02, res["k_fin"], R, color="0.5", marker="s",
                          label=r"$\hat P(|\theta_T-\theta_0|\geq r)$")
    plotting.prob_with_ci(ax, r, res["k_max"], R, color="k", marker="o",
                          label=r"$\hat P(\max_{s\leq T}|\theta_s-\theta_0|\geq r)$")
    for i, rp in enumerate(cfg.r_pass):
        ax.axvline(rp, color="r", lw=0.6, alpha=0.35, label="r where the paper's bound is tested" if i == 0 else None)
    ax.set_yscale("log")
    ax.set_ylim(1e-7, 2)
    ax.set_xlim(0.9, 4.5)
    ax.set(xlabel=r"deviation $r$", ylabel="probability",
           title=f"F2. 1-D, two data points y ∈ {{0, 10}}, start 5, $\\lambda={lam:g}$: every step is clipped to "
                 f"$\\pm a(t)$, a fair coin\n($a(t)=1/(t+1)$, T = {cfg.T} steps, R = {R} runs, $\\Sigma_2=\\sum a^2={s2:.4f}$):\n"
                 "the paper's Hoeffding-Azuma constant is violated; the correct one holds "
                 "(estimates with 95 % Clopper-Pearson intervals)")
    ax.legend(loc="lower left", fontsize=7.5, framealpha=0.95)
    names = {"paper": "paper (16), printed: E = 2ρ²/(λ²γ)", "azuma": "scalar Azuma, |Δ| ≤ aλ: E = ρ²/(2λ²γ)",
             "pinelis": "Pinelis, vector ξ (‖M‖ ≤ 2λ): E = ρ²/(8λ²γ)",
             "pinelis_bennett": "Pinelis–Bennett: E = (ρ/b + B²/b²) ln(1 + ρb/B²) − ρ/b,\n"
                                "    b = 2λ max a(t) = 2λ, B² = λ²γ (bound on Σ E‖aM‖²)"}
    rows = []
    for (k, _), v in zip(cfg.exp_targets, res["plugin"]):
        x = np.log10(2.0) - v / np.log(10.0)                     # log10(2 e^-E), too small for a float
        rows.append([names[k], f"{v:.2f}", f"{10 ** (x - np.floor(x)):.1f}e{int(np.floor(x))}"])
    axt.axis("off")
    axt.set_title("the plug-in (16) redone (bounds on the noise, not on theta): 2e$^{-E}$ at $\\rho=2^{10}$, $\\lambda=30$, "
                  "$\\gamma=\\pi^2/6$", fontsize=9)
    tab = axt.table(cellText=rows, colLabels=["bound", "exponent E", "2e$^{-E}$"], loc="upper center",
                    colWidths=[0.62, 0.15, 0.15], cellLoc="left")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.scale(1, 1.25)
    for c in range(3):                                   # the Pinelis-Bennett row has two lines
        cell = tab[len(rows), c]
        cell.set_height(1.9 * cell.get_height())
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F2_azuma_constant")
