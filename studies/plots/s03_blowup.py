"""Figures of study S3 (studies/s03_blowup.py): F3, F3b."""

import numpy as np

from dynclip import plotting
from dynclip import schedules as S
from studies.s03_blowup import _bounds


def plot(res, cfg, outdir):
    plt = plotting.plt()
    r, lam = res["r"], cfg.lam
    rf = np.geomspace(r[0], r[-1], 400)
    b = _bounds(rf, res, lam)
    Rmin = min(res[n + "_R"] for n in ("clip_c", "clip_init", "none_c"))
    floor = 0.3 / max(res["clip_c_R"], 1)
    res_level = cfg.ci_resolution / Rmin
    fig, axs = plt.subplots(1, 2, figsize=(13.5, 5.4), sharey=True)
    series = [("clip_c", "k", "o", r"clipped, from $\theta_c$"),
              ("clip_init", "C0", "s", r"clipped, random init"),
              ("none_c", "C3", "^", r"unclipped (control, no bound applies), from $\theta_c$")]
    a_b, B2 = 2 * lam * res["a_max"], lam ** 2 * res["sum_a2"]
    for ax, kind in zip(axs, ("xi", "th")):
        plotting.unresolved_band(ax, res_level, Rmin, label=fr"not resolved with R = {Rmin} runs: P < {cfg.ci_resolution:g}/R")
        for name, col, mk, lab in series:
            plotting.prob_with_ci(ax, r, res[f"{name}_k_{kind}"], res[name + "_R"], color=col, marker=mk,
                                  label=f"{lab} (R={res[name + '_R']})")
        ax.plot(rf, b["paper"], "--", color="C1", lw=1.8,
                label=r"paper (14)-(15) as printed: $2e^{-2r^2/(\lambda^2\Sigma_2)}$ (invalid: violated by clipped runs)")
        if kind == "xi":
            ax.plot(rf, b["pinelis"], "-", color="C2", lw=2,
                    label=r"Pinelis–Azuma (valid for clipped runs): $2e^{-r^2/(8\lambda^2\Sigma_2)}$")
            ax.plot(rf, b["union"], ":", color="C4", lw=2,
                    label=fr"coordinate union (valid for clipped runs): $2d\,e^{{-r^2/(2d\lambda^2\Sigma_2)}}$, d={int(res['d'])}")
            ax.plot(rf, b["bennett"], "-.", color="C5", lw=1.6,
                    label="Pinelis–Bennett (valid for clipped runs):\n"
                          r"$2\exp\!\left(\frac{r}{b}-\left(\frac{r}{b}+\frac{B^2}{b^2}\right)\ln\!\left(1+\frac{rb}{B^2}\right)\right)$"
                          "\n" fr"$b=2\lambda\max_t a(t)$ = {a_b:.3g}, $B^2=\lambda^2\Sigma_2$ = {B2:.3g}")
        ax.axvline(res["sure"], color="0.3", lw=1.5,
                   label=fr"sure bound $\lambda A(T)$ = {res['sure']:.2f} on the displacement (clipped runs only)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(floor, 1.6)
        ax.set_xlim(r[0], r[-1])
        ax.set_xlabel("radius r")
    axs[0].set_ylabel("probability (estimate with 95 % Clopper–Pearson interval)")
    axs[0].set_title(r"noise of the run: $P(\max_{t\leq T}\|\xi_t\|\geq r)$" "\n"
                     r"($\xi_t=\sum_{s<t}a(s)M(s+1)$: sum of (clipped gradient $-$ its mean));" "\n"
                     "the bounds hold for the clipped runs only, not for the unclipped control (red)", fontsize=9.5)
    axs[1].set_title(r"distance travelled: $P(\max_{t\leq T}\|\theta_t-\theta_0\|\geq r)$" "\n"
                     r"(noise bounds not valid here: $\theta_t-\theta_0=-\sum a H(\theta)-\xi_t$; only $\lambda A(T)$ is)",
                     fontsize=9.5)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    h, l = axs[0].get_legend_handles_labels()
    keep = [i for i, s in enumerate(l) if "none of" not in s and "not resolved" not in s]
    h = [h[i] for i in keep] + [Patch(color="0.85", alpha=0.6),
                                 Line2D([], [], ls="", marker="v", mfc="none", color="0.3", ms=6)]
    l = [l[i] for i in keep] + [fr"below {cfg.ci_resolution:g}/R: not resolved with R = {Rmin} runs",
                                fr"open triangle: none of R runs reached r, so only P < {cfg.ci_resolution:g}/R is known "
                                "(95 % upper limit)"]
    fig.legend(h, l, loc="upper center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, 0.0), frameon=False)
    fig.suptitle(fr"F3. Chance that SGD moves far from its start: {plotting.setup('A', 'heavy')}" "\n"
                 fr"classic clipping at $\lambda$={lam:g}, steps $a(t)=1/(t+{cfg.t0:g})$, T={cfg.n_steps} steps, "
                 fr"$\Sigma_2=\sum a^2$={res['sum_a2']:.3f}, $A(T)=\sum a$={res['A_T']:.2f}" "\n"
                 fr"$\theta_c$ = end of the clipped gradient flow at time {cfg.tau_c:g} (near-stationary); "
                 r"$H(\theta)$ = mean clipped gradient",
                 y=1.0, fontsize=10.5)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F3_blowup_probability")

    fig, axs = plt.subplots(1, 2, figsize=(12, 6.2))
    series[2] = ("none_c", "C3", "^", r"unclipped (control), from $\theta_c$")
    for name, col, _, lab in series:
        t = res[name + "_time"][1:]
        for ax, key in zip(axs, ("noise_q", "disp_q")):
            q = res[f"{name}_{key}"][:, 1:]
            ax.fill_between(t, q[0], q[2], color=col, alpha=0.2, lw=0)
            ax.plot(t, q[1], color=col, label=f"{lab}: median, 10–90 % band")
            if key == "disp_q":
                ax.plot(t, q[3], color=col, lw=0.8, ls="--", label=f"{lab}: max over replicas")
    sched = S.inverse(cfg.a0, cfg.t0)
    tt = S.ode_time(sched, cfg.n_steps)
    S2t = np.concatenate(([0.0], np.cumsum(sched.values(0, cfg.n_steps) ** 2)))
    axs[0].plot(tt[1:], lam * np.sqrt(S2t[1:]), color="C2", lw=1.5, label=r"$\lambda\sqrt{\Sigma_2(t)}$: bound on $\sqrt{E\|\xi_t\|^2}$ (clipped runs only; not valid for unclipped)")
    axs[1].plot(tt[1:], lam * tt[1:], color="0.3", lw=1.5, label=r"sure bound $\lambda A(t)$ (clipped runs only; not valid for unclipped)")
    for ax in axs:
        ax.set_yscale("log")
        ax.set_xlabel(r"ODE time $A(t)=\sum_{s<t}a(s)$ (sum of the step sizes so far)")
        plotting.legend_outside(ax, "below", fontsize=7.5, ncol=1)
    axs[0].set_ylabel(r"$\|\xi_t\|$")
    axs[1].set_ylabel(r"$\|\theta_t-\theta_0\|$")
    axs[0].set_title(r"noise $\xi_t$ (sum of clipped gradient $-$ its mean)")
    axs[1].set_title("distance from the start")
    fig.suptitle("F3b. Noise and displacement paths (same runs as F3): clipped runs stay far inside the sure bound, "
                 "unclipped ones do not\n" + plotting.setup("A", "heavy"), fontsize=10.5)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F3b_paths")
