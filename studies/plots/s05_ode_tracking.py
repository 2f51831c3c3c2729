"""Figures of study S5 (studies/s05_ode_tracking.py): F5a, F5b, F5c."""

import numpy as np

from dynclip import plotting


def plot(res, cfg, outdir):
    plt = plotting.plt()
    tn, D, Dm = res["tau_n"], res["D"], res["D_med"]
    # F5a
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    for r in range(D.shape[0]):
        ax.plot(tn + 0.08 * (r / D.shape[0] - 0.5), D[r], "o", color="C0", alpha=0.25, ms=3,
                label="single replica" if r == 0 else None)
    plotting.guide(ax, tn, Dm, "o", color="C0", ms=6, label=f"median over {D.shape[0]} replicas (dotted: guide only)")
    x = np.linspace(tn[0], tn[-1], 50)
    ax.plot(x, np.exp(res["intercept"] + res["slope"] * x), "--", color="k",
            label=f"fit: slope {res['slope']:.3f}")
    c = np.mean(np.log(Dm)) - cfg.slope_target * np.mean(tn)
    ax.plot(x, np.exp(c + cfg.slope_target * x), ":", color="C3", lw=2,
            label=f"predicted slope −1/(2a₀) = {cfg.slope_target:g}  (noise ∝ √a)")
    ax.set_yscale("log")
    ax.set_xlabel("window start τₙ (ODE time Σa)")
    ax.set_ylabel(r"$D_n=\max_{\tau_n\leq\tau_k\leq\tau_n+W}\ \Vert\theta_k-\Phi_{\tau_k-\tau_n}(\theta_{t_n})\Vert$")
    ax.set_title(f"F5a  clipped SGD (SA) vs its ODE restarted at the SGD iterate, windows of length W = {cfg.width:g}\n"
                 f"{plotting.NETS['A']}, {plotting.DATA['light']},\n"
                 f"classic clipping λ = {cfg.lam:g}, steps a(k) = {cfg.a0:g}/(k+{cfg.t0:g})", fontsize=9.5)
    ax.legend(fontsize=7.5)
    plotting.savefig(fig, outdir, "F5a_window_deviation")
    # F5b
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    ps, po = res["proj_sa"], res["proj_ode"]
    for r in range(ps.shape[0]):
        ax.plot(ps[r, :, 0], ps[r, :, 1], lw=0.5, alpha=0.6, color=f"C{r % 10}",
                label="clipped SGD (SA) replicas (same θ₀)" if r == 0 else None)
    ax.plot(po[:, 0], po[:, 1], color="k", lw=2.2, label="ODE θ̇ = −H(θ) from θ₀")
    i0 = 0
    for j, n in enumerate(res["seg_len"]):
        s = res["seg_ode"][i0:i0 + n]
        ax.plot(s[:, 0], s[:, 1], color="m", lw=1.6, label="ODE restarted at replica 0, windows τₙ..τₙ+W"
                if j == 0 else None)
        ax.plot(s[0, 0], s[0, 1], "o", color="m", ms=3)
        i0 += n
    ax.plot(*po[0], "s", color="k", ms=7, label="θ₀")
    ax.plot(*po[-1], "*", color="k", ms=12, label=f"ODE at τ_T = {res['tau_T']:.1f}")
    ax.set_xlabel(f"PC 1 ({res['pca_var'][0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({res['pca_var'][1]:.0%} of variance)")
    ax.set_title("F5b  clipped SGD paths and the ODE path in weight space\n"
                 f"(2-D principal-component projection; {plotting.NETS['A']},\n{plotting.DATA['light']})", fontsize=9.5)
    ax.legend(loc="best")
    plotting.savefig(fig, outdir, "F5b_pca_paths")
    # F5c
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw=dict(wspace=0.28))
    tau = res["tau"]
    plotting.band(a1, tau, res["loss"], color="C0", label=f"clipped SGD, a₀ = {cfg.a0:g}: median and 10–90 % band "
                                                         f"({res['loss'].shape[0]} replicas)")
    a1.plot(tau, res["ode_loss"], color="k", lw=1.2, ls="--", label="ODE path from θ₀")
    a1.set_yscale("log")
    i = int(np.argmin(res["ode_loss"]))
    j = i + int(np.argmax(res["ode_loss"][i:]))
    a1.annotate(f"F rises along the ODE path (τ ≈ {tau[i]:.0f} → {tau[j]:.0f}):\n"
                "F is not a Lyapunov function for −H (see study S7)", xy=(tau[(i + j) // 2],
                res["ode_loss"][(i + j) // 2]), xytext=(0.3, 0.55), textcoords="axes fraction", fontsize=8,
                arrowprops=dict(arrowstyle="->", lw=0.8))
    a1.set_xlabel("ODE time τ = Σ a(k)")
    a1.set_ylabel("training loss F(θ) = Σ (f − y)² / N")
    a1.set_title("loss along the path")
    a1.legend()
    ok = tau > 0
    plotting.band(a2, tau[ok], res["dev"][:, ok], color="C0",
                  label=f"a₀ = {cfg.a0:g} (T = {res['T1']:.0f}, {res['dev'].shape[0]} replicas)")
    t2 = res["tau2"]
    ok2 = t2 > 0
    plotting.band(a2, t2[ok2], res["dev2"][:, ok2], color="C1",
                  label=f"a₀ = {cfg.a0_small:g} (T = {res['T2']:.2g}, {res['dev2'].shape[0]} replicas; "
                        f"chained in {cfg.n_segments_small} segments)")
    a2.set_yscale("log")
    a2.set_xlabel("ODE time τ = Σ a(k)")
    a2.set_ylabel("‖θₖ − θ_ODE(τₖ)‖  (same θ₀)")
    a2.set_title("distance to the ODE path over the whole horizon")
    a2.legend()
    fig.suptitle(f"F5c  clipped SGD replicas (quantile bands) over the ODE path, in ODE time; steps a(k) = a₀/(k+{cfg.t0:g})\n"
                 f"{plotting.NETS['A']}, {plotting.DATA['light']}, classic clipping λ = {cfg.lam:g}")
    fig.subplots_adjust(top=0.82)
    plotting.savefig(fig, outdir, "F5c_ode_time_bands")
