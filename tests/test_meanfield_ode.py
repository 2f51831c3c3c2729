"""Mean field H, ODE integrators and the martingale noise sum xi (issue: theory side)."""
import numpy as np
import pytest
from scipy.linalg import expm

import dynclip as dc
from dynclip import clipping as C, schedules as S, meanfield as mf, ode, bounds
from conftest import rule_dict
import reference as ref


def _problem(seed=0, widths=(3, 6, 2), N=25):
    rng = np.random.default_rng(seed)
    return dc.mlp(list(widths)), rng.normal(size=(N, widths[0])), 2 * rng.normal(size=(N, widths[-1]))


@pytest.mark.parametrize("rule", [C.none(), C.classic(0.5), C.adaptive(0.3, 0.1), C.layerwise(0.2, 0.1),
                                  C.unitwise(0.1), C.value(0.1), C.normalized(1.0)], ids=lambda r: r.describe())
def test_H_equals_naive_twin(rule):
    net, X, Y = _problem()
    th = np.stack([dc.init_params(net, s) * 2 for s in range(3)])
    Hm = mf.H(net, X, Y, rule, th)
    for m in range(3):
        np.testing.assert_allclose(Hm[m], ref.mean_field(list(net.widths), "tanh", th[m], X, Y, "mse",
                                                         rule_dict(rule)), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(mf.H(net, X, Y, rule, th[1]), Hm[1])


def test_H_bounded_and_tends_to_grad_F():
    net, X, Y = _problem(1)
    for s in range(5):
        th = dc.init_params(net, s) * 3
        assert np.linalg.norm(mf.H(net, X, Y, C.classic(0.7), th)) <= 0.7 * (1 + 1e-14)   # Lemma 2
        g = mf.grad_F(net, X, Y, th)
        norms = mf.per_sample_grad_norms(net, X, Y, th)
        np.testing.assert_allclose(mf.H(net, X, Y, C.classic(norms.max() * 1.01), th), g, rtol=1e-13, atol=1e-15)
        errs = [np.linalg.norm(mf.clip_bias(net, X, Y, C.classic(lam), th)) for lam in np.quantile(norms, [0.1, 0.5, 0.9])]
        assert errs[0] > errs[1] > errs[2] > 0


@pytest.mark.parametrize("B, clip_per, mu", [(1, "batch", 0.0), (3, "sample", 0.0), (1, "batch", 0.5),
                                             (3, "sample", 0.5)])
def test_mean_increment_is_minus_aH(B, clip_per, mu):
    """One SA step from a fixed theta over many replicas: E[(theta_1 - theta_0)] = -a H (4 SE); with weight
    decay mu (sgd(weight_decay=mu), after clipping) -a H_mu = -a (H + mu theta_0).

    False-alarm rate of a correct engine over random seeds: P(|z| > 4) = 6.3e-5 per coordinate, so
    <= 38 x 6.3e-5 = 0.24 % for the 38 parameters, per case (union bound; the seed is fixed, so the test is
    deterministic). With mu = 0.5 a dropped decay term shifts the mean by mu theta_0: max |z| ~ 3e3 here."""
    net, X, Y = _problem(2)
    th0 = dc.init_params(net, 0) * 2
    rule = C.classic(0.8)
    a, R = 0.1, 20000
    res = dc.simulate(net, X, Y, rule, S.constant(a), n_steps=1, seed=11, batch_size=B, n_replicas=R,
                      theta0=th0, clip_per=clip_per, record_every=1, optimizer=dc.optimizers.sgd(weight_decay=mu))
    inc = (res.theta_final - th0) / (-a)
    z = (inc.mean(0) - mf.H(net, X, Y, rule, th0, weight_decay=mu)) / (inc.std(0, ddof=1) / np.sqrt(R))
    assert np.max(np.abs(z)) < 4.0


def test_weight_decay_fields():
    """H_mu = H + mu theta (exact and Monte-Carlo H), grad F_mu = grad F + mu theta, F_mu = F + (mu/2)||theta||^2,
    for one and many points; clip_bias does not change; weight_decay 0 is the field without it, bit for bit."""
    net, X, Y = _problem(5)
    rule, mu = C.classic(0.5), 0.37
    th = np.stack([dc.init_params(net, s) * 2 for s in range(5)])     # >= SERIAL_BELOW rows: the parallel kernels
    for t in (th, th[0]):
        np.testing.assert_array_equal(mf.H(net, X, Y, rule, t, weight_decay=mu), mf.H(net, X, Y, rule, t) + mu * t)
        np.testing.assert_array_equal(mf.grad_F(net, X, Y, t, weight_decay=mu), mf.grad_F(net, X, Y, t) + mu * t)
        np.testing.assert_allclose(mf.F(net, X, Y, t, weight_decay=mu),
                                   mf.F(net, X, Y, t) + 0.5 * mu * np.sum(t * t, axis=-1), rtol=1e-14)
        np.testing.assert_array_equal(mf.H(net, X, Y, rule, t, weight_decay=0.0), mf.H(net, X, Y, rule, t))
        np.testing.assert_array_equal(mf.clip_bias(net, X, Y, rule, t, weight_decay=mu), mf.clip_bias(net, X, Y, rule, t))
        h, se = mf.H_batch_estimate(net, X, Y, rule, t, batch_size=4, n_batches=64, weight_decay=mu)
        h0, se0 = mf.H_batch_estimate(net, X, Y, rule, t, batch_size=4, n_batches=64)
        np.testing.assert_array_equal(h, h0 + mu * t)
        np.testing.assert_array_equal(se, se0)
        np.testing.assert_array_equal(mf.H(net, X, Y, rule, t, batch_size=4, n_batches=64, weight_decay=mu), h)
    for call in (lambda: mf.H(net, X, Y, rule, th[0], weight_decay=-1.0),
                 lambda: mf.grad_F(net, X, Y, th[0], weight_decay=np.nan),
                 lambda: ode.rk4(net, X, Y, rule, th[0], [0.0, 1.0], dt=0.1, weight_decay=np.inf)):
        with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
            call()


def test_ode_with_weight_decay_linear_against_expm():
    """Linear model, half_mse, no clipping, weight decay mu: H_mu = (A + mu I) theta - c, a closed form for
    integrate and rk4; the flow result reports F_mu and ||H_mu||."""
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=20)
    net, mu = dc.mlp([3, 1]), 0.4
    Z = np.c_[X, np.ones(20)]
    A = Z.T @ Z / 20 + mu * np.eye(4)
    c = Z.T @ Y / 20
    star = np.linalg.solve(A, c)
    th0 = np.array([1.0, -2.0, 0.5, 3.0])
    t = np.linspace(0, 3, 7)
    exact = np.array([star + expm(-A * tt) @ (th0 - star) for tt in t])
    flow = ode.integrate(net, X, Y, C.none(), th0, t, loss="half_mse", rtol=1e-11, atol=1e-13, weight_decay=mu)
    np.testing.assert_allclose(flow.theta, exact, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(flow.loss, mf.F(net, X, Y, flow.theta, "half_mse", weight_decay=mu), rtol=1e-14)
    np.testing.assert_allclose(flow.H_norm, np.linalg.norm(A @ flow.theta.T - c[:, None], axis=0), rtol=1e-10)
    assert flow.config["weight_decay"] == mu
    np.testing.assert_allclose(ode.rk4(net, X, Y, C.none(), th0, t, dt=1e-3, loss="half_mse", weight_decay=mu),
                               exact, atol=1e-10)


def test_noise_with_weight_decay_is_u_minus_H():
    """sgd(weight_decay=mu), B = 1: the engine's noise sum xi_T = sum a_k (u_k - H(theta_k)) equals
    theta_0 - theta_T - sum a_k H_mu(theta_k) (from theta_{k+1} = theta_k - a_k (u_k + mu theta_k))."""
    net, X, Y = _problem(3)
    th0, mu, T = dc.init_params(net, 2) * 2, 0.3, 40
    sched = S.inverse(0.5, 2.0)
    res = dc.simulate(net, X, Y, C.classic(0.6), sched, n_steps=T, seed=4, n_replicas=2, theta0=th0, record_every=1,
                      record_theta=True, track_noise=True, optimizer=dc.optimizers.sgd(weight_decay=mu))
    a = sched.values(0, T)
    for r in range(2):
        path = res.theta[r]
        Hmu = mf.H(net, X, Y, C.classic(0.6), path[:-1], weight_decay=mu)
        want = path[0] - path[-1] - np.sum(a[:, None] * Hmu, axis=0)
        np.testing.assert_allclose(res.noise[r], want, rtol=0, atol=1e-12)
        assert np.linalg.norm(want) > 1e-2


def test_ode_linear_against_expm():
    """Linear model, half_mse, no clipping: H(theta) = A theta - c, so theta(t) has a closed form."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    Y = rng.normal(size=20)
    net = dc.mlp([3, 1])
    Z = np.c_[X, np.ones(20)]
    A = Z.T @ Z / 20
    c = Z.T @ Y / 20
    star = np.linalg.solve(A, c)
    th0 = np.array([1.0, -2.0, 0.5, 3.0])
    t = np.linspace(0, 3, 7)
    exact = np.array([star + expm(-A * tt) @ (th0 - star) for tt in t])
    flow = ode.integrate(net, X, Y, C.none(), th0, t, loss="half_mse", rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(flow.theta, exact, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(ode.rk4(net, X, Y, C.none(), th0, t, dt=1e-3, loss="half_mse"), exact, atol=1e-10)
    assert flow.n_rhs > 0


def test_rk4_order_four_and_matches_solve_ivp():
    net, X, Y = _problem(3)
    th0 = dc.init_params(net, 1)
    rule = C.classic(1e6)     # smooth field (no sample clipped) so the order is not spoiled by a kink
    t = np.array([0.0, 2.0])
    exact = ode.integrate(net, X, Y, rule, th0, t, rtol=1e-12, atol=1e-14).theta[-1]
    dts = np.array([0.4, 0.2, 0.1, 0.05])
    errs = [np.linalg.norm(ode.rk4(net, X, Y, rule, th0, t, dt=h)[-1] - exact) for h in dts]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert 3.7 <= slope <= 4.3, slope
    clipped = C.classic(0.5)
    tt = np.linspace(0, 3, 13)
    f = ode.integrate(net, X, Y, clipped, th0, tt, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ode.rk4(net, X, Y, clipped, th0, tt, dt=0.002), f.theta, atol=1e-7)


def test_reference_flow_deviation_and_windows():
    net, X, Y = _problem(4)
    th0 = dc.init_params(net, 2)
    rule, sched, T = C.classic(0.5), S.inverse(2.0, 40.0), 2000
    steps, times = dc.record_times(sched, T, 100)
    flow = ode.integrate(net, X, Y, rule, th0, times)
    res = dc.simulate(net, X, Y, rule, sched, n_steps=T, seed=0, n_replicas=3, theta0=th0, record_every=100,
                      reference=flow, record_theta=True)
    dev = np.linalg.norm(res.theta - flow.theta[None], axis=2)
    np.testing.assert_allclose(res.ref_deviation, dev, rtol=1e-12, atol=1e-14)
    D = ode.window_deviations(net, X, Y, rule, res.theta[0], res.time, [0.0], width=times[-1] + 1, dt=0.005)
    assert D[0] == pytest.approx(res.ref_deviation[0].max(), rel=1e-4)
    with pytest.raises(ValueError, match="reference"):
        dc.simulate(net, X, Y, rule, sched, n_steps=T, seed=0, record_every=50, reference=flow)


def _two_point_run(R, T, a0=0.5, seed=5):
    net = dc.mlp([1, 1])
    X, Y = dc.data.two_point()
    return dc.simulate(net, X, Y, C.classic(1.0), S.inverse(a0, 1.0), n_steps=T, seed=seed, n_replicas=R,
                       theta0=np.array([0.0, 5.0]), loss="half_mse", track_noise=True, record_every=T)


def test_noise_sum_mean_zero_and_orthogonality():
    R, T = 4000, 300
    res = _two_point_run(R, T)
    xi = res.noise[:, 1]
    # statistical checks at 3 SE: false-alarm rate 0.27 % each for a correct engine (fixed seed: deterministic)
    assert abs(xi.mean()) < 3 * xi.std(ddof=1) / np.sqrt(R)                      # E xi = 0
    np.testing.assert_array_equal(res.noise[:, 0], 0.0)
    # H = 0 on [1, 9] and theta never leaves it (lam * A(T) < 4), so theta_T - theta_0 = -xi_T exactly
    np.testing.assert_allclose(xi, 5.0 - res.theta_final[:, 1], atol=1e-12)
    d = res.noise_norm[:, -1] ** 2 - res.noise_sq_sum                            # paired identity
    assert abs(d.mean()) < 3 * d.std(ddof=1) / np.sqrt(R) + 1e-15
    a = S.inverse(0.5, 1.0).values(0, T)
    np.testing.assert_allclose(res.noise_sq_sum, np.sum(a ** 2), rtol=1e-12)   # |M| = 1 exactly here


def test_noise_orthogonality_on_mlp():
    net, X, Y = _problem(6, widths=(2, 4, 1), N=16)
    rule, R, T = C.classic(0.3), 3000, 60
    res = dc.simulate(net, X, Y, rule, S.inverse(0.5, 5.0), n_steps=T, seed=9, n_replicas=R,
                      theta0=dc.init_params(net, 0), track_noise=True, record_every=T)
    d = res.noise_norm[:, -1] ** 2 - res.noise_sq_sum
    # false-alarm rates for a correct engine: 0.27 % (3 SE) here, <= 17 x 6.3e-5 = 0.1 % (4 SE on each of
    # the 17 coordinates) below; the seed is fixed, so the test is deterministic
    assert abs(d.mean()) < 3 * d.std(ddof=1) / np.sqrt(R)
    assert np.all(res.noise_sq_sum <= 4 * 0.3 ** 2 * np.sum(S.inverse(0.5, 5.0).values(0, T) ** 2) * (1 + 1e-12))
    z = res.noise.mean(0) / (res.noise.std(0, ddof=1) / np.sqrt(R))
    assert np.max(np.abs(z)) < 4


def test_exceedance_below_correct_azuma_bound():
    R, T = 5000, 2000
    res = _two_point_run(R, T, a0=1.0, seed=1)
    s2 = np.sum(S.inverse(1.0, 1.0).values(0, T) ** 2)
    # 95 % CP limits, one-sided 2.5 % each; the true probabilities lie >= 4x away from both bounds at
    # every r (S2: 0.55 vs 0.13 and 1.0; 0.006 vs 3.5e-5 and 0.13), so a false alarm needs a deviation of
    # more than 5 SE: rate < 1e-6 per comparison
    for r in (1.5, 2.0, 2.5, 3.0):
        k = int(np.sum(res.max_noise >= r))
        lo, hi = bounds.clopper_pearson(k, R)
        assert hi <= bounds.azuma(r, 1.0, s2)          # correct bound holds
        assert lo > bounds.paper_azuma(r, 1.0, s2)     # the paper's printed bound is violated


def test_per_sample_grad_norms_match_twin():
    net, X, Y = _problem(7, widths=(3, 5, 4, 2), N=70)
    th = np.stack([dc.init_params(net, s) for s in range(3)])
    got = mf.per_sample_grad_norms(net, X, Y, th)
    assert got.shape == (3, 70)
    for m in range(3):
        want = [np.linalg.norm(ref.sample_loss_grad(list(net.widths), "tanh", th[m], X[j], Y[j], "mse")[1])
                for j in range(70)]
        np.testing.assert_allclose(got[m], want, rtol=1e-12)
    np.testing.assert_array_equal(mf.per_sample_grad_norms(net, X, Y, th[1]), got[1])


# ------------------------------------------------------------------------------------------
# find_equilibrium: Newton on H, certified by convergence and the eigenvalues of DH
# ------------------------------------------------------------------------------------------
def test_find_equilibrium_two_point_known_root():
    """0.9/0.1 example, lambda = 1: H_b = 0.9 b - 0.1 near b = 1/9 (the y = 10 sample is clipped to -1), and
    H_w = 0 (x = 0). With weight decay mu: root (0, 0.1 / (0.9 + mu)), DH = diag(mu, 0.9 + mu)."""
    net = dc.mlp([1, 1])
    X, Y = dc.data.two_point(counts=(9, 1))
    mu = 0.01
    eq = mf.find_equilibrium(net, X, Y, C.classic(1.0), np.array([0.3, 0.5]), loss="half_mse", weight_decay=mu)
    assert eq.certified and eq.converged and eq.message == "converged"
    np.testing.assert_allclose(eq.theta, [0.0, 0.1 / (0.9 + mu)], rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.sort(eq.eigenvalues.real), [mu, 0.9 + mu], rtol=1e-7)
    assert eq.H_norm <= eq.tol == 1e-12 and eq.H_history[-1] == eq.H_norm and eq.iterations == eq.H_history.size - 1
    assert eq.iterations <= 2                       # H is affine on the segment: one Newton step lands on the root
    s = eq.summary()
    assert s["certified"] is True and s["min_real_eig"] == eq.min_real and len(s["H_history"]) == eq.iterations + 1


def test_find_equilibrium_flat_direction_not_certified():
    """Without weight decay the weight w of the x = 0 input is a flat direction (H_w = 0 for every theta):
    Newton still finds b = 1/9, but DH has a zero eigenvalue, so the root is not isolated: not certified."""
    net = dc.mlp([1, 1])
    X, Y = dc.data.two_point(counts=(9, 1))
    eq = mf.find_equilibrium(net, X, Y, C.classic(1.0), np.array([0.3, 0.5]), loss="half_mse")
    assert eq.converged and not eq.certified
    assert abs(eq.theta[1] - 1 / 9) <= 1e-14 and eq.theta[0] == 0.3
    assert abs(eq.min_real) <= eq.eig_floor


def test_find_equilibrium_saddle_not_certified():
    """All weights 0 and the output bias at mean(y) is a critical point of F (rule none: H = grad F) where
    the Hessian couples input and output weights: a saddle, DH has a negative eigenvalue."""
    net, X, Y = _problem(4, widths=(2, 3, 1), N=30)
    th = np.zeros(net.n_params)
    th[-1] = Y.mean()
    eq = mf.find_equilibrium(net, X, Y, C.none(), th)
    assert eq.converged and eq.iterations <= 1 and not eq.certified
    assert eq.min_real < -1e-3


def _mlp_flow_problem():
    rng = np.random.default_rng(2)
    net = dc.mlp([2, 3, 1])
    X = rng.normal(size=(40, 2))
    Y = np.sin(X[:, :1]) + rng.exponential(size=(40, 1)) - 1          # skewed noise: clipping is biased
    th0 = dc.init_params(net, 0)
    lam = float(np.median(mf.per_sample_grad_norms(net, X, Y, th0)))
    return net, X, Y, th0, C.classic(lam)


def test_find_equilibrium_mlp_quadratic_and_certified():
    """Small clipped MLP with weight decay, started at points of the flow theta' = -(H + mu theta): Newton
    converges quadratically (||H_{k+1}|| <= 1e3 ||H_k||^2 once ||H_k|| <= 1e-4, above roundoff; a linear rate
    of 0.1 would fail that) to the same
    certified root from every start; that root is a zero of H + mu theta, not of grad F + mu theta."""
    from scipy.integrate import solve_ivp
    net, X, Y, th0, rule = _mlp_flow_problem()
    mu = 1e-2
    roots = []
    for T in (60, 100, 150):
        sol = solve_ivp(lambda _, y: -(mf.H(net, X, Y, rule, y) + mu * y), (0, T), th0, method="LSODA",
                        rtol=1e-10, atol=1e-12)
        eq = mf.find_equilibrium(net, X, Y, rule, sol.y[:, -1], weight_decay=mu)
        assert eq.certified and eq.H_norm <= 1e-12 and eq.min_real > 1e-3
        h = eq.H_history
        pairs = [(a, b) for a, b in zip(h[:-1], h[1:]) if a <= 1e-4 and b > 1e-14]
        assert pairs and all(b <= 1e3 * a * a for a, b in pairs), h
        np.testing.assert_allclose(np.linalg.norm(mf.H(net, X, Y, rule, eq.theta) + mu * eq.theta), eq.H_norm,
                                   rtol=0, atol=1e-15)
        roots.append(eq.theta)
    np.testing.assert_allclose(roots[1], roots[0], atol=1e-10)
    np.testing.assert_allclose(roots[2], roots[0], atol=1e-10)
    flow = ode.integrate(net, X, Y, rule, th0, [0.0, 150.0], rtol=1e-10, atol=1e-12, weight_decay=mu).theta[-1]
    np.testing.assert_allclose(flow, sol.y[:, -1], atol=1e-6)          # the library's flow of H_mu, the same end
    assert np.linalg.norm(mf.grad_F(net, X, Y, roots[0]) + mu * roots[0]) > 1e-2      # the clipping bias


def test_find_equilibrium_far_start_not_certified():
    """From the initial point Newton does not reach the root (it stalls or runs out of steps): not certified."""
    net, X, Y, th0, rule = _mlp_flow_problem()
    eq = mf.find_equilibrium(net, X, Y, rule, th0, max_iter=3)
    assert not eq.converged and not eq.certified and eq.iterations <= 3


@pytest.mark.parametrize("kw, name", [(dict(tol=0.0), "tol"), (dict(tol=np.nan), "tol"), (dict(max_iter=0), "max_iter"),
                                      (dict(fd_step=0.1), "fd_step"), (dict(eig_rtol=1.0), "eig_rtol"),
                                      (dict(weight_decay=-1.0), "weight_decay"), (dict(theta_start=np.zeros(3)), "theta_start"),
                                      (dict(loss="l1"), "loss")])
def test_find_equilibrium_validates(kw, name):
    net = dc.mlp([1, 1])
    X, Y = dc.data.two_point(counts=(9, 1))
    args = dict(theta_start=np.array([0.0, 0.5]), loss="half_mse")
    args.update(kw)
    th = args.pop("theta_start")
    with pytest.raises(ValueError, match=name):
        mf.find_equilibrium(net, X, Y, C.classic(1.0), th, **args)


def test_integrate_stops_at_a_non_finite_field():
    """A gradient that overflows at theta0 makes H NaN (clipping propagates it): integrate stops at once
    with a partial result instead of letting the solver retry a NaN step size."""
    net = dc.mlp([1, 1])
    X, Y = np.array([[1e200]]), np.zeros(1)
    with pytest.warns(RuntimeWarning, match="not finite"):
        flow = ode.integrate(net, X, Y, C.classic(1.0), np.array([1.0, 1.0]), [0.0, 1.0])
    assert flow.partial and flow.n_rhs == 1 and "not finite" in flow.message
    np.testing.assert_array_equal(flow.theta[0], [1.0, 1.0])
    assert np.isnan(flow.theta[1]).all()
