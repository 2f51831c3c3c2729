"""Local smoothness estimator and (L0, L1) envelope fit (Zhang et al. 2020)."""
import numpy as np
import pytest
from scipy.optimize import linprog

import dynclip as dc
from dynclip import smoothness as sm


def _linear_quadratic(seed=0, d=3, N=30):
    """Linear model + half_mse: F(theta) = (1/2N) ||Z theta - y||^2, grad F = A theta - c, A = Z^T Z / N."""
    rng = np.random.default_rng(seed)
    net = dc.mlp([d, 1])
    X = rng.normal(size=(N, d)) * np.array([1.0, 3.0, 0.2])[:d]
    Y = rng.normal(size=(N, 1))
    Z = np.hstack([X, np.ones((N, 1))])          # flat layout: W (1, d) then b
    return net, X, Y, Z.T @ Z / N, Z.T @ Y[:, 0] / N


def test_quadratic_gradient_is_affine():
    net, X, Y, A, c = _linear_quadratic()
    th = np.random.default_rng(1).normal(size=net.n_params)
    np.testing.assert_allclose(dc.meanfield.grad_F(net, X, Y, th, "half_mse"), A @ th - c, rtol=1e-12, atol=1e-13)


def test_estimator_exact_on_quadratic():
    net, X, Y, A, c = _linear_quadratic()
    path = np.cumsum(np.random.default_rng(2).normal(size=(12, net.n_params)), axis=0)
    L, gn = sm.local_smoothness(net, X, Y, path, loss="half_mse")
    d = np.diff(path, axis=0)
    np.testing.assert_allclose(L, np.linalg.norm(d @ A.T, axis=1) / np.linalg.norm(d, axis=1), rtol=1e-10)
    np.testing.assert_allclose(gn, np.linalg.norm(path[:-1] @ A.T - c, axis=1), rtol=1e-12)
    ev = np.linalg.eigvalsh(A)
    assert np.all(L <= ev[-1] * (1 + 1e-12)) and np.all(L >= ev[0] * (1 - 1e-12))
    # one alpha only, and every-other-step evaluation through next_points
    L1, _ = sm.local_smoothness(net, X, Y, path, alphas=[0.5], loss="half_mse")
    np.testing.assert_allclose(L1, L, rtol=1e-10)
    L2, gn2 = sm.local_smoothness(net, X, Y, path[:-1:2], loss="half_mse", next_points=path[1::2])
    np.testing.assert_allclose(L2, L[::2], rtol=1e-12)
    np.testing.assert_allclose(gn2, gn[::2], rtol=1e-12)


def test_generic_fn_1d_and_non_vectorized():
    a = 2.5
    path = np.array([3.0, 1.0, -0.5, 0.2])
    L, gn = sm.local_smoothness_fn(lambda x: a * x, path)
    np.testing.assert_allclose(L, a, rtol=1e-14)
    np.testing.assert_allclose(gn, a * np.abs(path[:-1]), rtol=1e-14)
    # cosh: the estimate is a mean of cosh over the step, between the endpoint curvatures
    x = np.array([4.0, 3.0, 1.5])
    L, gn = sm.local_smoothness_fn(np.sinh, x, alphas=[1.0])
    np.testing.assert_allclose(L, np.abs(np.diff(np.sinh(x))) / np.abs(np.diff(x)), rtol=1e-14)
    assert np.all(L <= np.cosh(x[:-1])) and np.all(L >= np.cosh(x[1:]))
    net, X, Y, A, c = _linear_quadratic(3)
    path = np.random.default_rng(4).normal(size=(5, net.n_params))
    Lv, gv = sm.local_smoothness_fn(lambda th: dc.meanfield.grad_F(net, X, Y, th, "half_mse"), path)
    Ln, gnn = sm.local_smoothness_fn(lambda th: A @ th - c, path, vectorized=False, chunk=3)
    np.testing.assert_allclose(Lv, Ln, rtol=1e-10)
    np.testing.assert_allclose(gv, gnn, rtol=1e-10)


def test_zero_step_gives_nan():
    L, gn = sm.local_smoothness_fn(lambda x: 2 * x, np.array([1.0, 1.0, 0.5]))
    assert np.isnan(L[0]) and L[1] == pytest.approx(2.0)
    env = sm.fit_l0_l1(gn, L, coverage=1.0)
    assert env.n_points == 1


def test_envelope_recovers_line():
    rng = np.random.default_rng(0)
    L0, L1 = 3.0, 0.7
    g = rng.uniform(0.1, 50, 400)
    L = (L0 + L1 * g) * rng.uniform(0.2, 1.0, 400)
    L[[0, 1]] = L0 + L1 * np.array([g[0], g[1]])                 # two points on the line: the line is the optimum
    g[0], L[0] = 0.1, L0 + L1 * 0.1
    g[1], L[1] = 50.0, L0 + L1 * 50.0
    env = sm.fit_l0_l1(g, L, coverage=1.0)
    assert env.L0 == pytest.approx(L0, rel=1e-5) and env.L1 == pytest.approx(L1, rel=1e-5)
    assert env.coverage == 1.0 and env.n_points == 400
    # 1 % outliers far above the line are ignored at coverage 0.99
    g2 = np.concatenate([g, rng.uniform(1, 50, 4)])
    L2 = np.concatenate([L, 100 * (L0 + L1 * g2[-4:])])
    env99 = sm.fit_l0_l1(g2, L2, coverage=0.99)
    assert env99.L0 == pytest.approx(L0, rel=1e-4) and env99.L1 == pytest.approx(L1, rel=1e-4)
    assert env99.coverage >= 0.99
    assert sm.fit_l0_l1(g2, L2, coverage=1.0).L1 > 10 * L1


@pytest.mark.parametrize("seed", range(4))
def test_envelope_matches_linprog_at_full_coverage(seed):
    rng = np.random.default_rng(seed)
    g = np.exp(rng.normal(0, 1.5, 200))
    L = np.exp(rng.normal(0, 1, 200)) * (1 + g) ** 0.6
    env = sm.fit_l0_l1(g, L, coverage=1.0)
    lp = linprog(c=[1.0, g.mean()], A_ub=-np.column_stack([np.ones_like(g), g]), b_ub=-L, bounds=[(0, None)] * 2)
    assert lp.status == 0
    assert env.L0 + env.L1 * g.mean() == pytest.approx(lp.fun, rel=1e-6)
    assert np.all(L <= env.L0 + env.L1 * g + 1e-9 * L)
    # relaxing the coverage can only lower the line's mean height
    env9 = sm.fit_l0_l1(g, L, coverage=0.9)
    assert env9.L0 + env9.L1 * g.mean() <= lp.fun * (1 + 1e-9) and env9.coverage >= 0.9


def test_envelope_flat_points():
    env = sm.fit_l0_l1(np.zeros(5), np.array([1.0, 2.0, 3.0, 4.0, 5.0]), coverage=1.0)
    assert env.L0 == 5.0 and env.L1 == 0.0


def test_bad_inputs():
    net, X, Y, A, c = _linear_quadratic()
    path = np.zeros((3, net.n_params))
    with pytest.raises(ValueError, match="alphas"):
        sm.local_smoothness(net, X, Y, path, alphas=[0.0, 0.5])
    with pytest.raises(ValueError, match="alphas"):
        sm.local_smoothness(net, X, Y, path, alphas=[1.5])
    with pytest.raises(ValueError, match="alphas"):
        sm.local_smoothness(net, X, Y, path, alphas=[])
    with pytest.raises(ValueError, match="path"):
        sm.local_smoothness(net, X, Y, np.zeros((3, net.n_params + 1)))
    with pytest.raises(ValueError, match="path"):
        sm.local_smoothness(net, X, Y, np.zeros((1, net.n_params)))
    with pytest.raises(ValueError, match="path"):
        sm.local_smoothness(net, X, Y, np.full((3, net.n_params), np.nan))
    with pytest.raises(ValueError, match="path"):
        sm.local_smoothness(net, X, Y, np.zeros(net.n_params))
    with pytest.raises(ValueError, match="next_points"):
        sm.local_smoothness(net, X, Y, path, next_points=np.zeros((2, net.n_params)))
    with pytest.raises(ValueError, match="loss"):
        sm.local_smoothness(net, X, Y, path, loss="l1")
    with pytest.raises(ValueError, match="grad"):
        sm.local_smoothness_fn(3.0, np.zeros(3))
    with pytest.raises(ValueError, match="grad"):
        sm.local_smoothness_fn(lambda x: x[:, :0], np.zeros(3))
    with pytest.raises(ValueError, match="coverage"):
        sm.fit_l0_l1([1.0, 2.0], [1.0, 2.0], coverage=0.0)
    with pytest.raises(ValueError, match="coverage"):
        sm.fit_l0_l1([1.0, 2.0], [1.0, 2.0], coverage=1.5)
    with pytest.raises(ValueError, match="same shape"):
        sm.fit_l0_l1([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="grad_norm"):
        sm.fit_l0_l1([-1.0, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="L must"):
        sm.fit_l0_l1([1.0, 2.0], [-1.0, 1.0])
    with pytest.raises(ValueError, match="no finite"):
        sm.fit_l0_l1([np.nan], [1.0])


def test_affine_fit_matches_polyfit_and_covers_slope():
    """The point estimate is ordinary least squares; on iid noise the 95 % interval covers the true slope.

    60 independent data sets with true L1 = 0.5: the interval misses in about 5 % of them; the test
    allows up to 9 misses (P(Binomial(60, 0.05) >= 10) ~ 2e-3; a block bootstrap on iid data is
    slightly wider than needed, so the real false-alarm rate is lower)."""
    rng = np.random.default_rng(11)
    miss = 0
    for _ in range(60):
        g = np.exp(rng.uniform(0, 3, 150))
        L = 2.0 + 0.5 * g + rng.uniform(0, 2, 150)
        fit = sm.fit_affine_ci(g, L, n_boot=500, seed=int(rng.integers(1 << 30)))
        b1, b0 = np.polyfit(g, L, 1)
        assert fit.L1 == pytest.approx(b1, rel=1e-10) and fit.L0 == pytest.approx(b0, rel=1e-10)
        assert fit.L1_lo <= fit.L1 <= fit.L1_hi and fit.n_points == 150 and fit.block == 13
        miss += not (fit.L1_lo <= 0.5 <= fit.L1_hi)
    assert miss <= 9


def test_affine_fit_slope_from_one_stretch_is_not_significant():
    """A path whose slope comes from 10 of 400 points (one early stretch) has an interval reaching 0;
    the same points in a shuffled order (no serial structure) would not, so the blocks matter."""
    rng = np.random.default_rng(3)
    g = np.concatenate([np.linspace(50, 10, 10), 1 + rng.uniform(0, 1, 390)])
    L = np.concatenate([np.linspace(500, 100, 10), 10 * rng.uniform(0.1, 1, 390)])
    fit = sm.fit_affine_ci(g, L, block=40, seed=0)
    assert fit.L1 > 5 and fit.L1_lo <= 0.0
    p = rng.permutation(400)
    assert sm.fit_affine_ci(g[p], L[p], block=40, seed=0).L1_lo > 5
    flat = sm.fit_affine_ci(np.arange(1.0, 201), np.full(200, 3.0))
    assert flat.L1 == pytest.approx(0.0, abs=1e-12) and flat.L0 == pytest.approx(3.0)
    assert np.isnan(sm.fit_affine_ci([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]).L1_lo)


def test_binned_spearman():
    g = np.geomspace(1, 1000, 300)
    b = sm.binned_spearman(g, 2 + 0.1 * g, n_bins=6, min_count=5)
    assert b.rho == 1.0 and b.count.sum() == 300 and np.all(np.diff(b.g_median) > 0)
    assert sm.binned_spearman(g, 1 / g, n_bins=6).rho == -1.0
    # a long phase in which L falls by 1.5 decades at an almost constant g: it fills the lowest bin and
    # lowers only that median, so the binned rho stays 1 while the rho over all points drops below 0.8
    from scipy.stats import spearmanr
    g2 = np.concatenate([g, np.full(600, 1.0) * np.exp(np.linspace(0, 0.01, 600))])
    L2 = np.concatenate([2 + 0.1 * g, np.geomspace(2.1, 2.1 / 30, 600)])
    assert spearmanr(g2, L2)[0] < 0.8 and sm.binned_spearman(g2, L2, n_bins=6).rho == 1.0
    # sparse bins are dropped; fewer than 3 bins left gives NaN
    few = sm.binned_spearman(np.array([1.0, 1.0, 1.0, 100.0]), np.ones(4), n_bins=4, min_count=2)
    assert np.isnan(few.rho) and few.count.tolist() == [3]
    with pytest.raises(ValueError, match="n_bins"):
        sm.binned_spearman(g, g, n_bins=2)
    with pytest.raises(ValueError, match="min_count"):
        sm.binned_spearman(g, g, min_count=0)
    with pytest.raises(ValueError, match="level"):
        sm.fit_affine_ci(g, g, level=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        sm.fit_affine_ci(g, g, n_boot=10)
    with pytest.raises(ValueError, match="block"):
        sm.fit_affine_ci(g, g, block=0)
    with pytest.raises(ValueError, match="same shape"):
        sm.fit_affine_ci(g, g[:-1])


def test_s10_step_counts_equal_a_plain_loop():
    """S10's step counts (dynclip.toys.iterations with dynclip's none, classic and normalized rules)
    equal a plain Python loop over dynclip.clipping.clip, censored runs included."""
    from studies import s10_zhang_1d as s10
    assert s10._check_iterations() == 0
