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
    """Plot an empirical probability k/n with Clopper-Pearson 95 % error bars. Where no replica hit
    (k = 0) nothing was measured but an upper limit: an open marker at that limit, labelled so."""
    from .bounds import clopper_pearson
    k = np.asarray(k)
    p = k / n
    lo, hi = clopper_pearson(k, n)
    ax.errorbar(r, np.where(k > 0, p, np.nan), yerr=[np.where(k > 0, p - lo, 0), np.where(k > 0, hi - p, 0)],
                fmt=marker, color=color, ms=4, capsize=2, label=label)
    if np.any(k == 0):
        ax.plot(np.asarray(r)[k == 0], hi[k == 0], "v", color=color, ms=5, mfc="none",
                label=None if label is None else f"{label}: none of {n} reached it, P < {hi[k == 0][0]:.2g} (95 %)")


def unresolved_band(ax, level, n, color="0.85", label=True):
    """Shade the probabilities below ``level`` (the 95 % upper limit for 0 hits out of ``n``): a
    probability down there cannot be told from 0 with ``n`` runs."""
    ax.axhspan(1e-300, level, color=color, alpha=0.6, lw=0, zorder=0,
               label=(f"not resolved with {n} runs: P < {level:.2g}" if label is True else label or None))


def guide(ax, x, y, fmt="o", color="C0", label=None, yerr=None, ms=5, **kw):
    """Markers at the measured points joined by a thin dotted guide to the eye: the points are
    sparse, nothing was measured in between."""
    ax.plot(x, y, ls=(0, (1, 2)), lw=0.8, color=color, zorder=1.5)
    if yerr is None:
        return ax.plot(x, y, fmt, ls="none", color=color, label=label, ms=ms, **kw)
    return ax.errorbar(x, y, yerr=yerr, fmt=fmt, ls="none", color=color, label=label, ms=ms, capsize=2, **kw)


def legend_outside(ax, loc="right", offset=0.25, **kw):
    """Legend next to the axes (``loc`` "right" or "below"; ``offset``: gap below the axes, in axes
    heights, leaving room for the x label) so it never covers data."""
    kw.setdefault("fontsize", 8)
    if loc == "right":
        return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)
    if loc == "below":
        return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -offset), borderaxespad=0.0, **kw)
    raise ValueError(f"loc must be 'right' or 'below'; got {loc!r}")


#: The studies' nets and data sets in plain words, for titles (a figure must not need the code).
NETS = {"A": "tanh net 2-8-1 (33 weights)",
        "B": "tanh net 2-16-1 (65 weights)",
        "C": "tanh net 4-16-16-16-1 (641 weights)"}
DATA = {"light": "64 points (2 inputs) with light Gaussian noise",
        "heavy": "64 points (2 inputs) with heavy-tailed noise (Student t, 1.5 d.o.f.)",
        "skew": "64 points (2 inputs) with skewed noise and 3 outliers",
        "D256": "256 noise-free points (4 inputs)"}


def setup(net, data):
    """'tanh net 2-8-1 (33 weights), 64 points with heavy-tailed noise (...)'."""
    return f"{NETS[net]}, {DATA[data]}"
