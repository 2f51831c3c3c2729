"""Figures of study S1 (studies/s01_sure_bound.py): F1a, F1b, F1c, F1d."""

import numpy as np

from dynclip import bounds, plotting
from studies.s01_sure_bound import GAMMA, _log_idx


def plot(res, cfg, outdir):
    plt = plotting.plt()
    # F1a -------------------------------------------------------------------------------------
    fig, axs = plt.subplots(1, 3, figsize=(14, 4.2))
    ax = axs[0]
    A = res["i_A"]
    for j in range(res["i_S_fine"].shape[0]):
        ax.plot(A, res["i_disp_fine"][j], color="C0", lw=0.6, alpha=0.6,
                label=r"$|\theta_s-\theta_0|$ (each replica)" if j == 0 else None)
    ax.plot(A, res["i_S_fine"][0], color="C3", lw=3, label=r"$S_s$ (every replica: $S_s=H_s=\lambda A(s)$)")
    ax.plot(A, 1.0 * A, "k--", lw=1, label=r"sure bound $\lambda A(s)$")
    ax.axhline(cfg.i_rho, color="grey", lw=0.8, ls=":")
    ax.text(0.3, cfg.i_rho + 0.15, r"$\rho=5$: (15) says $P(S_s>5)\leq1.3\times10^{-13}$", fontsize=8)
    ax.set(xlabel=r"$A(s)=\sum_{t<s}a(t)$ (sum of the step sizes)", ylabel="displacement / update sum",
           title=f"(i) 1-D, two data points y ∈ {{0, 10}},\n$\\theta_0=5$, $\\lambda=1$, {res['i_S_fine'].shape[0]} replicas")
    ax.legend(loc="upper left")
    ax = axs[1]
    for nm, c in (("std", "C0"), ("far", "C1")):
        A = res[f"ii_{nm}_A"]
        lab = "standard init" if nm == "std" else f"far init (output weights ×{cfg.ii_far:g})"
        ax.fill_between(A, *res[f"ii_{nm}_S_q"][[0, 2]], color=c, alpha=0.2, lw=0)
        ax.plot(A, res[f"ii_{nm}_S_q"][1], color=c, lw=2, label=f"$S_s$, {lab}")
        ax.fill_between(A, *res[f"ii_{nm}_disp_q"][[0, 2]], color=c, alpha=0.2, lw=0)
        ax.plot(A, res[f"ii_{nm}_disp_q"][1], color=c, lw=1, ls="-.", label=r"$\|\theta_s-\theta_0\|$, " + lab)
    ax.plot(A, cfg.ii_lam * A, "k--", lw=1, label=r"sure bound $\lambda A(s)$")
    ax.set(xlabel=r"$A(s)$", ylabel="displacement / update sum",
           title=f"(ii) {plotting.NETS['A']}, 64 points with heavy-\ntailed noise, $\\lambda={cfg.ii_lam:g}$ (median, 10-90 %)")
    ax.legend(loc="upper left", fontsize=7)
    ax = axs[2]
    A = res["iii_A"]
    ax.plot(A, cfg.iii_lam * A, "k-", lw=4, alpha=0.25, label=r"sure bound $\lambda A(s)$")
    ax.plot(A, res["iii_S"][0], color="C3", lw=1.5, label="$S_s$")
    sel = _log_idx(A.size, 25)
    ax.plot(A[sel], res["iii_disp"][0][sel], "o", color="C0", ms=3.5, label=r"$|\theta_s-\theta_0|$")
    ax.axhline(cfg.iii_rho, color="grey", lw=0.8, ls=":")
    ax.text(0.2, cfg.iii_rho + 2, r"$\rho=50$: (15) says $P\leq1.3\times10^{-13}$", fontsize=8)
    ax.set(xlabel=r"$A(s)$", ylabel="displacement / update sum",
           title=f"(iii) drift: 1-D quadratic, data near 0, start $\\theta_0={cfg.iii_theta0:g}$,\n"
                 f"$\\lambda={cfg.iii_lam:g}$ (always clipped): bound attained")
    ax.legend(loc="upper left")
    for ax in axs:
        ax.title.set_fontsize(9.5)
    fig.suptitle(r"F1a. Sure bound $\|\theta_s-\theta_0\|\leq S_s\leq\lambda A(s)$ on every path (Lemma 1, eqs. 12-13); "
                 r"$S_s=\sum_{t<s}a(t)\,\|$clipped gradient$_t\|$ (length of the path so far)")
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F1a_sure_bound")

    # F1b -------------------------------------------------------------------------------------
    fig, axs = plt.subplots(1, 3, figsize=(14, 4.2))
    panels = [("(i) 1-D, two data points", [("", res["i_S_T"], res["i_maxdisp"], "C0")], 1.0, res["i_A_T"]),
              ("(ii) tanh net 2-8-1, heavy-tailed noise", [("std init", res["ii_std_S_T"], res["ii_std_maxdisp"], "C0"),
                                         ("far init", res["ii_far_S_T"], res["ii_far_maxdisp"], "C1")],
               cfg.ii_lam, res["ii_A_T"]),
              ("(iii) drift case (1-D, far start)", [("", res["iii_S_T"], res["iii_maxdisp"], "C0")], cfg.iii_lam,
               res["iii_lamA_T"] / cfg.iii_lam)]
    from matplotlib.lines import Line2D
    marks = {"i": (cfg.i_rho, 1.0, res["i_k_after"] / cfg.i_R), "iii": (cfg.iii_rho, cfg.iii_lam,
                                                                     float(np.mean(res["iii_maxdisp"] > cfg.iii_rho)))}
    for ax, key, (title, series, lam, AT) in zip(axs, ("i", "ii", "iii"), panels):
        rho = np.linspace(0, 1.15 * lam * AT, 24)[1:]
        for lab, ST, md, c in series:
            n = ST.size
            plotting.prob_with_ci(ax, rho, np.sum(ST[:, None] > rho[None, :], axis=0), n, color=c, marker="s")
            plotting.prob_with_ci(ax, rho, np.sum(md[:, None] > rho[None, :], axis=0), n, color=c, marker="o")
        rr = np.linspace(1e-3, rho[-1], 400)
        ax.plot(rr, bounds.clip_prob(bounds.paper_azuma(rr, lam, GAMMA)), "r--", lw=1.5)
        ax.axvline(lam * AT, color="k", lw=1, ls=":")
        if key in marks:
            r0, l0, p0 = marks[key]
            p15 = bounds.paper_azuma(r0, l0, GAMMA)
            ax.annotate("", xy=(r0, p15), xytext=(r0, p0), arrowprops=dict(arrowstyle="<->", color="r", lw=1))
            ax.text(r0 * 1.03, 1e-7, f"at $\\rho={r0:g}$:\n" + r"$\hat P$" + f" = {p0:g}\n(15): {p15:.2g}",
                    color="r", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(1e-15, 3)
        ax.set(xlabel=r"$\rho$", ylabel="probability", title=title + f", R = {series[0][1].size}")
    handles = [Line2D([], [], color="0.3", marker="s", ls="", label=r"$\hat P(S_T>\rho)$ (path length)"),
               Line2D([], [], color="0.3", marker="o", ls="", label=r"$\hat P(\max_s\|\theta_s-\theta_0\|>\rho)$ (distance)"),
               Line2D([], [], color="0.3", marker="v", mfc="none", ls="",
                      label="none of R runs exceeded ρ: only P < 95 % upper limit is known"),
               Line2D([], [], color="C0", lw=6, label="(i), (iii); (ii) standard init"),
               Line2D([], [], color="C1", lw=6, label=f"(ii) far init (output weights ×{cfg.ii_far:g})"),
               Line2D([], [], color="r", ls="--", label=r"paper (15) as printed: $2e^{-2\rho^2/(\gamma\lambda^2)}$, "
                                                       r"$\gamma=\pi^2/6$ (claimed for clipped SGD)"),
               Line2D([], [], color="k", ls=":", label=r"sure bound $\lambda A(T)$")]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8, frameon=False)
    fig.suptitle(r"F1b. Tails of the path length $S_T$ and of the distance travelled against the paper's (15) "
                 r"(estimates with 95 % Clopper-Pearson intervals)")
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F1b_tails_vs_eq15")

    # F1c -------------------------------------------------------------------------------------
    fig, axs = plt.subplots(1, 2, figsize=(12, 4.4))
    ax = axs[0]
    s = res["i_step_fine"][:-1]
    ax.plot(s + 1, np.median(res["i_aE_fine"], axis=0), color="C3", lw=2.5, label=r"(i) two-point ($\bar E\equiv1$)")
    st = res["iii_step"][:-1]
    ax.plot(st + 1, np.median(res["iii_aE"], axis=0), color="C2", lw=2, label=r"(iii) drift ($\bar E\equiv10$)")
    for nm, c in (("std", "C0"), ("far", "C1")):
        st = res[f"ii_{nm}_c_step"][:-1]
        q = res[f"ii_{nm}_aE_q"]
        ax.fill_between(st + 1, q[0], q[2], color=c, alpha=0.25, lw=0)
        ax.plot(st + 1, q[1], color=c, lw=1.5, label=f"(ii) tanh net, {nm} init (median, 10-90 %)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="step $s$ (+1)", ylabel=r"$a(s)\,\bar E(\theta_s)$",
           title=r"compensator increments $E[S_{s+1}-S_s\mid\mathcal{F}_s]=a(s)\bar E(\theta_s)>0$")
    ax.legend(fontsize=7)
    ax = axs[1]
    for nm, c in (("std", "C0"), ("far", "C1")):
        A = res[f"ii_{nm}_c_A"]
        ax.plot(A, res[f"ii_{nm}_Smean"], color=c, lw=2, label=rf"(ii) {nm}: mean $S_s$")
        ax.plot(A, res[f"ii_{nm}_compmean"], color="k", lw=1, ls="--")
    ax.plot(res["i_A"], res["i_Smean"], color="C3", lw=2, label=r"(i): mean $S_s$")
    ax.plot(res["i_A"], res["i_compmean"], color="k", lw=1, ls="--",
            label=r"compensator $\sum_{t<s}a(t)\bar E(\theta_t)$ (mean)")
    ax.set(xlabel=r"$A(s)$", ylabel=r"$E[S_s]$",
           title=r"$E[S_s]$ increases from $S_0=0$: a submartingale, not a supermartingale")
    ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(r"F1c. $M_s=M_0+S_s$ is a submartingale: $\bar E(\theta)=$ mean$_j\|$clip$_\lambda g(\theta;z_j)\|>0$"
                 "\n(i) 1-D, two data points; (ii) tanh net 2-8-1 on 64 points with heavy-tailed noise; "
                 "(iii) 1-D quadratic started far away")
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F1c_submartingale")

    # F1d -------------------------------------------------------------------------------------
    fig, axs = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw=dict(height_ratios=[2, 1]))
    t = res["iv_t"] + 1
    axs[0].plot(t, res["iv_theta"], color="C0", lw=2.5, label=r"clipped SGD $\theta_t$ ($\lambda=1$, never active)")
    axs[0].plot(t, res["iv_theta_ode"], "k--", lw=1.2, label=r"ODE: $\theta+e^{\theta}=\tau+C$, $\tau=A(t)$")
    axs[0].set(ylabel=r"$\theta_t$",
               title=r"F1d. Logistic loss $\log(1+e^{-\theta})$, one separable point, $a=1/(t+1)$: "
                     "\n" r"$\theta_t\to\infty$ like $\log\tau=\log\ln t$ (no uniform-in-time bound)")
    axs[0].legend()
    axs[1].plot(t, 100 * res["iv_rel"], color="C0")
    axs[1].axhline(100 * cfg.iv_tol, color="r", ls="--", lw=1, label=f"pass threshold {100 * cfg.iv_tol:g} %")
    axs[1].axvline(cfg.iv_t_min, color="grey", ls=":", lw=1, label=f"t = {cfg.iv_t_min}")
    axs[1].set(xscale="log", yscale="log", xlabel="step t (+1)", ylabel="rel. error, SGD vs ODE (%)")
    axs[1].legend(fontsize=7)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F1d_escape")
