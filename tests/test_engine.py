"""simulate(): replay = plain NumPy loop, reproducibility, sure bound, records, save/load, bad input."""
import numpy as np
import numba
import pytest

import dynclip as dc
from dynclip import clipping as C, schedules as S
from conftest import rule_dict
import reference as ref

RULES = [C.none(), C.classic(0.5), C.classic(0.5, "torch"), C.classic(0.5, "optax"), C.adaptive(0.3, 0.1),
         C.layerwise(0.3, 0.1), C.layerwise(0.3, 0.1, "global"), C.unitwise(0.1, 1e-3), C.value(0.05),
         C.normalized(0.5)]


def _problem(seed=0, N=30, widths=(3, 5, 4, 2), activation="tanh"):
    rng = np.random.default_rng(seed)
    net = dc.mlp(list(widths), activation=activation)
    return net, rng.normal(size=(N, widths[0])), rng.normal(size=(N, widths[-1])) * 2


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.describe())
@pytest.mark.parametrize("B", [1, 4])
@pytest.mark.parametrize("clip_per", ["batch", "sample"])
def test_replay_equals_numpy_loop(rule, B, clip_per):
    net, X, Y = _problem()
    T, R = 25, 2
    sched = S.inverse(0.5, 2.0)
    idx = np.random.default_rng(1).integers(0, len(X), size=(R, T, B))
    th0 = np.stack([dc.init_params(net, 10 + r) for r in range(R)])
    res = dc.simulate(net, X, Y, rule, sched, n_steps=T, seed=0, batch_size=B, n_replicas=R, theta0=th0,
                      indices=idx, clip_per=clip_per, record_every=1, record_theta=True)
    for r in range(R):
        path = ref.sgd(list(net.widths), "tanh", th0[r], X, Y, "mse", rule_dict(rule), sched.values(0, T),
                       idx[r], clip_per=clip_per)
        np.testing.assert_allclose(res.theta[r], path, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res.theta_final[r], path[-1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", ["paper", "code"])
@pytest.mark.parametrize("B", [1, 4])
def test_alrc_replay(variant, B):
    net, X, Y = _problem(2)
    T = 40
    rule = C.alrc(n_sigma=1.0, beta1=0.9, beta2=0.9, mu1=2.0, mu2=8.0, variant=variant)
    sched = S.constant(0.002)
    idx = np.random.default_rng(4).integers(0, len(X), size=(1, T, B))
    th0 = dc.init_params(net, 3)
    res = dc.simulate(net, X, Y, rule, sched, n_steps=T, seed=0, batch_size=B, theta0=th0, indices=idx,
                      loss="quartic", record_every=1, record_theta=True)
    path = ref.sgd(list(net.widths), "tanh", th0, X, Y, "quartic", None, sched.values(0, T), idx[0],
                   alrc=dict(n_sigma=1.0, beta1=0.9, beta2=0.9, mu1=2.0, mu2=8.0, variant=variant))
    assert np.all(np.isfinite(path))
    np.testing.assert_allclose(res.theta[0], path, rtol=1e-12, atol=1e-12)
    assert 0 < res.clip_fraction[0] < 1


def test_projection_replay():
    net, X, Y = _problem(5)
    idx = np.random.default_rng(0).integers(0, len(X), size=(1, 30, 2))
    th0 = dc.init_params(net, 0)
    radius = np.linalg.norm(th0) * 0.9
    res = dc.simulate(net, X, Y, C.none(), S.constant(0.3), n_steps=30, seed=0, batch_size=2, theta0=th0,
                      indices=idx, project_radius=radius, record_every=1, record_theta=True)
    path = ref.sgd(list(net.widths), "tanh", th0, X, Y, "mse", {"kind": "none"}, np.full(30, 0.3), idx[0],
                   project_radius=radius)
    np.testing.assert_allclose(res.theta[0], path, rtol=1e-12, atol=1e-12)
    assert np.all(np.linalg.norm(res.theta[0, 1:], axis=1) <= radius * (1 + 1e-12))


def _run(**kw):
    net, X, Y = _problem(1)
    args = dict(n_steps=300, seed=7, batch_size=2, n_replicas=5, record_every=50)
    args.update(kw)
    return dc.simulate(net, X, Y, C.classic(0.5), S.inverse(1.0, 5.0), **args)


def test_same_seed_bit_identical_and_seed_matters():
    a, b, c = _run(), _run(), _run(seed=8)
    np.testing.assert_array_equal(a.theta_final, b.theta_final)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert not np.array_equal(a.theta_final, c.theta_final)
    # replicas are different streams
    assert not np.array_equal(a.theta_final[0], a.theta_final[1])


def test_threads_bit_identical():
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _run(n_replicas=8)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = _run(n_replicas=8)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(one.theta_final, two.theta_final)
    np.testing.assert_array_equal(one.loss, two.loss)


def test_chunked_equals_unchunked(monkeypatch):
    whole = _run()
    from dynclip import engine
    monkeypatch.setattr(engine, "_CHUNK_WORK", 1.0)   # one step per chunk
    chunked = _run()
    np.testing.assert_array_equal(whole.theta_final, chunked.theta_final)
    np.testing.assert_array_equal(whole.displacement, chunked.displacement)
    np.testing.assert_array_equal(whole.grad_norm, chunked.grad_norm)


def test_replica_stream_depends_only_on_seed_and_index():
    a = _run(n_replicas=3)
    b = _run(n_replicas=6)
    np.testing.assert_array_equal(a.theta_final, b.theta_final[:3])


def test_sure_displacement_bound_every_step():
    net, X, Y = _problem(3)
    lam = 0.2
    sched = S.inverse(1.0, 1.0)
    T = 400
    res = dc.simulate(net, X, Y * 5, C.classic(lam), sched, n_steps=T, seed=1, n_replicas=4, batch_size=3,
                      record_every=1)
    bound = np.concatenate(([0.0], dc.bounds.sure_displacement(lam, sched.values(0, T))))
    assert np.all(res.displacement <= res.update_sum * (1 + 1e-12) + 1e-15)
    assert np.all(res.update_sum <= bound * (1 + 1e-12))
    assert res.clip_fraction.min() > 0.5      # the bound is tested where clipping is active
    assert np.all(res.max_displacement <= bound[-1] * (1 + 1e-12))


def test_records_layout():
    res = _run(n_steps=105, record_every=50)
    np.testing.assert_array_equal(res.step, [0, 50, 100, 105])
    a = S.inverse(1.0, 5.0).values(0, 105)
    np.testing.assert_allclose(res.time, [0, a[:50].sum(), a[:100].sum(), a.sum()], rtol=1e-14)
    assert res.loss.shape == (5, 4) and np.all(np.isnan(res.grad_norm[:, 0])) and np.all(res.grad_norm[:, 1:] > 0)
    assert np.all(res.clip_factor[:, 1:] >= 1.0)
    assert np.all(res.displacement[:, 0] == 0.0)
    net, X, Y = _problem(1)
    # full-data loss at records equals loss_and_grad at the recorded theta
    r2 = _run(n_steps=20, record_every=10, record_theta=True)
    for j in range(3):
        assert r2.loss[0, j] == pytest.approx(dc.loss_and_grad(net, r2.theta[0, j], X, Y)[0], rel=1e-13)


def test_divergence_is_data():
    net, X, Y = _problem(0)
    res = dc.simulate(net, X, Y * 100, C.none(), S.constant(5.0), n_steps=200, seed=0, n_replicas=3,
                      record_every=10, loss="quartic")
    assert res.diverged.all() and res.nonfinite.all()
    assert np.all(res.blowup_step > 0)
    j = np.searchsorted(res.step, res.blowup_step[0])
    assert np.all(np.isnan(res.loss[0, j:]))
    with pytest.raises(FloatingPointError):
        dc.simulate(net, X, Y * 100, C.none(), S.constant(5.0), n_steps=200, seed=0, loss="quartic",
                    nonfinite="raise")
    # blow-up radius
    res = dc.simulate(net, X, Y, C.classic(1.0), S.constant(0.5), n_steps=200, seed=0, n_replicas=2,
                      blowup_radius=0.3)
    assert res.diverged.all() and not res.nonfinite.any()
    assert np.all(res.max_displacement > 0.3)


def test_save_load_roundtrip(tmp_path):
    res = _run(record_theta=True)
    p = tmp_path / "r.npz"
    res.save(p)
    back = dc.SAResult.load(p)
    for name in ("theta_final", "step", "time", "loss", "grad_norm", "clip_factor", "clip_fraction",
                 "displacement", "update_sum", "diverged", "blowup_step", "theta"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))
    assert back.config == res.config and back.noise_norm is None
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        dc.SAResult.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "foreign.npz", a=np.arange(3))
    with pytest.raises(ValueError, match="not a dynclip"):
        dc.SAResult.load(tmp_path / "foreign.npz")
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError):
        dc.SAResult.load(tmp_path / "obj.npz")
    data = p.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        dc.SAResult.load(tmp_path / "trunc.npz")


@pytest.mark.parametrize("kw, match", [
    (dict(n_steps=0), "n_steps"), (dict(n_steps=2.5), "n_steps"), (dict(batch_size=0), "batch_size"),
    (dict(n_replicas=0), "n_replicas"), (dict(seed=-1), "seed"), (dict(seed="a"), "seed"),
    (dict(clip_per="layer"), "clip_per"), (dict(loss="l1"), "loss"), (dict(nonfinite="warn"), "nonfinite"),
    (dict(project_radius=0.0), "project_radius"), (dict(blowup_radius=-1), "blowup_radius"),
    (dict(record_every=0), "record_every"), (dict(theta0=np.zeros(3)), "theta0"),
    (dict(theta0=np.full(47, np.nan)), "theta0"),
    (dict(indices=np.zeros((1, 10, 2), dtype=int)), "indices"),
    (dict(indices=np.full((1, 10, 1), 30)), "indices"), (dict(indices=np.full((1, 10, 1), -1)), "indices"),
    (dict(indices=np.zeros((1, 10, 1))), "indices"),
    (dict(track_noise=True, batch_size=2), "track_noise"),
])
def test_bad_simulate_input(kw, match):
    net, X, Y = _problem(0)
    args = dict(n_steps=10, seed=0)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        dc.simulate(net, X, Y, C.classic(1.0), S.constant(0.1), **args)


def test_bad_simulate_data_and_rule():
    net, X, Y = _problem(0)
    Xb = X.copy()
    Xb[1, 1] = np.nan
    with pytest.raises(ValueError, match="X"):
        dc.simulate(net, Xb, Y, C.classic(1.0), S.constant(0.1), n_steps=5, seed=0)
    with pytest.raises(ValueError, match="Y"):
        dc.simulate(net, X, Y[:, :1], C.classic(1.0), S.constant(0.1), n_steps=5, seed=0)
    with pytest.raises(ValueError, match="rule"):
        dc.simulate(net, X, Y, "classic", S.constant(0.1), n_steps=5, seed=0)
    with pytest.raises(ValueError, match="schedule"):
        dc.simulate(net, X, Y, C.classic(1.0), 0.1, n_steps=5, seed=0)
    with pytest.raises(ValueError, match="a0"):
        S.inverse(0.0)
    with pytest.raises(ValueError, match="kappa"):
        S.power(1.0, 1.0, -1)


def test_schedules():
    assert S.inverse(2.0, 3.0).satisfies_a2 and S.power(1, 1, 0.75).satisfies_a2
    assert not S.power(1, 1, 0.5).satisfies_a2 and not S.constant(0.1).satisfies_a2
    np.testing.assert_allclose(S.power(2.0, 3.0, 0.6).values(0, 4), 2.0 / (np.arange(4) + 3.0) ** 0.6)
    t = S.ode_time(S.inverse(1.0), 3)
    np.testing.assert_allclose(t, [0, 1, 1.5, 1.5 + 1 / 3])


def test_huge_but_finite_gradients_are_not_frozen():
    """||g||^2 overflows for ||g|| > 1e154 although g is finite: norms must rescale, not return inf."""
    g = np.array([1e160, -1e160])
    u, c = C.clip(C.classic(1.0), g)
    np.testing.assert_allclose(u, [np.sqrt(0.5), -np.sqrt(0.5)], rtol=1e-15)
    u, c = C.clip(C.adaptive(1.0, 1e-3), np.array([1e160]), np.array([1e53]))
    assert u[0] == pytest.approx(1e53, rel=1e-15)
    tiny = np.array([3e-170, 4e-170])
    assert C.clip(C.normalized(0.0), tiny)[0] == pytest.approx([0.6, 0.8], rel=1e-15)


def test_progress_bar_on_request_silent_otherwise(capsys):
    _run(progress=True)
    assert "simulate" in capsys.readouterr().err
    _run(progress=False)
    _run()                      # not a terminal: silent by default
    assert capsys.readouterr().err == ""


def test_overflow_to_inf_is_divergence_even_with_infinite_radius():
    """Found by the property tests: ||theta - theta_0|| = inf passed `d <= inf`, so a replica whose
    parameters overflowed was not marked diverged."""
    net = dc.mlp([2, 4, 2, 1], "gelu")
    res = dc.simulate(net, np.zeros((1, 2)), np.array([[4.0]]), C.none(), S.constant(1.0), n_steps=4, seed=0,
                      loss="quartic", record_every=1)
    assert res.diverged[0] and res.nonfinite[0] and res.blowup_step[0] == 4
    assert np.all(np.isfinite(res.loss[0, :3])) and np.isnan(res.loss[0, 4])   # record 3: theta finite, loss overflows


def test_tiny_parameters_keep_the_sure_bound():
    """Found by the property tests: squares of 1e-158 are subnormal, and sqrt of a subnormal sum
    lost enough precision to break ||theta_s - theta_0|| <= S_s."""
    net = dc.mlp([1, 1])
    res = dc.simulate(net, np.zeros((1, 1)), np.zeros((1, 1)), C.none(), S.constant(0.0078125), n_steps=1,
                      seed=0, theta0=np.full(2, 1.20191802e-156))
    assert np.all(res.displacement <= res.update_sum * (1 + 1e-12))
    assert res.displacement[0, 1] > 0


def test_all_nan_parameters_are_divergence():
    """A NaN must not be skipped when the overflow-safe norms look for the largest entry."""
    res = dc.simulate(dc.mlp([2, 1]), np.zeros((4, 2)), np.array([[133955509475.0], [0], [0], [0]]),
                      C.classic(1e300), S.constant(1.0), n_steps=3, seed=0, loss="quartic")
    assert res.diverged[0] and res.nonfinite[0]


# ---- a non-finite gradient norm stops the replica, even when the clipped update is finite ---------
def _overflowing_gradient_problem():
    """f = w x + b, mse, x = 1, y = -7.5e307: at theta = 0 the gradient (2 e x, 2 e) = (1.5e308, 1.5e308)
    is finite but its norm 2.1e308 overflows to inf (and the loss is inf). Clipping rescales it to a
    finite update, so theta stays finite: only the gradient norm tells that the step is not sane."""
    return dc.mlp([1, 1]), np.array([[1.0], [1.0]]), np.array([[-7.5e307], [-7.5e307]]), np.zeros(2)


def _nan_gradient_problem():
    """Logits +-1e10 x with x = 1e300 are +-inf: the cross-entropy loss and its gradient are NaN."""
    return dc.mlp([1, 2]), np.array([[1e300], [1e300]]), np.array([0, 1]), np.array([1e10, -1e10, 0.0, 0.0])


ALL_RULES = RULES + [C.alrc(n_sigma=1.0, mu1=2.0, mu2=8.0), C.alrc(n_sigma=1.0, mu1=2.0, mu2=8.0, variant="code")]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.describe())
@pytest.mark.parametrize("problem", ["overflow", "nan"])
@pytest.mark.parametrize("clip_per", ["batch", "sample"])
def test_nonfinite_gradient_norm_stops_the_replica(rule, problem, clip_per):
    if clip_per == "sample" and rule.kind == C.ClipKind.alrc:
        pytest.skip("alrc clips per example already")
    net, X, Y, th0 = _overflowing_gradient_problem() if problem == "overflow" else _nan_gradient_problem()
    loss = "mse" if problem == "overflow" else "cross_entropy"
    res = dc.simulate(net, X, Y, rule, S.constant(0.1), n_steps=5, seed=0, batch_size=2, theta0=th0,
                      clip_per=clip_per, loss=loss, record_every=1)
    assert res.diverged[0] and res.nonfinite[0] and res.blowup_step[0] == 1
    assert np.all(np.isnan(res.loss[0, 2:]))
    with pytest.raises(FloatingPointError):
        dc.simulate(net, X, Y, rule, S.constant(0.1), n_steps=5, seed=0, batch_size=2, theta0=th0,
                    clip_per=clip_per, loss=loss, nonfinite="raise")


def test_overflowing_gradient_norm_with_a_finite_update():
    """The case the old engine missed: ||g|| = inf, u finite, theta finite -> it kept running."""
    net, X, Y, th0 = _overflowing_gradient_problem()
    for rule in (C.classic(1.0), C.none(), C.alrc(n_sigma=1.0, mu1=2.0, mu2=8.0)):
        res = dc.simulate(net, X, Y, rule, S.constant(0.1), n_steps=5, seed=0, theta0=th0, loss="mse",
                          record_every=1)
        assert np.all(np.isfinite(res.theta_final[0])), rule.describe()   # the update was finite ...
        assert res.nonfinite[0] and res.diverged[0] and res.blowup_step[0] == 1   # ... the gradient norm was not
        assert np.isfinite(res.max_displacement[0])          # theta stayed finite: the displacement is honest
        assert res.clip_fraction[0] == (0.0 if rule.kind == C.ClipKind.none else 1.0)


# ---- ALRC, variant "code" at B > 1: the authors' alrc.py updates mu2 with the mean of the SQUARED
# capped losses (tf.reduce_mean(loss**2)), not the square of their mean ----------------------------
@pytest.mark.parametrize("variant", ["paper", "code"])
def test_alrc_moments_by_hand_from_the_replayed_indices(variant):
    net, X, Y = _problem(2)
    T, B, b1, b2, n, mu0 = 30, 4, 0.9, 0.8, 1.0, (2.0, 8.0)
    rule = C.alrc(n_sigma=n, beta1=b1, beta2=b2, mu1=mu0[0], mu2=mu0[1], variant=variant)
    idx = np.random.default_rng(4).integers(0, len(X), size=(1, T, B))
    res = dc.simulate(net, X, Y, rule, S.constant(0.002), n_steps=T, seed=0, batch_size=B,
                      theta0=dc.init_params(net, 3), indices=idx, loss="quartic", record_every=1,
                      record_theta=True)
    # tracking the noise sum (which computes H at every step) must not change the run
    tracked = dc.simulate(net, X, Y, rule, S.constant(0.002), n_steps=T, seed=0, batch_size=B,
                          theta0=dc.init_params(net, 3), indices=idx, loss="quartic", record_every=1,
                          track_noise=True)
    np.testing.assert_array_equal(tracked.alrc_moments, res.alrc_moments)
    np.testing.assert_array_equal(tracked.theta_final, res.theta_final)
    mu1, mu2 = mu0
    old1, old2 = mu0                                   # the former code variant: (mean capped)^2
    n_capped = 0
    for k in range(T):
        L = np.array([ref.sample_loss_grad(list(net.widths), "tanh", res.theta[0, k], X[i], Y[i], "quartic")[0]
                      for i in idx[0, k]])
        lmax = mu1 + n * np.sqrt(max(mu2 - mu1 ** 2, 0.0) + (1e-8 if variant == "code" else 0.0))
        Lc = np.minimum(L, lmax)
        n_capped += int(np.sum(L > lmax))
        if variant == "code":
            m1, m2 = Lc.mean(), (Lc ** 2).mean()
        else:
            m1 = L.mean()
            m2 = m1 ** 2
        if variant == "code":
            lmax_old = old1 + n * np.sqrt(max(old2 - old1 ** 2, 0.0) + 1e-8)
            c_old = np.minimum(L, lmax_old).mean()
            old1, old2 = b1 * old1 + (1 - b1) * c_old, b2 * old2 + (1 - b2) * c_old ** 2
        mu1, mu2 = b1 * mu1 + (1 - b1) * m1, b2 * mu2 + (1 - b2) * m2
    assert 0 < n_capped < T * B                         # the cap was active and not always
    np.testing.assert_allclose(res.alrc_moments[0], [mu1, mu2], rtol=1e-12)
    if variant == "code":                               # the test separates the two formulas
        assert abs(old2 - mu2) > 1e-3 * mu2
