"""Figures of study S12 (studies/s12_alrc.py): F12b, F12c."""

import math

import numpy as np

from studies.s12_alrc import (
    LOSSES,
    OPT_LABEL,
    PAPER_B,
    PAPER_MEAN,
    PAPER_N,
    _fmt_e,
    _has,
    _io,
    _ir,
    effect,
    paper_rel,
)

PAPER_SD = {"squared": np.array([[0.048, 0.016, 0.010, np.nan],
                                 [0.054, 0.029, 0.004, 0.013],
                                 [0.048, 0.017, 0.007, 0.016],
                                 [0.041, 0.017, 0.006, 0.014]]),
            "quartic": np.array([[0.084, 0.023, 0.012, 0.011],
                                 [0.055, 0.024, 0.014, 0.016],
                                 [0.054, 0.023, 0.016, 0.016],
                                 [0.108, 0.037, 0.020, 0.008]])}


def table(res, opt, loss, variant="paper"):
    """(mean, sd) over seeds, x100 on the mean-over-outputs scale, rows n = 2, 3, 4, inf, columns B."""
    io, il = _io(res, opt), LOSSES.index(loss)
    nB = len(res["batch_sizes"])
    mean = np.full((len(PAPER_N), nB), np.nan)
    sd = np.full_like(mean, np.nan)
    for i, n in enumerate(PAPER_N):
        if not _has(res, opt, n, variant):
            continue
        m = res["metric"][io, il, :, _ir(res, n, variant)]
        mean[i] = m.mean(axis=1)
        sd[i] = m.std(axis=1, ddof=1) if m.shape[1] > 1 else np.nan
    return mean, sd


def _nlab(n):
    return "∞" if math.isinf(n) else f"{n:g}"


def _paper_cell(loss, i, B):
    if B not in PAPER_B:
        return "–"
    pm, ps = PAPER_MEAN[loss][i, PAPER_B.index(B)], PAPER_SD[loss][i, PAPER_B.index(B)]
    return "–" if not np.isfinite(pm) else f"{pm:.2f} ({ps:.3f})"


def markdown_table(res, cfg):
    """Ours beside the paper's Table 1, per optimiser and loss: means, then relative effects with CIs."""
    Bs = list(res["batch_sizes"])
    opts = [str(o) for o in res["optimizers"]]
    L = ["# S12: ALRC analogue of Ede & Beanland's Table 1", "",
         f"Ours: synthetic 1-D 2× super-sampling, {cfg.n_seeds} paired seeds (same init and sample stream for every "
         f"n), T = {cfg.n_steps}; metric = full-data pool loss ×100 (per-example loss = mean over the 32 outputs) "
         f"averaged over the records every {cfg.record_every} steps in the last {100 * cfg.last_frac:g} % of steps. "
         f"Relative change = mean over seeds of metric(n) / metric(∞) − 1, with its {100 * cfg.conf:g} % paired-t "
         "CI and p. Paper: CIFAR-10 2× super-sampling, Adam lr 1/1280, 10 runs, mean of the final 5000 training "
         "errors (Ede & Beanland, Table 1). Only the pattern across n and B is comparable, not the values.", ""]
    for opt in opts:
        lr = cfg.lr if opt == "sgd" else cfg.adam_lr
        for loss in LOSSES:
            m, s = table(res, opt, loss)
            L += [f"## {OPT_LABEL[opt]} (lr {lr:.4g}), {loss} errors", "",
                  "| n | " + " | ".join(f"B = {B}: ours | paper" for B in Bs) + " |", "|---|" + "---|---|" * len(Bs)]
            for i, n in enumerate(PAPER_N):
                cells = []
                for j, B in enumerate(Bs):
                    ours = f"{m[i, j]:.3f} ± {s[i, j]:.3f}" if _has(res, opt, n) else "not run"
                    cells += [ours, _paper_cell(loss, i, B)]
                L.append(f"| {_nlab(n)} | " + " | ".join(cells) + " |")
            L += ["", f"Relative change against n = ∞ (%): ours mean [{100 * cfg.conf:g} % CI] (p) | paper", "",
                  "| n | " + " | ".join(f"B = {B}: ours | paper" for B in Bs) + " |", "|---|" + "---|---|" * len(Bs)]
            rows = [(n, "paper") for n in PAPER_N[:-1]] + ([(3.0, "code")] if opt == "sgd" else [])
            for n, v in rows:
                if not _has(res, opt, n, v):
                    continue
                cells = []
                for B in Bs:
                    e = effect(res, cfg, opt, loss, B, n, v)
                    pr = paper_rel(loss, B, n) if v == "paper" else float("nan")
                    cells += [f"{_fmt_e(e)} ({e['p']:.2g})", "–" if not np.isfinite(pr) else f"{pr:+.1f}"]
                L.append(f"| {_nlab(n)}{'' if v == 'paper' else ' (public code)'} | " + " | ".join(cells) + " |")
            L.append("")
    L += ["Clipped-example fraction (%, whole run, mean over seeds, Algorithm 1):", "",
          "| optimiser | loss | n | " + " | ".join(f"B = {B}" for B in Bs) + " |", "|---|---|---|" + "---|" * len(Bs)]
    for opt in opts:
        io = _io(res, opt)
        for il, loss in enumerate(LOSSES):
            for n in PAPER_N[:-1]:
                if _has(res, opt, n):
                    L.append(f"| {OPT_LABEL[opt]} | {loss} | {_nlab(n)} | " + " | ".join(
                        f"{100 * res['clip_fraction'][io, il, j, _ir(res, n)].mean():.2f}" for j in range(len(Bs))) + " |")
    L += ["", "Notes: " + cfg.note, ""]
    return "\n".join(L)


def _fig_tables(res, cfg, opt, plt):
    """F12a (SGD) / F12d (Adam): both tables in the paper's layout, and the effects against B with CIs."""
    Bs = list(res["batch_sizes"])
    lr = cfg.lr if opt == "sgd" else cfg.adam_lr
    fig = plt.figure(figsize=(15, 17))
    gs = fig.add_gridspec(3, 2, height_ratios=[0.62, 0.62, 1.0], hspace=0.16, wspace=0.15, top=0.925)
    for k, loss in enumerate(LOSSES):
        ax = fig.add_subplot(gs[k, :])
        ax.axis("off")
        m, s = table(res, opt, loss)
        rows = []
        for i, n in enumerate(PAPER_N):
            row = []
            for j, B in enumerate(Bs):
                pr = paper_rel(loss, B, n)
                pstr = _paper_cell(loss, i, B) + ("" if math.isinf(n) or not np.isfinite(pr) else f", {pr:+.1f} %")
                if not _has(res, opt, n):
                    row.append(f"not run\npaper {pstr}")
                    continue
                if math.isinf(n):
                    mid = "(reference)"
                else:
                    e = effect(res, cfg, opt, loss, B, n)
                    mid = f"{e['mean']:+.2f} % [{e['lo']:+.2f}, {e['hi']:+.2f}]"
                row.append(f"{m[i, j]:.3f} ± {s[i, j]:.3f}\n{mid}\npaper {pstr}")
            rows.append(row)
        tb = ax.table(cellText=rows, rowLabels=[f"n = {_nlab(n)}" for n in PAPER_N],
                      colLabels=[f"B = {B}" for B in Bs], loc="center", cellLoc="center")
        tb.auto_set_font_size(False)
        tb.set_fontsize(9)
        tb.scale(1.0, 3.3)
        for i, n in enumerate(PAPER_N[:-1]):     # colour: CI entirely below 0 (blue) or above 0 (red)
            if not _has(res, opt, n):
                continue
            for j, B in enumerate(Bs):
                e = effect(res, cfg, opt, loss, B, n)
                if e["hi"] < 0:
                    tb[(i + 1, j)].set_facecolor("#d6e6fa")
                elif e["lo"] > 0:
                    tb[(i + 1, j)].set_facecolor("#fadcd6")
        ax.set_title(f"{loss.capitalize()} errors, final loss ×100. Cell: ours mean ± sd over {cfg.n_seeds} seeds; "
                     f"change vs n = ∞ [{100 * cfg.conf:g} % paired-t CI];\npaper mean (sd), change. "
                     "Blue / red: ALRC lowers / raises the loss (CI below / above 0)", fontsize=10)
        ax2 = fig.add_subplot(gs[2, k])
        variants = [("paper", "-")] + ([("code", ":")] if opt == "sgd" else [])
        for i, n in enumerate(PAPER_N[:-1]):
            c = f"C{i}"
            for v, ls in variants:
                if not _has(res, opt, n, v):
                    continue
                e = [effect(res, cfg, opt, loss, B, n, v) for B in Bs]
                y = np.array([x["mean"] for x in e])
                yerr = [y - np.array([x["lo"] for x in e]), np.array([x["hi"] for x in e]) - y]
                off = 1.0 + 0.05 * (i - 1) + (0.03 if v == "code" else 0.0)
                ax2.plot(np.array(Bs) * off, y, color=c, ls=(0, (1, 2)) if ls == "-" else (0, (1, 4)), lw=0.8)
                ax2.errorbar(np.array(Bs) * off, y, yerr=yerr, color=c, ls="none", marker="o", ms=4, capsize=3,
                             label=f"ours n = {_nlab(n)}, " + ("Algorithm 1" if v == "paper" else "public code"))
            pr = [paper_rel(loss, B, n) for B in PAPER_B]
            ax2.plot(np.array(PAPER_B) * 0.93, pr, color=c, ls=(0, (3, 3)), lw=0.8, marker="s", mfc="none", ms=6, alpha=0.7,
                     label=f"paper n = {_nlab(n)} (CIFAR-10, Adam)")
        ax2.axhline(0, color="k", lw=0.8)
        if loss == "squared":
            ns = ", ".join(_nlab(n) for n in PAPER_N[:-1] if n >= 3 and _has(res, opt, n))
            ax2.axhspan(-100 * cfg.max_abs_rel_squared, 100 * cfg.max_abs_rel_squared, color="g", alpha=0.08,
                        label=f"pass band: CI inside ±{100 * cfg.max_abs_rel_squared:g} % (ours, n = {ns}, Algorithm 1)")
        else:                                    # the criterion is for B = 1 only: drawn there only
            ax2.plot([Bs[0] * 0.8, Bs[0] * 1.25], [-100 * cfg.min_rel_quartic_b1] * 2, color="g", lw=2, ls="-.",
                     label=f"pass: ours ≤ −{100 * cfg.min_rel_quartic_b1:g} % at B = {Bs[0]} only (n = 3, Algorithm 1)")
        ax2.set_xscale("log", base=2)
        ax2.set_xticks(Bs)
        ax2.set_xticklabels([str(B) for B in Bs])
        ax2.set_xlabel("batch size B  (markers: the measured B; dotted lines only guide the eye)")
        ax2.set_ylabel("relative change of the final loss vs n = ∞ (%)")
        ax2.set_title(f"{loss.capitalize()} errors: effect of the threshold n (error bars: {100 * cfg.conf:g} % "
                      "paired-t CI)", fontsize=10)
        ax2.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    tag = "F12a" if opt == "sgd" else "F12d"
    fig.suptitle(f"{tag}  ALRC analogue of Ede & Beanland's Table 1 with {OPT_LABEL[opt]} (lr {lr:.4g}, "
                 f"T = {cfg.n_steps}): synthetic 1-D 2× super-sampling\n(tanh MLP 16-32-32-32 on 32-sample signals; "
                 "ALRC = adaptive learning rate clipping: an example's loss above L_max = μ + nσ of recent batch losses "
                 "is capped at L_max)\nrows n = ALRC threshold (std devs), "
                 "Algorithm 1. Paper = its Table 1 (CIFAR-10, Adam, 10 runs): compare patterns, not values",
                 fontsize=11, y=0.995)
    return fig


def plot(res, cfg, outdir):
    import os

    from scipy import stats

    from dynclip import plotting
    plt = plotting.plt()
    Bs = list(res["batch_sizes"])
    opts = [str(o) for o in res["optimizers"]]
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "table.md"), "w") as f:
        f.write(markdown_table(res, cfg))
    for opt in opts:
        plotting.savefig(_fig_tables(res, cfg, opt, plt), outdir,
                         "F12a_alrc_table" if opt == "sgd" else f"F12d_alrc_table_{opt}")

    # F12b: learning curves, B = 1 and 16 (or the first two B), n = 3 vs inf, per optimiser and loss
    Bc = [B for B in (1, 16) if B in Bs] or Bs[:2]
    steps = res["steps"]
    rows = [(opt, loss) for opt in opts for loss in LOSSES]
    fig, axes = plt.subplots(len(rows), len(Bc) + 1, figsize=(4.8 * (len(Bc) + 1), 3.6 * len(rows)), squeeze=False)
    tq = float(stats.t.ppf(0.5 + cfg.conf / 2, max(cfg.n_seeds - 1, 1)))
    for k, (opt, loss) in enumerate(rows):
        io, il = _io(res, opt), LOSSES.index(loss)
        axr = axes[k, -1]
        for jb, B in enumerate(Bc):
            ib = Bs.index(B)
            ax = axes[k, jb]
            c3 = res["curves"][io, il, ib, _ir(res, 3.0)]
            ci = res["curves"][io, il, ib, _ir(res, math.inf)]
            plotting.band(ax, steps, ci, color="k", label="n = ∞ (no clipping)", q=(0.0, 0.5, 1.0), alpha=0.15)
            plotting.band(ax, steps, c3, color="C3", label="n = 3 (ALRC: loss capped at μ + 3σ)", q=(0.0, 0.5, 1.0), alpha=0.2)
            ax.axvspan((1 - cfg.last_frac) * cfg.n_steps, cfg.n_steps, color="y", alpha=0.15, label="metric window")
            ax.set_yscale("log")
            ax.set_xlabel("step k")
            ax.set_ylabel("full-data loss ×100")
            ax.set_title(f"{OPT_LABEL[opt]}, {loss}, B = {B}")
            ax.legend(fontsize=7)
            d = 100 * (c3[:, 1:] / ci[:, 1:] - 1)
            mu = d.mean(0)
            h = tq * d.std(0, ddof=1) / math.sqrt(d.shape[0]) if d.shape[0] > 1 else np.zeros_like(mu)
            axr.fill_between(steps[1:], mu - h, mu + h, color=f"C{jb}", alpha=0.25, lw=0)
            axr.plot(steps[1:], mu, color=f"C{jb}", label=f"B = {B}: mean, {100 * cfg.conf:g} % CI")
        axr.axhline(0, color="k", lw=0.8)
        axr.axvspan((1 - cfg.last_frac) * cfg.n_steps, cfg.n_steps, color="y", alpha=0.15)
        axr.set_xlabel("step k")
        axr.set_ylabel("loss(n=3) / loss(n=∞) − 1  (%)")
        axr.set_title(f"{OPT_LABEL[opt]}, {loss}: paired relative change")
        axr.legend(fontsize=7)
    fig.suptitle("F12b  Learning curves with ALRC threshold n = 3 (an example's loss above μ + 3σ of recent batch "
                 "losses is capped) against n = ∞ (no clipping)\n(left: median and min–max over the paired seeds of the "
                 f"full-data loss, recorded every {cfg.record_every} steps;\nright: mean over seeds of the per-seed "
                 f"relative change with its {100 * cfg.conf:g} % paired-t CI). Yellow: the metric window", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    plotting.savefig(fig, outdir, "F12b_learning_curves")

    # F12c: clipped-example fraction against B
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for il, loss in enumerate(LOSSES):
        ax = axes[il]
        for opt, lsp in zip(opts, ((0, (1, 2)), (0, (4, 3)))):
            io = _io(res, opt)
            for i, n in enumerate(PAPER_N[:-1]):
                for v, ls, mk in (("paper", lsp, "o"), ("code", ":", "^")):
                    if not _has(res, opt, n, v):
                        continue
                    cf = 100 * res["clip_fraction"][io, il, :, _ir(res, n, v)]
                    ax.errorbar(np.array(Bs) * (1.04 if opt != "sgd" else 1.0), cf.mean(1),
                                yerr=[cf.mean(1) - cf.min(1), cf.max(1) - cf.mean(1)], color=f"C{i}", ls=ls, lw=0.9,
                                marker=mk, ms=4, capsize=2, mfc="none" if opt != "sgd" else None,
                                label=f"{OPT_LABEL[opt]}, n = {_nlab(n)}, "
                                      + ("Algorithm 1" if v == "paper" else "public code"))
        ax.set_xscale("log", base=2)
        ax.set_xticks(Bs)
        ax.set_xticklabels([str(B) for B in Bs])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("batch size B  (markers: the measured B; lines only guide the eye)")
        ax.set_ylabel("examples clipped (%, whole run)")
        ax.set_title(f"{loss.capitalize()} errors")
        ax.legend(fontsize=7)
    fig.suptitle("F12c  ALRC (adaptive learning rate clipping): fraction of examples whose loss exceeds L_max = μ1 + nσ "
                 "(moments from batch-mean losses)\nand is capped there; mean and min–max over seeds", fontsize=10)
    fig.tight_layout()
    plotting.savefig(fig, outdir, "F12c_clip_fraction")
