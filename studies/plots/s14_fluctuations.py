"""Figures of study S14 (studies/s14_fluctuations.py): F14a, F14b, F14c."""

import numpy as np

from dynclip import plotting


def plot(res, cfg, outdir):
    plt = plotting.plt()
    # F14a: relative error vs a
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for j, (name, r) in enumerate(res["A"].items()):
        ax.loglog(cfg.a_exact, r["err"], "o-", color=f"C{j}", label=f"exact C_a, {name} (slope {r['slope']:.2f})")
    for j, (name, r) in enumerate(res["B"].items()):
        a = [x["a"] for x in r["rows"]]
        ax.errorbar(a, [x["err"] for x in r["rows"]], yerr=[2 * x["err_se"] for x in r["rows"]], fmt="s--",
                    color=f"C{j + 2}", capsize=2,
                    label=f"{cfg.n_rep} SGD replicas, regression, {name} (slope {r['slope']:.2f}; bars ±2 SE)")
    x = np.array([min(cfg.a_exact), max(cfg.a_rep)])
    ax.loglog(x, x, ":", color="k", label="slope 1 (first-order theory)")
    ax.set_xlabel("constant step a")
    ax.set_ylabel("‖Cov − aΣ‖ / ‖aΣ‖  (Frobenius)")
    ax.set_title("F14a  How well a·Σ predicts the spread of constant-step SGD\n"
                 "(Σ from the Lyapunov equation JΣ + ΣJᵀ = Q at the equilibrium)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=7.5, frameon=False)
    plotting.savefig(fig, outdir, "F14a_stationary_error_vs_a")
    # F14b: clipping changes Sigma
    c = res["C"]["rows"]
    lam = [r["lam"] for r in c]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.semilogx(lam, [r["tr_sigma"] for r in c], "o-", label="tr Σ")
    ax.semilogx(lam, [r["max_eig_sigma"] for r in c], "s-", label="largest eigenvalue of Σ")
    ax.semilogx(lam, [r["tr_Q"] for r in c], "^--", label="tr Q (update covariance)")
    ax.semilogx(lam, [r["min_eig_J"] for r in c], "v--", label="smallest eigenvalue of J (restoring rate)")
    ax.semilogx(lam, [r["clipped"] for r in c], "x:", color="k", label="fraction of samples clipped at θ*")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(lam)
    ax.set_xticklabels([f"{x:g}" for x in lam])
    ax.minorticks_off()
    ax.set_xlabel("clipping threshold λ (classic)")
    ax.set_ylabel("relative to no clipping")
    ax.set_title("F14b  How classic clipping changes the stationary covariance Σ\n(linear regression, N = 40, batch 1)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=7.5, frameon=False)
    plotting.savefig(fig, outdir, "F14b_clipping_changes_sigma")
    # F14c: along the ODE
    d = res["D"]
    t, i = d["t"], d["coord"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw=dict(wspace=0.28))
    for r in range(d["theta_sa"].shape[0]):
        a1.plot(t, d["theta_sa"][r, :, i], color="C0", lw=0.5, alpha=0.35,
                label="clipped SGD replicas" if r == 0 else None)
    a1.plot(t, d["theta_ode"][:, i], color="k", lw=1.5, label="ODE θ̇ = −H(θ)")
    a1.fill_between(t, d["theta_ode"][:, i] - 2 * d["sd"][:, i], d["theta_ode"][:, i] + 2 * d["sd"][:, i],
                    color="C1", alpha=0.3, lw=0, label="predicted ±2 sd (linear noise)")
    a1.set_xlabel("ODE time t = Σ a(k)")
    a1.set_ylabel(f"parameter θ[{i}] (the widest band at the end)")
    a1.set_title("one parameter: replicas inside the predicted band")
    a1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=7.5, frameon=False)
    ok = np.isfinite(d["ratio"]) & (t > 0)
    a2.plot(t[ok], d["ratio"][ok], color="C0", label="E‖θₖ − θ(tₖ)‖² / tr C(t)")
    a2.plot(t[ok], d["ratio_centred"][ok], color="C0", ls="--", label="same about the replicas' mean")
    a2.plot(t[ok], d["coverage"][ok], color="C2", label="fraction of coordinates within ±2 sd")
    a2.axhline(1.0, color="grey", lw=0.8)
    a2.axhline(0.954, color="C2", lw=0.8, ls=":", label="95.4 % (Gaussian)")
    a2.axvline(cfg.t_min, color="k", lw=0.8, ls="--", label=f"t = {cfg.t_min:g}: the check starts")
    a2.set_xlabel("ODE time t = Σ a(k)")
    a2.set_ylabel("ratio / fraction")
    a2.set_title(f"spread of {cfg.n_path} replicas against the prediction")
    a2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=7.5, frameon=False)
    fig.suptitle(f"F14c  Clipped SGD around the ODE with decreasing steps a(k) = {cfg.a0:g}/(k+{cfg.t0:g})\n"
                 f"{plotting.NETS['A']}, {plotting.DATA['light']}, classic clipping λ = {cfg.lam_path:g}")
    fig.subplots_adjust(top=0.82)
    plotting.savefig(fig, outdir, "F14c_bands_along_the_ode")
