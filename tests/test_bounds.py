"""Tests for dynclip.bounds."""

import math

import numpy as np
import pytest
from scipy import stats

from dynclip import bounds

LAM = 30.0
GAMMA = np.pi**2 / 6
RHO = 1024.0


def sig(x, n=4):
    """Round x to n significant figures."""
    return float(f"{x:.{n - 1}e}")


# ---------------------------------------------------------------------------
# plug-in exponents from the paper
# ---------------------------------------------------------------------------
def test_paper_plugin_exponents_4sf():
    e = bounds.paper_plugin_exponents()
    assert set(e) == {"paper", "azuma", "pinelis", "pinelis_bennett"}
    assert sig(e["paper"]) == 1417.0  # printed as 1416.6 in the paper
    assert round(e["paper"], 1) == 1416.6
    assert sig(e["azuma"]) == 354.1
    assert sig(e["pinelis"]) == 88.54
    assert sig(e["pinelis_bennett"]) == 48.47
    assert sig(e["pinelis_bennett"], 3) == 48.5
    for v in e.values():
        assert isinstance(v, float)


def test_paper_plugin_exponents_closed_forms():
    e = bounds.paper_plugin_exponents(rho=RHO, lam=LAM, gamma=GAMMA, a_max=1.0)
    assert e["paper"] == pytest.approx(2 * RHO**2 / (GAMMA * LAM**2), rel=1e-14)
    assert e["azuma"] == pytest.approx(RHO**2 / (2 * GAMMA * LAM**2), rel=1e-14)
    assert e["pinelis"] == pytest.approx(RHO**2 / (8 * GAMMA * LAM**2), rel=1e-14)
    b = 2 * LAM
    B2 = LAM**2 * GAMMA
    direct = -(RHO / b - (RHO / b + B2 / b**2) * math.log(1 + RHO * b / B2))
    assert e["pinelis_bennett"] == pytest.approx(direct, rel=1e-13)


def test_exponent_matches_bounds():
    r = np.linspace(0, 5, 11)
    assert np.allclose(bounds.paper_azuma(r, 1.3, 0.7), 2 * np.exp(-bounds.exponent("paper", r, 1.3, 0.7)))
    assert np.allclose(bounds.azuma(r, 1.3, 0.7), 2 * np.exp(-bounds.exponent("azuma", r, 1.3, 0.7)))
    assert np.allclose(bounds.pinelis(r, 1.3, 0.7), 2 * np.exp(-bounds.exponent("pinelis", r, 1.3, 0.7)))
    assert np.allclose(
        bounds.pinelis_bennett(r, 1.3, 0.7, 0.5),
        2 * np.exp(-bounds.exponent("pinelis_bennett", r, 1.3, 0.7, a_max=0.5)),
    )


# ---------------------------------------------------------------------------
# closed forms against direct evaluation
# ---------------------------------------------------------------------------
CASES = [(0.0, 1.0, 1.0), (0.5, 1.0, 1.0), (2.0, 0.3, 1.7), (10.0, 3.0, 0.01), (1024.0, 30.0, GAMMA)]


@pytest.mark.parametrize("r,lam,s", CASES)
def test_closed_forms(r, lam, s):
    assert bounds.paper_azuma(r, lam, s) == pytest.approx(2 * math.exp(-2 * r**2 / (lam**2 * s)), rel=1e-13, abs=0)
    assert bounds.azuma(r, lam, s) == pytest.approx(2 * math.exp(-(r**2) / (2 * lam**2 * s)), rel=1e-13, abs=0)
    assert bounds.pinelis(r, lam, s) == pytest.approx(2 * math.exp(-(r**2) / (8 * lam**2 * s)), rel=1e-13, abs=0)
    assert bounds.hoeffding_range(r, s) == pytest.approx(2 * math.exp(-2 * r**2 / s), rel=1e-13, abs=0)
    for d in (1, 3, 100):
        assert bounds.coordinate_union(r, d, lam, s) == pytest.approx(
            2 * d * math.exp(-(r**2) / (2 * d * lam**2 * s)), rel=1e-13, abs=0
        )
    for a_max in (1.0, 0.25):
        b = 2 * lam * a_max
        B2 = lam**2 * s
        direct = 2 * math.exp(r / b - (r / b + B2 / b**2) * math.log(1 + r * b / B2))
        assert bounds.pinelis_bennett(r, lam, s, a_max) == pytest.approx(direct, rel=1e-12, abs=0)


def test_scalar_returns_float():
    for v in (
        bounds.paper_azuma(1.0, 1.0, 1.0),
        bounds.azuma(1, 1, 1),
        bounds.hoeffding_range(1.0, 2.0),
        bounds.pinelis(np.float64(1.0), 1.0, 1.0),
        bounds.coordinate_union(1.0, 2, 1.0, 1.0),
        bounds.pinelis_bennett(1.0, 1.0, 1.0, 1.0),
        bounds.exponent("azuma", 1.0, 1.0, 1.0),
        bounds.clip_prob(3.0),
    ):
        assert type(v) is float


def test_value_at_zero_is_two():
    assert bounds.azuma(0.0, 1.0, 1.0) == 2.0
    assert bounds.pinelis_bennett(0.0, 1.0, 1.0, 1.0) == 2.0
    assert bounds.coordinate_union(0.0, 5, 1.0, 1.0) == 10.0


def test_coordinate_union_with_a_huge_dimension_is_not_nan():
    """2 d overflows for d > 9e307: the bound is 0 far out (found by the slow property test) and
    inf (vacuous), not NaN, near r = 0."""
    d = 8.98846567431158e307
    assert bounds.coordinate_union(3.66e155, d, 1.0, 1.0) == 0.0
    assert bounds.coordinate_union(1e-3, d, 1.0, 1.0) == np.inf


# ---------------------------------------------------------------------------
# vectorisation and monotonicity
# ---------------------------------------------------------------------------
ALL = {
    "paper_azuma": lambda r: bounds.paper_azuma(r, 2.0, 0.8),
    "azuma": lambda r: bounds.azuma(r, 2.0, 0.8),
    "hoeffding_range": lambda r: bounds.hoeffding_range(r, 3.2),
    "pinelis": lambda r: bounds.pinelis(r, 2.0, 0.8),
    "coordinate_union": lambda r: bounds.coordinate_union(r, 7, 2.0, 0.8),
    "pinelis_bennett": lambda r: bounds.pinelis_bennett(r, 2.0, 0.8, 0.5),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_vectorised(name):
    f = ALL[name]
    r = np.linspace(0.0, 20.0, 24).reshape(2, 3, 4)
    out = f(r)
    assert isinstance(out, np.ndarray)
    assert out.shape == r.shape
    expected = np.array([f(float(x)) for x in r.ravel()]).reshape(r.shape)
    np.testing.assert_allclose(out, expected, rtol=1e-14, atol=0)
    out_list = f([1.0, 2.0])
    assert isinstance(out_list, np.ndarray) and out_list.shape == (2,)


@pytest.mark.parametrize("name", sorted(ALL))
def test_monotone_decreasing_in_r(name):
    r = np.linspace(0.0, 30.0, 301)
    out = ALL[name](r)
    assert np.all(np.diff(out) <= 0)
    assert np.all(np.diff(out)[:100] < 0)  # strictly decreasing before underflow
    assert np.all(out >= 0)


def test_broadcast_over_other_args():
    r = np.array([1.0, 2.0, 3.0])
    lam = np.array([[1.0], [2.0]])
    out = bounds.azuma(r, lam, 1.0)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[1], bounds.azuma(r, 2.0, 1.0))
    d = np.array([1, 2, 3])
    np.testing.assert_allclose(
        bounds.coordinate_union(2.0, d, 1.0, 1.0), [bounds.coordinate_union(2.0, int(k), 1.0, 1.0) for k in d]
    )


# ---------------------------------------------------------------------------
# relations between bounds
# ---------------------------------------------------------------------------
def test_relations():
    r = np.linspace(0.0, 6.0, 61)
    lam, s = 1.7, 0.9
    np.testing.assert_allclose(bounds.paper_azuma(r, lam, s), bounds.azuma(r, lam, s) ** 4 / 2**3, rtol=1e-12, atol=0)
    ea = bounds.exponent("azuma", r, lam, s)
    np.testing.assert_allclose(bounds.exponent("paper", r, lam, s), 4 * ea, rtol=1e-15)
    np.testing.assert_allclose(bounds.exponent("pinelis", r, lam, s), ea / 4, rtol=1e-15)
    np.testing.assert_allclose(bounds.coordinate_union(r, 1, lam, s), bounds.azuma(r, lam, s), rtol=1e-15)
    # azuma == hoeffding_range with intervals of length 2*lam*a
    np.testing.assert_allclose(bounds.hoeffding_range(r, 4 * lam**2 * s), bounds.azuma(r, lam, s), rtol=1e-14)
    # ordering of the exponents at the paper's plug-in values
    e = bounds.paper_plugin_exponents()
    assert e["paper"] > e["azuma"] > e["pinelis"] > e["pinelis_bennett"] > 0


def test_clip_prob():
    assert bounds.clip_prob(2.0) == 1.0
    assert bounds.clip_prob(0.25) == 0.25
    np.testing.assert_array_equal(bounds.clip_prob(np.array([0.0, 0.5, 1.5])), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="p"):
        bounds.clip_prob(-0.1)


# ---------------------------------------------------------------------------
# sure displacement
# ---------------------------------------------------------------------------
def test_sure_displacement():
    a = 1.0 / np.arange(1, 51)
    out = bounds.sure_displacement(3.0, a)
    assert out.shape == (50,)
    np.testing.assert_allclose(out, 3.0 * np.cumsum(a), rtol=0, atol=0)
    assert out[0] == 3.0
    np.testing.assert_allclose(bounds.sure_displacement(2.0, [0.5, 0.25]), [1.0, 1.5])


# ---------------------------------------------------------------------------
# Clopper-Pearson
# ---------------------------------------------------------------------------
def _kn_pairs():
    pairs = []
    for n in (1, 2, 3, 5, 10, 37, 100, 1000, 20000):
        for k in {0, 1, 2, n // 3, n // 2, n - 2, n - 1, n}:
            if 0 <= k <= n:
                pairs.append((k, n))
    return sorted(pairs)


def test_clopper_pearson_matches_scipy():
    for k, n in _kn_pairs():
        for level in (0.95, 0.99):
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
            lo, hi = bounds.clopper_pearson(k, n, level)
            assert type(lo) is float and type(hi) is float
            assert abs(lo - ci.low) <= 1e-12, (k, n, level)
            assert abs(hi - ci.high) <= 1e-12, (k, n, level)


def test_clopper_pearson_edges_and_vectorised():
    lo, hi = bounds.clopper_pearson(0, 10)
    assert lo == 0.0 and 0 < hi < 1
    lo, hi = bounds.clopper_pearson(10, 10)
    assert hi == 1.0 and 0 < lo < 1
    pairs = _kn_pairs()
    k = np.array([p[0] for p in pairs])
    n = np.array([p[1] for p in pairs])
    lo, hi = bounds.clopper_pearson(k, n)
    assert lo.shape == hi.shape == k.shape
    for i, (kk, nn) in enumerate(pairs):
        slo, shi = bounds.clopper_pearson(int(kk), int(nn))
        assert lo[i] == slo and hi[i] == shi
    assert np.all(lo <= k / n) and np.all(k / n <= hi)
    # broadcasting k over a scalar n
    lo, hi = bounds.clopper_pearson(np.arange(6), 5)
    assert lo.shape == (6,) and lo[0] == 0.0 and hi[5] == 1.0


# ---------------------------------------------------------------------------
# input validation
# ---------------------------------------------------------------------------
BAD_CALLS = [
    (lambda: bounds.azuma(-1.0, 1.0, 1.0), "r"),
    (lambda: bounds.azuma(np.array([1.0, np.nan]), 1.0, 1.0), "r"),
    (lambda: bounds.azuma(np.inf, 1.0, 1.0), "r"),
    (lambda: bounds.azuma(1.0, -1, 1.0), "lam"),
    (lambda: bounds.azuma(1.0, 0.0, 1.0), "lam"),
    (lambda: bounds.paper_azuma(1.0, 1.0, 0.0), "sum_a2"),
    (lambda: bounds.pinelis(1.0, np.array([1.0, -2.0]), 1.0), "lam"),
    (lambda: bounds.hoeffding_range(1.0, -3.0), "range_sq_sum"),
    (lambda: bounds.hoeffding_range(-1.0, 3.0), "r"),
    (lambda: bounds.coordinate_union(1.0, 0, 1.0, 1.0), "d"),
    (lambda: bounds.coordinate_union(1.0, 2.5, 1.0, 1.0), "d"),
    (lambda: bounds.coordinate_union(1.0, 2, 1.0, -1.0), "sum_a2"),
    (lambda: bounds.pinelis_bennett(1.0, 1.0, 1.0, 0.0), "a_max"),
    (lambda: bounds.pinelis_bennett(1.0, 1.0, -1.0, 1.0), "sum_a2"),
    (lambda: bounds.exponent("foo", 1.0, 1.0, 1.0), "kind"),
    (lambda: bounds.exponent("pinelis_bennett", 1.0, 1.0, 1.0), "a_max"),
    (lambda: bounds.azuma("abc", 1.0, 1.0), "r"),
    (lambda: bounds.sure_displacement(0.0, [1.0]), "lam"),
    (lambda: bounds.sure_displacement(1.0, [1.0, -0.5]), "a"),
    (lambda: bounds.sure_displacement(1.0, [[1.0]]), "a"),
    (lambda: bounds.clopper_pearson(-1, 10), "k"),
    (lambda: bounds.clopper_pearson(11, 10), "k"),
    (lambda: bounds.clopper_pearson(1.5, 10), "k"),
    (lambda: bounds.clopper_pearson(0, 0), "n"),
    (lambda: bounds.clopper_pearson(1, 10, level=1.0), "level"),
    (lambda: bounds.clopper_pearson(1, 10, level=0.0), "level"),
]


@pytest.mark.parametrize("call,name", BAD_CALLS)
def test_bad_inputs_raise(call, name):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(name + " "), str(info.value)


def test_error_message_shows_value():
    with pytest.raises(ValueError, match=r"lam must be finite and > 0, got -1"):
        bounds.azuma(1.0, -1, 1.0)


# ---------------------------------------------------------------------------
# statistical check: the paper's bound is violated, Azuma's holds
# ---------------------------------------------------------------------------
def test_rademacher_martingale_paper_violated_azuma_holds():
    T, R, lam = 2000, 20000, 1.0
    a = 1.0 / (np.arange(T) + 1.0)  # a_t = 1/(t+1), t = 0..T-1
    sum_a2 = float(np.sum(a**2))
    rs = np.array([1.5, 2.0, 2.5, 3.0])
    # False alarms: the 95 % CP limits are compared with bounds >= 4x away from the true probabilities
    # (a > 5 SE deviation, rate < 1e-6 each); the rtol 0.25 sanity check is > 4 SE at R = 2e4 for the
    # smallest probability (SE 0.0005 on 0.0059)
    rng = np.random.default_rng(20230101)
    counts = np.zeros(rs.size, dtype=np.int64)
    chunk = 2500
    for _ in range(R // chunk):
        eps = rng.integers(0, 2, size=(chunk, T), dtype=np.int8) * 2 - 1
        X = np.cumsum(eps * (lam * a), axis=1)
        m = np.abs(X).max(axis=1)
        counts += (m[:, None] >= rs).sum(axis=0)
    lo, hi = bounds.clopper_pearson(counts, R)
    p_hat = counts / R
    # sanity: close to the reference values 0.557, 0.203, 0.0485, 0.0059
    np.testing.assert_allclose(p_hat, [0.557, 0.203, 0.0485, 0.0059], rtol=0.25)
    assert np.all(lo > bounds.paper_azuma(rs, lam, sum_a2)), (lo, bounds.paper_azuma(rs, lam, sum_a2))
    assert np.all(hi <= bounds.azuma(rs, lam, sum_a2)), (hi, bounds.azuma(rs, lam, sum_a2))
