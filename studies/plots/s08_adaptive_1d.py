"""Figures of study S8 (studies/s08_adaptive_1d.py): F8a, F8b, F8c."""

import numpy as np

from dynclip import plotting
from studies.s08_adaptive_1d import F32_MAX, F64_MAX


def _log10(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.maximum(np.asarray(x, float), 1e-300))


def plot(res, cfg, outdir):
    plt = plotting.plt()
    lam, T = cfg.lam, cfg.n_steps
    th0n = cfg.theta0_scale * np.sqrt(lam)
    top = 330.0
    floor = -18.0
    # ---- F8a
    top = 118.0
    fig, axes = plt.subplots(1, len(cfg.dims), figsize=(5.6 * len(cfg.dims) + 2.6, 4.8), sharey=True)
    axes = np.atleast_1d(axes)
    cols = {"unclipped": "C3", "classic": "C0", "adaptive": "C2"}
    for ax, d in zip(axes, cfg.dims):
        for meth, c in cols.items():
            x = res["a_lams_unclipped"] if meth == "unclipped" else res["a_lams"]
            fin, pk = res[f"const_final_{meth}_d{d}"], res[f"const_peak_{meth}_d{d}"]
            nf = res[f"const_nonfinite_{meth}_d{d}"] >= 0
            yf = np.clip(_log10(fin), floor, None)
            yf[nf] = np.nan
            plotting.guide(ax, x, yf, "o", color=c, label=f"{meth}: final ||θ_T|| (dotted: guide only)")
            yp = _log10(pk)
            yp[nf] = np.nan
            ax.plot(x, yp, "s", color=c, ms=9, mfc="none", label=f"{meth}: peak max_t ||θ_t||")
            if nf.any():
                ax.plot(x[nf], np.full(nf.sum(), top), "^", color=c, ms=9,
                        label=f"{meth}: overflow (∇f non-finite)")
        xs = np.linspace(2.0, max(cfg.a_lams), 400)[1:]
        law = np.log10(th0n) + T * np.log10(xs * lam - 1)
        ax.plot(xs, np.where(law < top - 5, law, np.nan), "--", color="C2", lw=1,
                label="law ||θ₀||(aλ − 1)^T (adaptive, aλ > 2)")
        ax.axvline(2.0, color="k", ls=":", lw=1)
        ax.text(1.93, 60, "aλ = 2", fontsize=8, rotation=90)
        ax.axhline(np.log10(cfg.final_small), color="gray", ls=":", lw=1)
        ax.text(0.05, 3, "||θ|| = 0.1", fontsize=7, color="gray")
        ax.axhline(top - 4, color="gray", lw=0.6)
        ax.text(0.05, top - 12, "▲ = overflow (run stopped)", fontsize=7, color="gray")
        ax.set_xlabel("aλ  (unclipped: a, with λ = 1)")
        ax.set_title(f"d = {d}")
        ax.set_ylim(floor - 2, top + 6)
    axes[0].set_ylabel("log₁₀ ||θ||   (values below 1e-18, e.g. exact 0, drawn at −18)")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"F8a  f = ||θ||⁴/4, constant step a (violates the paper's (A2): Σa = ∞, Σa² < ∞), T = {T}, "
                 f"θ₀ = {cfg.theta0_scale:g}√λ·u (u a unit vector), λ = {lam:g}, ε = {cfg.eps:g}\n"
                 "classic clipping: ||g|| capped at λ; adaptive: capped at λ·max(||θ||, ε). "
                 "Adaptive diverges for aλ > 2 (as (aλ−1)^T), classic never, unclipped iff aθ₀² > 2\n"
                 "markers: the measured step sizes; dotted lines only guide the eye", fontsize=10)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F8a_constant_step")
    # ---- F8b
    fig, axes = plt.subplots(1, 2, figsize=(15.5, 5.0))
    Ns = res["scan_s8_N"]
    law = res["scan_s8_log10_law"]
    levels = [("float32: f = ||θ||⁴/4 overflows", np.log10(F32_MAX) / 4, "C1", ":"),
              ("float32: ∇f = ||θ||²θ overflows", np.log10(F32_MAX) / 3, "C1", "--"),
              ("float64: ||g||² overflows in clipping.apply", np.log10(F64_MAX) / 6, "gray", "-."),
              ("float64: f overflows", np.log10(F64_MAX) / 4, "C0", ":"),
              ("float64: ∇f overflows", np.log10(F64_MAX) / 3, "C0", "--")]
    for ax, (xlo, xhi) in zip(axes, ((Ns[0] - 2, Ns[-1] + 2), (Ns[0] - 1, 70.0))):
        sel = (Ns >= xlo) & (Ns <= xhi)
        thin = np.zeros_like(sel)
        thin[np.flatnonzero(sel)[::max(1, int(sel.sum()) // 80)]] = True   # at most ~80 markers per panel
        ax.plot(Ns[sel], law[sel], "-", color="k", lw=1.2)
        sel = thin
        ax.plot(Ns[sel], law[sel], "-", color="k", lw=1.2,
                label="prediction log₁₀ ∏_{k<N/2}(N/k − 1) + log₁₀||θ₀||")
        for dt, c, mk in (("float64", "C0", "o"), ("float32", "C1", "s")):
            pk = res[f"scan_s8_peak_{dt}"]
            go = res[f"scan_s8_gradovf_{dt}"] >= 0
            lo = (res[f"scan_s8_lossovf_{dt}"] >= 0) & ~go
            ok = ~go & ~lo
            ax.plot(Ns[sel & ok], _log10(pk[sel & ok]), mk, color=c, ms=3, alpha=0.6,
                    label=f"{dt} run: peak (finite f and ∇f)")
            ax.plot(Ns[sel & lo], _log10(pk[sel & lo]), mk, color=c, ms=5, mfc="none",
                    label=f"{dt} run: f = inf, ∇f finite (recovers)")
            ax.plot(Ns[sel & go], _log10(pk[sel & go]), "x", color=c, ms=5,
                    label=f"{dt} run: ∇f = inf (stopped; ||θ|| when it happened)")
        for lab, y, c, ls in levels:
            ax.axhline(y, color=c, ls=ls, lw=1, label=lab)
        Nv = res["a2_N"]
        sv = (Nv >= xlo) & (Nv <= xhi)
        ax.plot(Nv[sv], _log10(res["a2_peak_float64_d1"][sv]), "*", color="k", ms=11, mfc="none",
                label="study N values (float64, d = 1)")
        ax.set_xlim(xlo, xhi)
        ax.set_xlabel("N = a₀λ   (a(t) = a₀/(t+1))")
        ax.set_ylabel("peak log₁₀ max_t ||θ_t||")
    axes[1].set_ylim(4, 16)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    on32 = res["scan_s8_onsets_float32"]
    on64 = res["scan_s8_onsets_float64"]
    axes[0].set_title(f"all N; measured onsets: float64 f from N = {on64[0]:g}, ∇f from N = {on64[1]:g}")
    axes[1].set_title(f"zoom: float32 f overflows from N = {on32[0]:g}, ∇f from N = {on32[1]:g}")
    fig.suptitle(f"F8b  Schedule a(t) = a₀/(t+1) (meets the paper's (A2): Σa = ∞, Σa² < ∞): transient of adaptive clipping "
                 f"(||g|| capped at λ·||θ||) on f = ||θ||⁴/4 "
                 f"(λ = {lam:g}, θ₀ = {th0n:g}, d = 1):\nbounded in exact arithmetic, overflows in floating point "
                 "from an onset in N = a₀λ on")
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F8b_a2_peak")
    # ---- F8c
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    ax = axes[0]
    cm = plt.get_cmap("viridis")
    P = res["paths_const_adaptive_d1"]
    for j, a in enumerate(cfg.a_lams):
        ax.plot(np.arange(1, P.shape[1] + 1), np.clip(_log10(P[j]), floor, None),
                color=cm(j / max(1, len(cfg.a_lams) - 1)), lw=1.2, label=f"aλ = {a:g}")
    ax.set_xscale("log")
    ax.set_xlabel("step t + 1")
    ax.set_ylabel("log₁₀ ||θ_t||")
    ax.set_title("adaptive clipping, constant a (violates (A2)), d = 1; lines end where ∇f overflows;\n"
                 "θ = 0 exactly (aλ = 1) drawn at −18", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    for dt, ls in (("float64", "-"), ("float32", "--")):
        Pa = res[f"paths_a2_{dt}_d1"]
        for j, N in enumerate(cfg.N_values):
            y = _log10(Pa[j])
            ax.plot(np.arange(1, Pa.shape[1] + 1), np.clip(y, floor, None), ls, color=f"C{j}", lw=1.2,
                    label=f"N = {N:g} ({dt})")
            nf = res[f"a2_nonfinite_{dt}_d1"][j]
            if nf >= 0:
                ax.plot(nf + 1, y[nf] if np.isfinite(y[nf]) else np.nan, "x", color=f"C{j}", ms=8)
    ax.axhline(np.log10(F32_MAX) / 3, color="C1", ls=":", lw=1)
    ax.axhline(np.log10(F64_MAX) / 4, color="C0", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("step t + 1")
    ax.set_ylabel("log₁₀ ||θ_t||")
    ax.set_title("(A2) schedule a(t) = (N/λ)/(t+1), Σa = ∞, Σa² < ∞:\ntransient then recovery; × = ∇f overflow (float32)",
                 fontsize=9)
    ax.legend(fontsize=6.5, ncol=2, loc="center right")
    fig.suptitle("F8c  log₁₀||θ_t|| paths of adaptive clipping (||g|| capped at λ·||θ||), f = ||θ||⁴/4, λ = 1:\n"
                 "constant steps, which violate the paper's (A2): Σa = ∞, Σa² < ∞ (left), and an (A2) schedule (right)\n"
                 "(dotted: float32 ∇f and float64 f overflow levels)")
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F8c_paths")
