"""Figure helpers shared by the studies: one style, PNG + PDF output, replica bands, slopes. No maths."""
import os

import numpy as np


def plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    pyplot.rcParams.update({"figure.dpi": 110, "savefig.dpi": 130, "font.size": 10, "axes.grid": True,
                            "grid.alpha": 0.3, "legend.fontsize": 8, "axes.titlesize": 11})
    return pyplot


#: text stamped across every saved figure (the study harness sets it for quick runs); None = no stamp
STAMP = None


def savefig(fig, outdir, name):
    """Save ``fig`` as ``outdir/name.png`` and ``.pdf`` (with :data:`STAMP`, if set, in red at the
    top); returns the PNG path."""
    os.makedirs(outdir, exist_ok=True)
    if STAMP:
        fig.text(0.5, 1.0, STAMP, ha="center", va="bottom", color="red", fontsize=9, fontweight="bold")
    png = os.path.join(outdir, name + ".png")
    fig.savefig(png, bbox_inches="tight")
    fig.savefig(os.path.join(outdir, name + ".pdf"), bbox_inches="tight")
    plt().close(fig)
    return png


def band(ax, x, Y, color="C0", label=None, q=(0.1, 0.5, 0.9), alpha=0.25):
    """Median line and a quantile band of replica paths ``Y`` (R, K) against ``x`` (K,)."""
    lo, mid, hi = np.nanquantile(Y, q, axis=0)
    ax.fill_between(x, lo, hi, color=color, alpha=alpha, lw=0)
    ax.plot(x, mid, color=color, label=label)


def loglog_slope(x, y):
    """Least-squares slope of log y against log x (finite, positive points only)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def prob_with_ci(ax, r, k, n, color="k", label=None, marker="o"):
    """Plot an empirical probability k/n with Clopper-Pearson 95 % error bars (zeros drawn at the upper limit)."""
    from .bounds import clopper_pearson
    k = np.asarray(k)
    p = k / n
    lo, hi = clopper_pearson(k, n)
    ax.errorbar(r, np.where(k > 0, p, np.nan), yerr=[np.where(k > 0, p - lo, 0), np.where(k > 0, hi - p, 0)],
                fmt=marker, color=color, ms=4, capsize=2, label=label)
    if np.any(k == 0):
        ax.plot(np.asarray(r)[k == 0], hi[k == 0], "v", color=color, ms=5, mfc="none",
                label=None if label is None else f"{label}: 0 hits (upper 95 % limit)")
