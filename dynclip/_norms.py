"""Norms, maximum magnitudes and distances of float64 vectors and of ranges [lo, hi) of them.

One definition each, shared by the model, the clipping rules, the engine and the toys. The
sums of squares run in the explicit SIMD lanes of :mod:`dynclip._simd`; strict IEEE cannot
reorder one running sum, so a single accumulator runs at the add latency, while 32
independent ones (four 8-lane registers, in a fixed documented order) keep four vector
additions in flight. The tail (n mod 8 elements) goes to lane 0, then the lanes are combined
as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)) (:func:`lanes_sum`).

Norms are safe from overflow and underflow of the squares: gradients of diverging runs can
exceed 1e154, where v_i^2 overflows although v is finite, so where the fast sum is inf, NaN
or below 1e-280 the norm is recomputed with v rescaled by max |v_i| (:func:`rescaled_norm`).
Non-finite entries propagate as in torch and JAX: a NaN anywhere gives NaN, an infinite entry
(and no NaN) gives inf; a sum of squares holding a NaN is NaN, so the check costs nothing on
the fast path.

Performance notes that hold for every kernel in dynclip: the per-step functions are compiled
without reference counting (:func:`dynclip._jit.hot`; with it, every array argument,
attribute and view costs atomic increments, measured at half of a small step), loops run over
k >= 0 at an offset (``a[o + k]``; a loop over [o, o + n) does not vectorise), and each
function first rejects negative offsets, which lets LLVM drop Numba's negative-index fix-up
and vectorise.
"""
import math

from ._jit import hot
from ._simd import sumsq_lanes, sqdist_lanes, step_sqdist_lanes

#: a sum of squares below this is recomputed rescaled (its squares may have underflowed)
TINY_SUMSQ = 1e-280


@hot
def lanes_sum(s0, s1, s2, s3, s4, s5, s6, s7):
    """The fixed combination of eight lane sums."""
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@hot
def sumsq(v, lo, hi):
    """sum_{lo <= i < hi} v_i^2 in 32 SIMD lanes (0 for an empty or invalid range)."""
    if lo < 0 or hi <= lo or hi > v.shape[0]:
        return 0.0
    m = lo + ((hi - lo) // 8) * 8
    s0, s1, s2, s3, s4, s5, s6, s7 = sumsq_lanes(v, lo, m)
    for i in range(m, hi):
        s0 += v[i] * v[i]
    return lanes_sum(s0, s1, s2, s3, s4, s5, s6, s7)


@hot
def sqdist(v, w):
    """||v - w||^2 summed in SIMD lanes as :func:`sumsq`."""
    n = min(v.shape[0], w.shape[0])
    m = (n // 8) * 8
    s0, s1, s2, s3, s4, s5, s6, s7 = sqdist_lanes(v, w, m)
    for i in range(m, n):
        d = v[i] - w[i]
        s0 += d * d
    return lanes_sum(s0, s1, s2, s3, s4, s5, s6, s7)


@hot
def absmax_step(m, x):
    """max(m, |x|) for a running maximum m that keeps a NaN once seen: inf without NaN gives
    inf, any NaN gives NaN. (``max()`` skips a NaN in some argument orders, and replacing m
    whenever ``not (|x| <= m)`` would restart the maximum at the entry after a NaN.)"""
    a = abs(x)
    if a > m or a != a:
        return a
    return m


@hot
def maxabs(v, lo, hi):
    """max |v_i| over [lo, hi) (0 for an empty range); NaN if some v_i is NaN."""
    m = 0.0
    for i in range(lo, hi):
        m = absmax_step(m, v[i])
    return m


@hot
def scaled_sumsq(v, lo, hi, m):
    """sum (v_i / m)^2 over [lo, hi): the sum of squares rescaled by m = max |v_i|, which
    neither overflows nor underflows (the slow path of the norms and of the clipping rules)."""
    t = 0.0
    for i in range(lo, hi):
        q = v[i] / m
        t += q * q
    return t


@hot
def rescaled_norm(v, lo, hi):
    """||v[lo:hi]|| as max |v_i| * sqrt(sum (v_i / max |v_i|)^2): no overflow or underflow of
    the squares; 0, inf or NaN when the maximum is."""
    m = maxabs(v, lo, hi)
    if m == 0.0 or not m < math.inf:
        return m
    return m * math.sqrt(scaled_sumsq(v, lo, hi, m))


@hot
def norm(v, lo, hi):
    """||v[lo:hi]||: the square root of the fast sum of squares, or :func:`rescaled_norm` where
    that sum overflowed, underflowed or is NaN."""
    s = sumsq(v, lo, hi)
    if s < math.inf and s > TINY_SUMSQ:
        return math.sqrt(s)
    return rescaled_norm(v, lo, hi)


@hot
def dist(v, w):
    """||v - w|| (safe from overflow and underflow of the squares, and NaN/inf as :func:`norm`)."""
    s = sqdist(v, w)
    if s < math.inf and s > TINY_SUMSQ:
        return math.sqrt(s)
    m = 0.0
    for i in range(v.shape[0]):
        m = absmax_step(m, v[i] - w[i])
    if m == 0.0 or not m < math.inf:
        return m                        # 0, inf or NaN
    t = 0.0
    for i in range(v.shape[0]):
        q = (v[i] - w[i]) / m
        t += q * q
    return m * math.sqrt(t)


@hot
def step_dist(th, u, a, w, th0):
    """The SA step th <- th - a (w u) in place, fused with the pass that returns ||th - th0||
    (bit-identical to the step followed by :func:`dist`). With w = 1 it is th - a u; with
    u = g and w = 1 / c it applies a scalar clipping rule without writing the update."""
    n = min(th.shape[0], u.shape[0], th0.shape[0])
    m = (n // 8) * 8
    s0, s1, s2, s3, s4, s5, s6, s7 = step_sqdist_lanes(th, u, a, w, th0, m)
    for i in range(m, n):
        th[i] -= a * (w * u[i])
        d = th[i] - th0[i]
        s0 += d * d
    s = lanes_sum(s0, s1, s2, s3, s4, s5, s6, s7)
    if s < math.inf and s > TINY_SUMSQ:
        return math.sqrt(s)
    return dist(th, th0)
