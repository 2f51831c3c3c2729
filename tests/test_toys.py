"""dynclip.toys: objectives vs finite differences, the runner vs a plain NumPy loop, exact laws, float32 overflow."""
import math

import numpy as np
import pytest

from dynclip import toys, clipping as C, schedules as S

OBJECTIVES = [toys.quartic_norm(), toys.x4(), toys.cosh(), toys.logistic(), toys.neg_quadratic(0.7)]


# ---- naive NumPy twins ------------------------------------------------------------------
def np_value_grad(obj, th):
    kind = toys.ObjectiveKind(obj.kind)
    if kind == toys.ObjectiveKind.quartic_norm:
        s = th @ th
        return s * s / 4, s * th
    if kind == toys.ObjectiveKind.x4:
        return np.sum(th ** 4), 4 * th ** 3
    if kind == toys.ObjectiveKind.cosh:
        return np.sum(np.cosh(th)), np.sinh(th)
    if kind == toys.ObjectiveKind.logistic:
        return np.sum(np.logaddexp(0, -th)), -1 / (1 + np.exp(th))
    return -obj.k * (th @ th) / 2, -obj.k * th


def np_clip(rule, g, th):
    gn = np.linalg.norm(g)
    kind = C.ClipKind(rule.kind)
    if kind == C.ClipKind.none:
        return g.copy(), False
    if kind in (C.ClipKind.classic, C.ClipKind.adaptive, C.ClipKind.layerwise):
        lam = rule.lam if kind == C.ClipKind.classic else rule.lam * max(np.linalg.norm(th), rule.eps)
        c = max(gn / lam, 1.0)
        return g / c, c > 1
    if kind == C.ClipKind.normalized:
        return g / (gn + rule.beta), True
    if kind == C.ClipKind.value:
        return np.clip(g, -rule.lam, rule.lam), bool(np.any(np.abs(g) > rule.lam))
    raise KeyError(kind)


def np_run(obj, rule, a, th0):
    th = np.array(th0, float)
    norms, fs, clipped = [np.linalg.norm(th)], [np_value_grad(obj, th)[0]], 0
    for at in a:
        _, g = np_value_grad(obj, th)
        u, cl = np_clip(rule, g, th)
        clipped += cl
        th = th - at * u
        norms.append(np.linalg.norm(th))
        fs.append(np_value_grad(obj, th)[0])
    return th, np.array(norms), np.array(fs), clipped


# ---- objectives -------------------------------------------------------------------------
@pytest.mark.parametrize("obj", OBJECTIVES, ids=lambda o: o.name)
def test_value_grad_finite_differences(obj):
    rng = np.random.default_rng(0)
    th = rng.normal(size=4) * 1.5
    f, g = toys.value_and_grad(obj, th)
    f_ref, g_ref = np_value_grad(obj, th)
    assert f == pytest.approx(f_ref, rel=1e-13)
    np.testing.assert_allclose(g, g_ref, rtol=1e-13, atol=1e-15)
    h = 1e-6
    fd = np.array([(toys.value_and_grad(obj, th + h * e)[0] - toys.value_and_grad(obj, th - h * e)[0]) / (2 * h)
                   for e in np.eye(4)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    # batched form and float32
    F, G = toys.value_and_grad(obj, np.stack([th, -th]))
    assert F.shape == (2,) and G.shape == (2, 4) and F[0] == f
    f32, g32 = toys.value_and_grad(obj, th, dtype="float32")
    assert g32.dtype == np.float32
    assert f32 == pytest.approx(f, rel=1e-5)


def test_logistic_is_stable():
    f, g = toys.value_and_grad(toys.logistic(), np.array([-800.0, 800.0]))
    assert f == pytest.approx(800.0) and g[0] == -1.0 and -1e-300 < g[1] <= 0


def test_float32_overflow_of_f_and_grad():
    obj = toys.quartic_norm()
    # ||theta||^4 > 3.4e38 at ||theta|| > 4.3e9; ||theta||^3 > 3.4e38 at ||theta|| > 6.98e12
    f, g = toys.value_and_grad(obj, np.array([5e9]), dtype="float32")
    assert math.isinf(f) and np.all(np.isfinite(g))
    f, g = toys.value_and_grad(obj, np.array([1e13]), dtype="float32")
    assert math.isinf(f) and np.isinf(g[0])
    f, g = toys.value_and_grad(obj, np.array([1e13]))
    assert np.isfinite(f) and np.isfinite(g[0])


# ---- runner -----------------------------------------------------------------------------
@pytest.mark.parametrize("rule", [C.none(), C.classic(0.7), C.adaptive(0.5, 1e-3), C.layerwise(0.5, 1e-3),
                                  C.normalized(0.3), C.value(0.4)], ids=lambda r: r.describe())
@pytest.mark.parametrize("obj", [toys.cosh(), toys.quartic_norm(), toys.logistic(), toys.neg_quadratic(2.0)],
                         ids=lambda o: o.name)
def test_runner_equals_numpy_loop(rule, obj):
    rng = np.random.default_rng(1)
    th0 = rng.normal(size=(3, 3)) * 1.2
    sched = S.inverse(0.5, 2.0)
    T = 40
    res = toys.run(obj, rule, sched, th0, T, record_every=1)
    assert res.norm.shape == (3, T + 1) and list(res.step) == list(range(T + 1))
    for m in range(3):
        th, norms, fs, nclip = np_run(obj, rule, sched.values(0, T), th0[m])
        np.testing.assert_allclose(res.theta_final[m], th, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res.norm[m], norms, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(res.f[m], fs, rtol=1e-12, atol=1e-14)
        assert res.n_clipped[m] == nclip
        assert res.peak_norm[m] == pytest.approx(norms.max(), rel=1e-12)
    assert np.all(res.nonfinite_step == -1) and np.all(res.loss_overflow_step == -1)


@pytest.mark.parametrize("d", [1, 3])
def test_quartic_adaptive_law(d):
    """On clipped steps (||theta|| > sqrt(lam)) theta_{t+1} = (1 - a lam) theta_t exactly."""
    lam, a = 2.0, 0.95
    th0 = np.full((1, d), 50.0 / math.sqrt(d))
    res = toys.run(toys.quartic_norm(), C.adaptive(lam, 1e-3), S.constant(a), th0, 60, record_every=1,
                   checks=True)
    n = res.norm[0]
    clipped = n[:-1] > math.sqrt(lam)
    assert clipped.sum() == res.n_clipped[0] > 5
    np.testing.assert_allclose(n[1:][clipped] / n[:-1][clipped], abs(1 - a * lam), rtol=1e-12)
    assert res.claim2_violations[0] == res.relative_update_violations[0] == res.radial_violations[0] == 0
    assert res.radial_max_error[0] < 1e-14


def test_a2_transient_product_law():
    """a = a0/(k+1), N = a0 lam: the peak is ||theta0|| prod_{k < N/2} (N/k - 1) (THEORY §2.6)."""
    lam, N = 1.0, 30.5
    res = toys.run(toys.quartic_norm(), C.adaptive(lam, 1e-3), S.inverse(N / lam), np.array([[2.0]]), 400,
                   checks=True)
    k = np.arange(1, 16)
    assert res.peak_norm[0] == pytest.approx(2.0 * np.prod(N / k - 1), rel=1e-12)
    assert res.peak_step[0] == 15 and res.norm[0, -1] < 0.1
    assert res.radial_violations[0] == 0


def test_float32_overflow_detection():
    obj, rule = toys.quartic_norm(), C.adaptive(1.0, 1e-3)
    th0 = np.array([[2.0]])
    r32 = toys.run(obj, rule, S.inverse(60.5), th0, 200, dtype="float32")
    r64 = toys.run(obj, rule, S.inverse(60.5), th0, 200)
    assert 0 < r32.loss_overflow_step[0] < r32.grad_overflow_step[0] == r32.nonfinite_step[0]
    assert r32.nonfinite[0] and np.isnan(r32.norm[0, -1])
    assert r64.nonfinite_step[0] == -1 and r64.loss_overflow_step[0] == -1 and r64.norm[0, -1] < 0.1
    # f overflows, the gradient does not: the iteration goes on and recovers
    r = toys.run(obj, rule, S.inverse(40.5), th0, 200, dtype="float32")
    assert r.loss_overflow_step[0] > 0 and r.nonfinite_step[0] == -1 and r.norm[0, -1] < 0.1


def test_huge_gradients_are_clipped_exactly():
    # ||g|| = 1e180: sum g^2 overflows float64; the norms rescale, so the update is exact
    th0 = np.array([[1e60, 0.0]])
    res = toys.run(toys.quartic_norm(), C.adaptive(1.0, 1e-3), S.constant(0.25), th0, 1, record_every=1,
                   checks=True)
    np.testing.assert_allclose(res.theta_final[0], [0.75e60, 0.0], rtol=1e-14)
    assert res.radial_violations[0] == 0
    # max |g| = theta^3 = 1.57e308 lies in [2^1023, 2^1024): the scale itself must not overflow
    res = toys.run(toys.quartic_norm(), C.adaptive(1.0, 1e-3), S.constant(0.25), np.array([[5.4e102]]), 1,
                   checks=True)
    np.testing.assert_allclose(res.theta_final[0], [0.75 * 5.4e102], rtol=1e-14)
    assert res.claim2_violations[0] == res.relative_update_violations[0] == 0
    res = toys.run(toys.neg_quadratic(1.0), C.classic(2.0), S.constant(0.5), np.array([[3e200, 4e200]]), 1)
    np.testing.assert_allclose(res.theta_final[0], [3e200 + 0.6, 4e200 + 0.8], rtol=1e-15)
    res = toys.run(toys.neg_quadratic(1.0), C.normalized(1.0), S.constant(0.5), np.array([[3e200, 4e200]]), 1)
    np.testing.assert_allclose(res.theta_final[0], [3e200 + 0.3, 4e200 + 0.4], rtol=1e-15)


def test_tol_step_and_noise():
    obj, rule = toys.cosh(), C.classic(1.0)
    res = toys.run(obj, rule, S.constant(0.1), np.array([[6.0], [3.0]]), 500, record_every=1, tol=1e-3)
    for m in range(2):
        assert res.tol_step[m] == np.flatnonzero(res.grad_norm[m] <= 1e-3)[0]
    r1 = toys.run(obj, rule, S.constant(0.1), np.zeros((4, 2)), 50, noise_sd=0.1, seed=3)
    r2 = toys.run(obj, rule, S.constant(0.1), np.zeros((4, 2)), 50, noise_sd=0.1, seed=3)
    r3 = toys.run(obj, rule, S.constant(0.1), np.zeros((4, 2)), 50, noise_sd=0.1, seed=4)
    np.testing.assert_array_equal(r1.theta_final, r2.theta_final)
    assert not np.array_equal(r1.theta_final, r3.theta_final)
    assert len({tuple(r) for r in r1.theta_final}) == 4     # independent streams per start


def test_parallel_equals_serial():
    th0 = np.linspace(0.5, 3.0, 8)[:, None] * np.ones((1, 2))
    args = (toys.quartic_norm(), C.adaptive(1.0, 1e-3), S.inverse(5.5))
    big = toys.run(*args, th0, 20_000, record_every=1000)     # 8 * 2e4 * 2 coordinate-steps: parallel kernel
    for m in (0, 5):
        one = toys.run(*args, th0[m:m + 1], 20_000, record_every=1000)
        np.testing.assert_array_equal(big.theta_final[m], one.theta_final[0])
        np.testing.assert_array_equal(big.norm[m], one.norm[0])


def test_bad_input():
    obj, rule, sch = toys.quartic_norm(), C.adaptive(1.0, 1e-3), S.constant(0.1)
    th = np.ones((2, 3))
    cases = [(dict(objective="x4"), "objective"), (dict(rule="adaptive"), "rule"), (dict(schedule=0.1), "schedule"),
             (dict(theta0=np.ones((2, 2, 2))), "theta0"), (dict(theta0=[[np.nan]]), "theta0"),
             (dict(theta0=[[1e39]], dtype="float32"), "theta0"), (dict(n_steps=0), "n_steps"),
             (dict(noise_sd=-1), "noise_sd"), (dict(seed=-1), "seed"), (dict(dtype="float16"), "dtype"),
             (dict(record_every=0), "record_every"), (dict(tol=0), "tol"), (dict(rule=C.unitwise(1.0)), "unitwise"),
             (dict(rule=C.classic(1.0), checks=True), "checks"), (dict(check_tol=-1), "check_tol")]
    for kw, word in cases:
        args = dict(objective=obj, rule=rule, schedule=sch, theta0=th, n_steps=5)
        args.update(kw)
        with pytest.raises(ValueError, match=word):
            toys.run(args.pop("objective"), args.pop("rule"), args.pop("schedule"), args.pop("theta0"),
                     args.pop("n_steps"), **args)
    with pytest.raises(ValueError, match="k must"):
        toys.neg_quadratic(-1)
    with pytest.raises(ValueError, match="dtype"):
        toys.value_and_grad(obj, th, dtype="float16")


# ---- iteration counts -------------------------------------------------------------------
def np_iterations(obj, rule, a, th0, tol, cap, bound):
    """Naive twin of toys.iterations for one configuration and one start."""
    th = np.array(th0, float)
    for k in range(cap + 1):
        _, g = np_value_grad(obj, th)
        if np.linalg.norm(g) <= tol:
            return k
        if not np.linalg.norm(th) <= bound or not np.all(np.isfinite(g)):
            return toys.DIVERGED
        if k == cap:
            break
        th = th - a * np_clip(rule, g, th)[0]
    return toys.CENSORED


ITER_RULES = [C.none(), C.none(), C.none(), C.classic(1.0), C.classic(0.2), C.adaptive(0.5, 1e-2), C.normalized(0.3),
              C.normalized(3.0), C.value(0.5)]
ITER_LR = np.array([0.002, 0.05, 0.9, 0.1, 0.4, 0.1, 0.1, 2.5, 0.2])


@pytest.mark.parametrize("obj, tol", [(toys.cosh(), 1e-4), (toys.x4(), 1e-2), (toys.quartic_norm(), 1e-3),
                                      (toys.logistic(), 0.05)], ids=lambda v: getattr(v, "name", str(v)))
@pytest.mark.parametrize("d", [1, 2])
def test_iterations_equal_numpy_loop(obj, tol, d):
    starts = np.array([[3.0, -0.5], [1.0, 0.2], [0.3, 0.0]])[:, :d]
    got = toys.iterations(obj, ITER_RULES, ITER_LR, starts, tol=tol, max_steps=300, bound=8.0)
    want = np.array([[np_iterations(obj, r, a, s, tol, 300, 8.0) for s in starts] for r, a in zip(ITER_RULES, ITER_LR)])
    np.testing.assert_array_equal(got, want)
    codes = set(np.unique(got[got < 0]).tolist())
    if obj.kind == toys.cosh().kind:             # the set-up exercises every outcome
        assert codes == {toys.DIVERGED, toys.CENSORED} and (got >= 0).any()


def test_iterations_worst_case_and_minimax_pruning():
    obj, starts = toys.cosh(), np.array([[6.0], [4.0], [2.0], [0.5]])
    rules = [C.classic(g) for g in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)] * 2
    lr = np.repeat([0.05, 0.3], 6)
    kw = dict(tol=1e-4, max_steps=5000, bound=20.0)
    per = toys.iterations(obj, rules, lr, starts, **kw)
    worst = toys.iterations(obj, rules, lr, starts, worst_case=True, **kw)
    for i in range(len(rules)):
        bad = per[i] < 0
        assert worst[i] == (per[i][np.argmax(bad)] if bad.any() else per[i].max())
    pruned = toys.iterations(obj, rules, lr, starts, worst_case=True, prune=True, **kw)
    ok = worst >= 0
    assert ok.any() and pruned[pruned >= 0].min() == worst[ok].min()
    best_before = np.minimum.accumulate(np.where(worst >= 0, worst, kw["max_steps"]))
    for i in range(len(rules)):         # a configuration is exact unless it could not beat the best before it
        assert pruned[i] == worst[i] or (pruned[i] == toys.CENSORED and (i == 0 or worst[i] < 0 or
                                                                         worst[i] > best_before[i - 1]))


def test_iterations_one_rule_one_step_and_start_zero():
    th0 = np.array([[2.0], [0.0]])
    got = toys.iterations(toys.cosh(), C.none(), [0.1, 0.2], th0, tol=1e-6, max_steps=1000)
    assert got.shape == (2, 2) and np.all(got[:, 1] == 0) and got[1, 0] < got[0, 0]
    assert toys.iterations(toys.cosh(), C.none(), 0.1, th0[0], tol=1e-6, max_steps=1000).shape == (1, 1)


def test_iterations_bad_input():
    obj, th = toys.cosh(), np.ones((2, 1))
    cases = [(dict(objective="cosh"), "objective"), (dict(rule="none"), "rule"), (dict(rule=[]), "rule"),
             (dict(rule=C.unitwise(1.0)), "unitwise"), (dict(lr=0.0), "lr"), (dict(lr=[[0.1]]), "lr"),
             (dict(lr=[0.1, 0.2], rule=[C.none()] * 3), "same length"), (dict(theta0=[[np.nan]]), "theta0"),
             (dict(tol=-1.0), "tol"), (dict(tol="x"), "tol"), (dict(max_steps=-1), "max_steps"),
             (dict(bound=0.0), "bound"), (dict(prune=True), "prune")]
    for kw, word in cases:
        args = dict(objective=obj, rule=C.none(), lr=0.1, theta0=th, tol=1e-3, max_steps=10)
        args.update(kw)
        with pytest.raises(ValueError, match=word):
            toys.iterations(args.pop("objective"), args.pop("rule"), args.pop("lr"), args.pop("theta0"), **args)


def test_record_theta():
    res = toys.run(toys.logistic(), C.classic(1.0), S.inverse(1.0, 1.0), np.array([[0.0, 1.0], [2.0, -1.0]]), 50,
                   record_every=7, record_theta=True)
    assert res.theta.shape == (2, res.step.size, 2)
    np.testing.assert_array_equal(res.theta[:, -1], res.theta_final)
    np.testing.assert_allclose(np.linalg.norm(res.theta, axis=2), res.norm, rtol=1e-15)
    assert toys.run(toys.logistic(), C.classic(1.0), S.constant(0.1), [1.0], 5).theta is None
    with pytest.raises(ValueError, match="record_theta"):
        toys.run(toys.logistic(), C.classic(1.0), S.constant(0.1), [1.0], 5, record_theta="yes")
