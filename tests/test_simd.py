"""The explicit SIMD reductions and the BLAS intrinsic against plain loops / NumPy."""
import numpy as np
import pytest

from dynclip._jit import hot
from dynclip._simd import sumsq_lanes, sqdist_lanes
from dynclip._blas import matmul
from dynclip.model import sumsq, sqdist


def lanes_reference(x, lo, m):
    """Eight scalar accumulators, lane j takes x[lo + j], x[lo + j + 8], ... in order."""
    acc = [0.0] * 8
    for i in range(lo, m):
        acc[(i - lo) % 8] += x[i]
    return tuple(acc)


@hot
def _sumsq_lanes(v, lo, m):
    return sumsq_lanes(v, lo, m)


@hot
def _sqdist_lanes(v, w, m):
    return sqdist_lanes(v, w, m)


@hot
def _matmul(a, b, out):
    matmul(a, b, out)


@pytest.mark.parametrize("n", [0, 7, 8, 9, 31, 1249])
@pytest.mark.parametrize("lo", [0, 1, 5])
def test_sumsq_lanes_bit_identical_to_scalar_accumulators(n, lo):
    rng = np.random.default_rng(n + 100 * lo)
    v = rng.standard_normal(n + lo) * np.exp(rng.uniform(-30, 30, n + lo))
    m = lo + (n // 8) * 8
    assert _sumsq_lanes(v, lo, m) == lanes_reference(v * v, lo, m)
    w = rng.standard_normal(n + lo)
    m0 = ((n + lo) // 8) * 8
    assert _sqdist_lanes(v, w, m0) == lanes_reference((v - w) ** 2, 0, m0)


def test_sumsq_and_sqdist_match_numpy_and_propagate_nonfinite():
    rng = np.random.default_rng(1)
    v, w = rng.standard_normal(1003), rng.standard_normal(1003)
    assert sumsq(v, 3, 1000) == pytest.approx(np.sum(v[3:1000] ** 2), rel=1e-14)
    assert sqdist(v, w) == pytest.approx(np.sum((v - w) ** 2), rel=1e-14)
    for bad, want in ((np.nan, np.isnan), (np.inf, np.isinf)):
        u = v.copy()
        u[17] = bad
        assert want(sumsq(u, 0, 1003)) and want(sqdist(u, w))


@pytest.mark.parametrize("la,lb", [("C", "C"), ("C", "F"), ("F", "C"), ("F", "F")])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (32, 4, 32), (5, 32, 3)])
def test_matmul_equals_numpy_dot(la, lb, m, k, n):
    rng = np.random.default_rng(m * k * n)
    a = np.asarray(rng.standard_normal((m, k)), order=la)
    b = np.asarray(rng.standard_normal((k, n)), order=lb)
    out = np.full((m, n), np.nan)
    _matmul(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-13, atol=1e-13)


def test_strided_arrays_are_refused_at_compile_time():
    import numba
    v = np.arange(32.0)
    with pytest.raises(numba.core.errors.TypingError):
        _sumsq_lanes(v[::2], 0, 8)
    with pytest.raises(numba.core.errors.TypingError):
        _sumsq_lanes(v.astype(np.float32), 0, 8)


@pytest.mark.parametrize("n", [1, 8, 13, 1249])
@pytest.mark.parametrize("w", [1.0, 0.37])
def test_step_dist_is_the_step_then_dist(n, w):
    """The fused SA step th <- th - a (w u) with ||th - th0|| equals the plain loop followed by dist()."""
    from dynclip.model import step_dist, dist
    rng = np.random.default_rng(n)
    th, u, th0 = rng.standard_normal((3, n))
    want = th - 0.01 * (w * u)
    got = th.copy()
    d = step_dist(got, u, 0.01, w, th0)
    np.testing.assert_array_equal(got, want)
    assert d == dist(want, th0)
