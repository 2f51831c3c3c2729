"""Figures of study S9 (studies/s09_adaptive_mlp.py): F9a, F9b, F9c."""

import numpy as np

from dynclip import plotting
from dynclip.bounds import clopper_pearson


def _prob(ax, x, k, n, color, marker, label, ms=6, guide=True):
    """Fraction k/n with 95 % Clopper-Pearson bars (zeros included); the measured values are sparse, so
    they are joined only by a thin dotted guide (``guide``), not by a line."""
    lo, hi = clopper_pearson(np.asarray(k), n)
    p = np.asarray(k) / n
    if guide:
        ax.plot(x, p, ls=(0, (1, 2)), lw=0.8, color=color, alpha=0.85)
    ax.errorbar(x, p, yerr=[p - lo, hi - p], fmt=marker, ls="none", lw=0.9, color=color, ms=ms, capsize=2,
                label=label, alpha=0.85)


def plot(res, cfg, outdir):
    plt = plotting.plt()
    R = cfg.n_replicas
    al = res["a_lams"]
    c = res["cos_pooled"]
    # ---- F9a
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6), gridspec_kw={"width_ratios": [2.2, 1]})
    ax = axes[0]
    ax.axvspan(2 * c * cfg.crossing_window[0], 2 * c * cfg.crossing_window[1], color="C2", alpha=0.12,
               label=f"pass window for the adaptive 50 % crossing: [1, 2] × 2⟨cos φ⟩, ⟨cos φ⟩ = {c:.3f}")
    ax.axvline(2 * c, color="C2", lw=1.5, label="aλ = 2⟨cos φ⟩ (radial identity of adaptive clipping: its norm grows beyond, on average)")
    jit = {"adaptive": 1.0, "layerwise_layer": 0.96, "layerwise_global": 1.04}
    styles = {"adaptive": ("C0", "o", "adaptive (eq. 17)"), "layerwise_layer": ("C1", "s", "layer-wise (eq. 18, threshold per layer), numerator ||g_l||"),
              "layerwise_global": ("C4", "D", "layer-wise (eq. 18, threshold per layer), numerator ||g|| (whole gradient)")}
    for name, (col, mk, lab) in styles.items():
        _prob(ax, al * jit[name], res[f"div_{name}"], R, col, mk, lab)
    _prob(ax, al, res["div_classic"], R, "k", "v", "classic λ = 1 (x = a)", ms=5)
    _prob(ax, np.array(cfg.unclipped_a), res["div_unclipped"], R, "C3", "X", "unclipped (x = a)", guide=False)
    if np.isfinite(res["crossing"]):
        ax.axvline(res["crossing"], color="C0", ls="--", lw=1,
                   label=f"adaptive: 50 % crossing aλ ≈ {res['crossing']:.2f} (interpolated between measured aλ)")
    ax.set_xscale("log")
    ax.set_ylim(-0.04, 1.04)
    ax.set_xlabel("aλ (constant step; λ = 1)")
    ax.set_ylabel(f"P(divergence): ||θ − θ₀|| > {cfg.blowup:.0e} within T = {cfg.n_steps}")
    ax.set_title(f"constant step (violates (A2)): fraction of {R} replicas diverging (bars: 95 % Clopper–Pearson)\n"
                 "markers: the measured step sizes; dotted lines only guide the eye (nothing measured in between)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2)
    ax = axes[1]
    _prob(ax, np.array(cfg.a2_a0_lams), res["div_a2"], R, "C0", "o", "adaptive, a(t) = a₀/(t+1)")
    ax.set_xscale("log")
    ax.set_ylim(-0.04, 1.04)
    ax.set_xlabel("a₀λ   (schedule a(t) = a₀/(t+1))")
    ax.set_title("schedule a(t) = a₀/(t+1), which meets (A2): Σa = ∞, Σa² < ∞\n"
                 f"(measured at {len(cfg.a2_a0_lams)} values of a₀λ only)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"F9a  adaptive clipping (||g|| capped at λ·||θ||) on a {plotting.NETS['B']}, "
                 f"{plotting.DATA['light']},\nquartic loss (f − y)⁴, init N(0, 2²), one sample per step; "
                 "φ = angle between θ and the sample gradient g\nconstant steps: divergence sets in between aλ ≈ 2⟨cos φ⟩ and 4⟨cos φ⟩, classic clipping never "
                 "diverges, unclipped SGD always;\n(A2) schedule: divergence only where the early steps a₀λ/(t+1) are large", fontsize=10)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F9a_divergence")
    # ---- F9b
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.0), gridspec_kw={"width_ratios": [1.3, 1]})
    ax = axes[0]
    allp = []
    for j, a_lam in enumerate(cfg.f9b_a_lams):
        if f"f9b_obs_{a_lam:g}" not in res:
            continue
        obs, pred = res[f"f9b_obs_{a_lam:g}"], res[f"f9b_pred_{a_lam:g}"]
        allp.append(pred)
        ax.plot(pred, obs, ".", ms=3, alpha=0.5, color=f"C{j}", label=f"aλ = {a_lam:g} ({obs.size} clipped steps)")
    if allp:
        ap = np.concatenate(allp)
        lim = [np.min(ap), np.max(ap)]
        ax.plot(lim, lim, "k-", lw=0.8, label="identity")
    ax.axhline(0, color="gray", lw=0.6)
    ax.axvline(0, color="gray", lw=0.6)
    ax.set_xlabel("½ log(1 − 2aλ cos φ + a²λ²)   (predicted from θ_t and g_t)")
    ax.set_ylabel("Δ log||θ|| = log||θ_{t+1}|| − log||θ_t||   (observed)")
    ax.set_title(f"constant a: clipped steps of {min(cfg.replay_replicas, R)} replayed replicas × {cfg.replay_steps} steps; "
                 f"max |error| = {res['identity_max_err']:.1e}", fontsize=9)
    ax.legend(fontsize=7, markerscale=3)
    ax = axes[1]
    q = res["cos_q"]
    ax.fill_between(al, q[:, 0], q[:, 2], color="C0", alpha=0.2, label="cos φ: 10–90 % of clipped steps")
    plotting.guide(ax, al, q[:, 1], "_", color="C0", ms=9, mew=1.5, label="median cos φ")
    plotting.guide(ax, al, res["cos_mean"], "o", color="C0", label="⟨cos φ⟩ (mean; dotted: guide only)")
    ag = np.geomspace(al.min(), al.max(), 200)
    ax.plot(ag, ag / 2, "k--", lw=1, label="aλ / 2  (growth iff cos φ < aλ/2)")
    ax.axhline(c, color="C2", lw=1, label=f"pooled ⟨cos φ⟩ = {c:.3f}")
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.0)
    ax.set_xlabel("aλ (constant step; markers: the measured values, band: 10–90 % between them)")
    ax.set_ylabel("cos φ = ⟨θ, g⟩ / (||θ|| ||g||) on clipped steps")
    ax.set_title("per-sample gradients are nearly orthogonal to θ", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle("F9b  the radial identity of adaptive clipping (||g|| capped at λ·||θ||) holds exactly on every clipped step\n"
                 f"({plotting.NETS['B']}, {plotting.DATA['light']}, quartic loss; φ = angle between θ and g)",
                 fontsize=10)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F9b_radial_identity")
    # ---- F9c
    panels = [(f"paths_adaptive_{a:g}", f"adaptive, constant aλ = {a:g}") for a in (0.2, 0.5, 0.8)]
    panels += [("paths_classic_1", "classic λ = 1, constant a = 1"), (f"paths_unclipped_{cfg.unclipped_a[0]:g}",
                                                                      f"unclipped, constant a = {cfg.unclipped_a[0]:g}"),
               ("paths_a2_10", "adaptive, a(t) = 10/(t+1) (meets (A2))")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True, sharey=True)
    steps = res["path_steps"]
    for ax, (key, title) in zip(axes.ravel(), panels):
        Pn = res.get(key)
        if Pn is None:
            ax.set_visible(False)
            continue
        nd = 0
        for r in range(Pn.shape[0]):
            y = np.log10(Pn[r])
            last = np.flatnonzero(np.isfinite(y))
            div = last[-1] < len(y) - 1 if last.size else True
            nd += div
            ax.plot(steps, y, color="C3" if div else "C0", lw=0.8, alpha=0.7)
            if div and last.size:
                ax.plot(steps[last[-1]], y[last[-1]], "x", color="C3", ms=5)
        ax.axhline(np.log10(cfg.blowup), color="k", ls=":", lw=1)
        extra = ""
        if key.startswith("paths_unclipped"):
            bs = res[f"blowup_step_unclipped_{cfg.unclipped_a[0]:g}"]
            extra = f" (median blow-up step {np.median(bs[bs >= 0]):g})" if np.any(bs >= 0) else ""
        ax.set_title(f"{title}: {nd}/{Pn.shape[0]} diverged{extra}", fontsize=9)
    for ax in axes[1]:
        ax.set_xlabel("step t")
    for ax in axes[:, 0]:
        ax.set_ylabel("log₁₀ ||θ_t||")
    fig.suptitle(f"F9c  log₁₀||θ_t|| of {R} replicas (records every {cfg.record_every} steps; red ×: last record "
                 f"before ||θ − θ₀|| > {cfg.blowup:.0e}, dotted line)\n{plotting.NETS['B']}, {plotting.DATA['light']}, "
                 "quartic loss; adaptive clipping caps ||g|| at λ·||θ||, classic at λ", fontsize=10)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F9c_paths")
