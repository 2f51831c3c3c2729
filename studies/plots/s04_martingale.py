"""Figures of study S4 (studies/s04_martingale.py): F4a, F4b, F4c."""

import numpy as np

from dynclip import plotting
from studies.s04_martingale import _sched, _sigma2


def _fmtT(T):
    e = int(round(np.log10(T)))
    return f"1e{e}" if 10 ** e == T else f"{T:g}"


def plot(res, cfg, outdir):
    plt = plotting.plt()
    ks, Ts = list(cfg.kappas), list(cfg.T_1d)
    cols = [f"C{i}" for i in range(len(ks))]
    lam2 = cfg.lam ** 2
    # F4a
    fig, axs = plt.subplots(1, 3, figsize=(16, 6.2))
    ax = axs[0]
    allv = []
    for i, k in enumerate(ks):
        x, y = res["id1d_E_sumM2"][i], res["id1d_E_xi2"][i]
        ax.errorbar(x, y, xerr=2 * res["id1d_se_m2"][i], yerr=2 * res["id1d_se_xi2"][i], fmt="o", color=cols[i], ms=5,
                    capsize=2, label=fr"1-D, $\kappa$={k:g} (T = {', '.join(_fmtT(T) for T in Ts)})")
        ax.errorbar(res["idmlp_E_sumM2"][i], res["idmlp_E_xi2"][i], xerr=2 * res["idmlp_se_m2"][i],
                    yerr=2 * res["idmlp_se_xi2"][i], fmt="s", mfc="none", color=cols[i], ms=7, capsize=2,
                    label=fr"tanh net, $\kappa$={k:g} (T = {_fmtT(cfg.T_mlp)})")
        allv += list(x) + list(y) + [res["idmlp_E_sumM2"][i], res["idmlp_E_xi2"][i]]
    lo, hi = min(allv) / 1.5, max(allv) * 1.5
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="identity line")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$E\sum_{t<T} a_t^2\|M(t+1)\|^2$ (engine's exact sum, mean over replicas)")
    ax.set_ylabel(r"$E\|\xi_T\|^2$")
    ax.set_title("orthogonality identity (error bars: ±2 SE)")
    ax.legend(fontsize=6.5, ncol=1, loc="lower right")
    for ax, which in ((axs[1], "1d"), (axs[2], "mlp")):
        for i, k in enumerate(ks):
            sched = _sched(cfg, k)
            if which == "1d":
                s, m = res[f"curve1d_s_k{i}"], res[f"curve1d_m_k{i}"]
                Tmax = Ts[-1]
            else:
                s, m = res["mlp_steps"][1:], res[f"mlp_Exi2_k{i}"][1:]
                Tmax = cfg.T_mlp
            ax.plot(s, m, color=cols[i], lw=1.6, label=fr"$\kappa$={k:g}: mean $\|\xi_T\|^2$")
            tt = np.unique(np.geomspace(1, Tmax, 200).astype(int))
            S2 = np.cumsum(sched.values(0, Tmax) ** 2)[tt - 1]
            ax.plot(tt, lam2 * S2, "--", color=cols[i], lw=1, label=fr"$\kappa$={k:g}: $\lambda^2\Sigma_2(T)$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("steps T")
        ax.set_ylabel(r"$E\|\xi_T\|^2$")
        plotting.legend_outside(ax, "below", offset=0.2, fontsize=7, ncol=2)
    axs[1].set_title("1-D, two data points y ∈ {0, 10}, start 5 (every step clipped to ±1):\n"
                     r"$E\|\xi_T\|^2=\lambda^2\Sigma_2(T)$ exactly", fontsize=10)
    axs[1].text(0.02, 0.97, "curves joined from independent runs of T = " + ", ".join(_fmtT(T) for T in Ts)
                + "\n(small steps at the joins are Monte-Carlo noise)", transform=axs[1].transAxes, va="top", fontsize=7.5,
                color="0.3")
    axs[2].set_title(f"{plotting.NETS['A']}, 64 points with heavy-tailed noise,\n"
                     fr"from $\theta_c$ (end of the clipped gradient flow, as in F3), R={cfg.R_mlp}: below $\lambda^2\Sigma_2(T)$",
                     fontsize=10)
    fig.suptitle(r"F4a. Lemma 3: $E\|\xi_T\|^2=\sum a_t^2E\|M\|^2\leq\lambda^2\Sigma_2(T)$; bounded iff $\sum a^2<\infty$ "
                 r"($a(t)=0.5/(t+10)^\kappa$; $\kappa=1/2$ grows like $\ln T$)" "\n"
                 r"$\xi_T=\sum_{t<T}a(t)M(t+1)$: the noise sum, $M$ = clipped gradient minus its mean; "
                 r"$\Sigma_2(T)=\sum_{t<T}a(t)^2$")
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F4a_orthogonality")
    # F4b
    fig, ax = plt.subplots(figsize=(7, 6.2))
    T = np.array(Ts, float)
    logT = np.log10(T)
    for i, k in enumerate(ks):
        med, q = res["osc_median"][i], res["osc_q"][i]
        sl = np.polyfit(logT, np.log10(med), 1)[0]
        ax.errorbar(T, med, yerr=[med - q[:, 0], q[:, 1] - med], fmt="o", ls="none", color=cols[i], capsize=3,
                    label=fr"$\kappa$={k:g}: measured (fitted slope {sl:+.3f})")
        ref = med[len(T) // 2] * (T / T[len(T) // 2]) ** (0.5 - k)
        ax.plot(T, ref, ":", color=cols[i], lw=1.5, label=fr"$\kappa$={k:g}: theory slope $1/2-\kappa$ = {0.5 - k:+.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"steps T ({len(T)} run lengths measured; dotted: theory slope through the middle point)")
    ax.set_ylabel(r"median $\mathrm{Osc}_T=\max_{T/2\leq s\leq T}|\xi_s-\xi_{T/2}|$ (bars: quartiles)")
    ax.set_title("F4b. Tail oscillation of the noise sum; 1-D, two data points y ∈ {0, 10}\n"
                 r"(step size $a(t)=0.5/(t+10)^\kappa$)" "\n"
                 r"$\kappa>1/2$: $\xi_t$ converges (Osc $\sim T^{1/2-\kappa}$); $\kappa=1/2$: it does not", fontsize=10)
    plotting.legend_outside(ax, "below", offset=0.13, fontsize=7, ncol=2)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F4b_oscillation")
    # F4c
    fig, ax = plt.subplots(figsize=(8, 4.8))
    bins = np.linspace(0, 10, 81)
    x = np.linspace(0, 10, 400)
    for i, k in enumerate(ks):
        th = res[f"thetaT_1d_k{i}"]
        s2 = _sigma2(cfg, k, Ts[-1])
        ax.hist(th, bins=bins, density=True, histtype="step", color=cols[i], lw=1.5,
                label=fr"$\kappa$={k:g}: $\theta_T$, R={th.size}" + (r" (no limit: $\sum a^2=\infty$)" if k <= 0.5 else ""))
        ax.plot(x, np.exp(-(x - 5) ** 2 / (2 * lam2 * s2)) / np.sqrt(2 * np.pi * lam2 * s2), "--", color=cols[i], lw=1,
                label=fr"$N(5,\lambda^2\Sigma_2)$, $\Sigma_2$={s2:.3f}")
    ax.axvspan(0, 1, color="0.85", zorder=0)
    ax.axvspan(9, 10, color="0.85", zorder=0)
    ax.text(1.15, ax.get_ylim()[1] * 0.95, "every point of [1, 9] is a zero of\nH = mean clipped gradient;\ngrey: outside [1, 9]", ha="left",
            va="top", fontsize=8, color="0.3")
    ax.set_xlabel(r"$\theta_T$ (the bias $b$; $f=b$ since $x=0$)")
    ax.set_ylabel("density")
    ax.set_xlim(0, 10)
    ax.set_title(fr"F4c. 1-D, two data points y ∈ {{0, 10}}, start $\theta_0$=5, T={_fmtT(Ts[-1])} steps of size "
                 r"$0.5/(t+10)^\kappa$:" "\n" r"the limit $\theta_\infty$ is random, not a point", fontsize=10)
    ax.legend(fontsize=7, ncol=1, loc="upper right")
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F4c_limit_histogram")
