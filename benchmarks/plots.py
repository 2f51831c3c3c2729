"""PNG charts for the benchmark results (matplotlib, Agg backend)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"dynclip": "#08306b", "dynclip 1 thr": "#6baed6", "dynclip 2 thr": "#2171b5",
          "torch eager": "#d62728", "torch batched": "#ff9896", "JAX scan": "#2ca02c",
          "JAX vmap": "#98df8a"}


def _label(v):
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def bar_chart(rows, path, title, subtitle):
    """Grouped bars: one group per setting (B, R), one bar per implementation, log y."""
    groups = []
    for r in rows:
        g = r["group"]
        if g not in groups:
            groups.append(g)
    impls = []
    for r in rows:
        if r["label"] not in impls:
            impls.append(r["label"])
    fig, ax = plt.subplots(figsize=(11, 5.5))
    width = 0.8 / max(1, max(sum(1 for r in rows if r["group"] == g) for g in groups))
    for gi, g in enumerate(groups):
        grp = [r for r in rows if r["group"] == g]
        x0 = gi - 0.4 + width / 2
        for k, r in enumerate(grp):
            x = x0 + k * width
            v = r["rate"]
            ax.bar(x, v, width * 0.92, color=COLORS.get(r["label"], "#7f7f7f"),
                   label=r["label"] if r["label"] in impls else None)
            if r["label"] in impls:
                impls.remove(r["label"])
            ax.text(x, v * 1.08, _label(v), ha="center", va="bottom", fontsize=8, rotation=90)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_yscale("log")
    ax.set_ylabel("steps/s  (replica-steps/s for R=64 rows)")
    ax.set_xlabel("setting (B = minibatch size, R = replicas)")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * 6)
    ax.legend(loc="upper left", fontsize=9, ncol=2)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.suptitle(title, fontsize=12)
    ax.set_title(subtitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scaling_chart(sc, path, title, subtitle):
    """Three log-log panels: steps/s vs hidden width, vs batch size, replica-steps/s vs R."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    ax = axes[0]
    w = [r["width"] for r in sc["width"]]
    ax.loglog(w, [r["steps_per_s"] for r in sc["width"]], "o-", color=COLORS["dynclip"],
              label="dynclip, B=1, R=1")
    for r in sc["width"]:
        if r["width"] % 8:
            ax.annotate(f"w={r['width']}", (r["width"], r["steps_per_s"]), textcoords="offset points",
                        xytext=(4, 6), fontsize=8)
    ax.set_xlabel("hidden width w (net 4-w-w-1)")
    ax.set_ylabel("steps/s")
    ax.set_title("vs hidden width (B=1, R=1, 1 thread)")
    ax = axes[1]
    b = [r["batch"] for r in sc["batch"]]
    ax.loglog(b, [r["steps_per_s"] for r in sc["batch"]], "o-", color=COLORS["dynclip"],
              label="dynclip steps/s, w=32, R=1")
    ax.loglog(b, [r["samples_per_s"] for r in sc["batch"]], "s--", color="#9467bd",
              label="samples/s (steps/s x B)")
    ax.set_xlabel("minibatch size B")
    ax.set_ylabel("steps/s  (or samples/s)")
    ax.set_title("vs batch size (w=32, R=1, 1 thread)")
    ax = axes[2]
    for thr, style in ((1, "o--"), (2, "o-")):
        rr = [r for r in sc["replicas"] if r["threads"] == thr]
        if rr:
            ax.loglog([r["replicas"] for r in rr], [r["replica_steps_per_s"] for r in rr], style,
                      color=COLORS[f"dynclip {thr} thr"], label=f"dynclip, {thr} thread{'s' if thr > 1 else ''}")
    ax.set_xlabel("replicas R (w=32, B=1)")
    ax.set_ylabel("replica-steps/s")
    ax.set_title("vs replicas (w=32, B=1)")
    for ax, key, xk, yk in ((axes[0], "width", "width", "steps_per_s"), (axes[1], "batch", "batch", "steps_per_s"),
                            (axes[2], "replicas", "replicas", "replica_steps_per_s")):
        busy = [r for r in sc[key] if r.get("busy")]
        if busy:
            ax.plot([r[xk] for r in busy], [r[yk] for r in busy], "o", mfc="none", mec="red", ms=11,
                    label="machine busy (unreliable)")
    for ax in axes:
        ax.grid(which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}\n{subtitle}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
