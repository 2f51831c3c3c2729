"""The explicit SIMD reductions and the blocked matrix product against plain loops / NumPy."""
import numpy as np
import pytest

from dynclip._jit import hot
from dynclip._simd import sumsq_lanes, sqdist_lanes, gemm_rows
from dynclip._norms import sumsq, sqdist


def lanes_reference(x, lo, m):
    """Eight scalar accumulators, lane j takes x[lo + j], x[lo + j + 8], ... in order."""
    acc = [0.0] * 8
    for i in range(lo, m):
        acc[(i - lo) % 8] += x[i]
    return tuple(acc)


def lanes32_reference(x, lo, m):
    """Four 8-lane accumulators: block q of 32 elements sends its k-th 8 to accumulator k; the
    8-element blocks after the last full 32 go to accumulator 0; lanes (a0 + a1) + (a2 + a3)."""
    acc = [[0.0] * 8 for _ in range(4)]
    m32 = lo + (m - lo) // 32 * 32
    for i in range(lo, m):
        k = ((i - lo) // 8) % 4 if i < m32 else 0
        acc[k][(i - lo) % 8] += x[i]
    return tuple((acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]) for j in range(8))


@hot
def _sumsq_lanes(v, lo, m):
    return sumsq_lanes(v, lo, m)


@hot
def _sqdist_lanes(v, w, m):
    return sqdist_lanes(v, w, m)


@hot
def _gemm(c, co, ldc, a, ao, sa_i, sa_p, b, bo, ldb, m, n, k, accumulate):
    gemm_rows(c, co, ldc, a, ao, sa_i, sa_p, b, bo, ldb, m, n, k, accumulate)


@pytest.mark.parametrize("n", [0, 7, 8, 9, 31, 32, 40, 65, 1249])
@pytest.mark.parametrize("lo", [0, 1, 5])
def test_sum_lanes_bit_identical_to_scalar_accumulators(n, lo):
    rng = np.random.default_rng(n + 100 * lo)
    v = rng.standard_normal(n + lo) * np.exp(rng.uniform(-30, 30, n + lo))
    m = lo + (n // 8) * 8
    assert _sumsq_lanes(v, lo, m) == lanes32_reference(v * v, lo, m)
    w = rng.standard_normal(n + lo)
    m0 = ((n + lo) // 8) * 8
    assert _sqdist_lanes(v, w, m0) == lanes32_reference((v - w) ** 2, 0, m0)


def test_sumsq_and_sqdist_match_numpy_and_propagate_nonfinite():
    rng = np.random.default_rng(1)
    v, w = rng.standard_normal(1003), rng.standard_normal(1003)
    assert sumsq(v, 3, 1000) == pytest.approx(np.sum(v[3:1000] ** 2), rel=1e-14)
    assert sqdist(v, w) == pytest.approx(np.sum((v - w) ** 2), rel=1e-14)
    for bad, want in ((np.nan, np.isnan), (np.inf, np.isinf)):
        u = v.copy()
        u[17] = bad
        assert want(sumsq(u, 0, 1003)) and want(sqdist(u, w))


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (32, 4, 32), (5, 32, 3), (33, 7, 41), (4, 32, 8), (7, 3, 64)])
@pytest.mark.parametrize("transposed_a", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_rows_bit_identical_to_sequential_sum(m, k, n, transposed_a, accumulate):
    """c (+)= a b summed over p in order, for any shape (row groups of four and the rest, column
    blocks of 32, 8 and a masked tail), a read with any strides, at offsets; untouched outside."""
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    A = rng.standard_normal((m, k))
    B = rng.standard_normal((k, n))
    C0 = rng.standard_normal((m, n))
    a = np.concatenate(([9.0, 9.0], (A.T if transposed_a else A).ravel()))
    sa_i, sa_p = (1, m) if transposed_a else (k, 1)
    b = np.concatenate(([7.0], B.ravel()))
    c = np.concatenate(([5.0] * 3, C0.ravel(), [5.0] * 9))
    _gemm(c, 3, n, a, 2, sa_i, sa_p, b, 1, n, m, n, k, accumulate)
    want = C0.copy() if accumulate else np.zeros((m, n))
    for p in range(k):
        want = want + A[:, p:p + 1] * B[p:p + 1, :]
    assert np.array_equal(c[3:3 + m * n].reshape(m, n), want)
    assert np.all(c[:3] == 5.0) and np.all(c[3 + m * n:] == 5.0)


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
    from dynclip._norms import step_dist, dist
    rng = np.random.default_rng(n)
    th, u, th0 = rng.standard_normal((3, n))
    want = th - 0.01 * (w * u)
    got = th.copy()
    d = step_dist(got, u, 0.01, w, th0)
    np.testing.assert_array_equal(got, want)
    assert d == dist(want, th0)


def _tree(s):
    """The scalar combination of eight lanes used throughout dynclip."""
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))


@pytest.mark.parametrize("n", [0, 3, 8, 13, 32, 45])
@pytest.mark.parametrize("nrows", [8, 5, 1])
def test_affine8_is_bias_plus_dot_products_in_the_documented_order(n, nrows):
    from dynclip._simd import affine8

    @hot
    def run(v, vo, stride, x, xo, n, nrows, b, bo, out, oo):
        affine8(v, vo, stride, x, xo, n, nrows, b, bo, out, oo)

    rng = np.random.default_rng(n + 100 * nrows)
    stride, vo, xo = n + 2, 3, 1
    v = rng.standard_normal(vo + nrows * stride) * np.exp(rng.uniform(-5, 5, vo + nrows * stride))
    x = rng.standard_normal(xo + n)
    b = rng.standard_normal(nrows + 2)
    out = np.full(nrows + 9, np.nan)
    run(v, vo, stride, x, xo, n, nrows, b, 2, out, 1)
    assert np.isnan(out[0]) and np.all(np.isnan(out[1 + nrows:]))     # nothing written outside
    for o in range(nrows):
        row = np.zeros(-(-n // 8) * 8)                               # zero-padded last vector
        row[:n] = v[vo + o * stride: vo + o * stride + n] * x[xo:xo + n]
        assert out[1 + o] == b[2 + o] + _tree(lanes_reference(row, 0, row.size))


@pytest.mark.parametrize("nrows,n", [(1, 8), (5, 32), (7, 40), (3, 72), (4, 0), (3, 5), (6, 30), (2, 43)])
def test_row_kernels_equal_plain_loops(nrows, n):
    from dynclip._simd import axpy_rows, ger_rows

    @hot
    def axpy(v, vo, stride, d, do, nrows, y, yo, n, accumulate=False):
        axpy_rows(v, vo, stride, d, do, nrows, y, yo, n, accumulate)

    @hot
    def ger(g, go, stride, d, do, nrows, a, ao, n, overwrite):
        ger_rows(g, go, stride, d, do, nrows, a, ao, n, overwrite)

    rng = np.random.default_rng(nrows * 100 + n)
    stride = n + 3
    v = rng.standard_normal(2 + nrows * stride)
    d = rng.standard_normal(1 + nrows)
    y = np.full(n + 8, np.nan)
    axpy(v, 2, stride, d, 1, nrows, y, 4, n)
    want = np.zeros(n)
    for o in range(nrows):                       # rows added one by one, from +0.0
        want = want + d[1 + o] * v[2 + o * stride: 2 + o * stride + n]
    np.testing.assert_array_equal(y[4:4 + n], want)
    assert np.all(np.isnan(y[:4])) and np.all(np.isnan(y[4 + n:]))    # nothing written outside
    a = rng.standard_normal(n + 1)
    for overwrite in (False, True):
        g = rng.standard_normal(2 + nrows * stride + 8)
        want = g.copy()
        for o in range(nrows):
            sl = slice(2 + o * stride, 2 + o * stride + n)
            want[sl] = (0.0 if overwrite else want[sl]) + d[1 + o] * a[1:]
        ger(g, 2, stride, d, 1, nrows, a, 1, n, overwrite)
        np.testing.assert_array_equal(g, want)


def test_row_kernels_with_unit_coefficients_and_accumulation():
    """d=None means coefficient 1 (column sums, a bias added to every row); accumulate starts from y."""
    from dynclip._simd import axpy_rows, ger_rows

    @hot
    def colsum(v, nrows, y, n8):
        axpy_rows(v, 0, n8, None, 0, nrows, y, 0, n8, True)

    @hot
    def addrow(g, nrows, a, n8):
        ger_rows(g, 0, n8, None, 0, nrows, a, 0, n8, False)

    rng = np.random.default_rng(7)
    v = rng.standard_normal((5, 40))
    y = rng.standard_normal(40)
    want = y.copy()
    for r in range(5):
        want = want + v[r]
    colsum(v.ravel(), 5, y, 40)
    np.testing.assert_array_equal(y, want)
    g = rng.standard_normal((5, 40))
    want = g + y
    addrow(g.reshape(-1), 5, y, 40)
    np.testing.assert_array_equal(g, want)


def test_matrix_and_flat_views_alias_the_buffer():
    """matrix_view(buf, off, n0, n1) is buf[off:off + n0 n1].reshape(n0, n1) (a view: writes reach
    buf), flat_view is its C-order ravel; used inside kernels compiled without reference counting."""
    from dynclip._simd import matrix_view, flat_view

    @hot
    def fill(buf, off, n0, n1):
        M = matrix_view(buf, off, n0, n1)
        for i in range(n0):
            for j in range(n1):
                M[i, j] = 10.0 * i + j
        f = flat_view(M)
        return M.shape[0], M.shape[1], M.strides[0], f.shape[0], f[f.shape[0] - 1]

    buf = np.full(20, -1.0)
    assert fill(buf, 3, 3, 5) == (3, 5, 40, 15, 24.0)
    want = np.full(20, -1.0)
    want[3:18] = (10.0 * np.arange(3)[:, None] + np.arange(5)).ravel()
    np.testing.assert_array_equal(buf, want)
