"""dynclip.gd: full-batch (clipped) GD against a naive twin, its stopping rules and records, the field, bad input."""
import numpy as np
import pytest

import dynclip as dc
from dynclip import clipping as C, gd, meanfield as mf
from conftest import rule_dict
import reference as ref

RULES = [C.none(), C.classic(0.5), C.adaptive(0.3, 0.1), C.layerwise(0.2, 0.1), C.unitwise(0.1), C.value(0.1),
         C.normalized(1.0)]


def _problem(seed=0, widths=(3, 6, 2), N=25):
    rng = np.random.default_rng(seed)
    return dc.mlp(list(widths)), rng.normal(size=(N, widths[0])), 2 * rng.normal(size=(N, widths[-1]))


@pytest.mark.parametrize("mu", [0.0, 0.05])
def test_run_equals_naive_twin(mu):
    net, X, Y = _problem()
    th0 = np.stack([dc.init_params(net, s) * 1.5 for s in range(len(RULES))])
    lr = np.linspace(0.05, 0.3, len(RULES))
    T = 25
    res = gd.run(net, X, Y, RULES, lr, T, th0, weight_decay=mu)
    assert res.loss.shape == (len(RULES), T + 1) and list(res.step) == list(range(T + 1))
    for m, rule in enumerate(RULES):
        losses, th, hit, div = ref.full_batch_gd(list(net.widths), "tanh", th0[m], X, Y, "mse", rule_dict(rule), lr[m],
                                                 T, weight_decay=mu)
        assert (res.target_step[m], res.diverged_step[m], res.stopped_step[m]) == (hit, div, -1)
        np.testing.assert_allclose(res.theta_final[m], th, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(res.loss[m], losses, rtol=1e-11)


def test_one_rule_for_all_and_threads_do_not_change_the_result():
    net, X, Y = _problem(1)
    th0 = np.stack([dc.init_params(net, s) for s in range(6)])
    a = gd.run(net, X, Y, C.classic(0.3), 0.2, 40, th0, record_every=7)
    b = gd.run(net, X, Y, [C.classic(0.3)] * 6, np.full(6, 0.2), 40, th0, record_every=7, threads=1)
    np.testing.assert_array_equal(a.theta_final, b.theta_final)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert list(a.step) == [0, 7, 14, 21, 28, 35] and a.loss.shape == (6, 6)
    one = gd.run(net, X, Y, C.classic(0.3), 0.2, 40, th0[3])          # a single start (P,)
    np.testing.assert_array_equal(one.theta_final[0], a.theta_final[3])


def test_target_divergence_and_race():
    net, X, Y = _problem(2)
    th = dc.init_params(net, 0)
    F0 = mf.F(net, X, Y, th)
    th0 = np.stack([th] * 4)
    lr = np.array([0.02, 0.1, 50.0, 0.1])
    kw = dict(target=0.8 * F0, blowup_factor=10.0)
    free = gd.run(net, X, Y, C.none(), lr, 500, th0, **kw)
    assert free.target_step[0] > free.target_step[1] > 0 and free.diverged_step[2] > 0
    assert free.loss[2, free.diverged_step[2]] > 10 * F0 or not np.isfinite(free.loss[2, free.diverged_step[2]])
    for m in (0, 1, 3):                                   # target: the first step at or below it
        k = free.target_step[m]
        assert free.loss[m, k] <= 0.8 * F0 < free.loss[m, k - 1] and np.all(np.isnan(free.loss[m, k + 1:]))
    race = gd.run(net, X, Y, C.none(), lr, 500, th0, race=np.array([0, 0, 0, -1]), **kw)
    # replica 1 wins; replica 0 stops at its step; replica 2 diverged before; replica 3 races nobody
    assert race.target_step[1] == free.target_step[1] and race.target_step[3] == free.target_step[3]
    assert race.stopped_step[0] == free.target_step[1] and race.target_step[0] == -1
    assert race.diverged_step[2] == free.diverged_step[2] and race.stopped_step[2] == -1
    k = race.stopped_step[0]
    np.testing.assert_array_equal(race.loss[0, :k + 1], free.loss[0, :k + 1])


def test_pairs_are_consecutive_iterates():
    net, X, Y = _problem(3)
    th0 = np.stack([dc.init_params(net, s) for s in range(2)])
    rule, lr, mu = C.classic(0.4), np.array([0.1, 0.3]), 0.01
    res = gd.run(net, X, Y, rule, lr, 20, th0, pair_every=6, weight_decay=mu)
    assert res.pair_from.shape == (2, 4, net.n_params)                   # k = 0, 6, 12, 18
    np.testing.assert_array_equal(res.pair_from[:, 0], th0)
    for m in range(2):
        step = res.pair_to[m] - res.pair_from[m]
        np.testing.assert_allclose(step, -lr[m] * gd.field(net, X, Y, rule, res.pair_from[m], weight_decay=mu),
                                   rtol=1e-12, atol=1e-15)
    short = gd.run(net, X, Y, rule, lr, 12, th0, weight_decay=mu)        # theta_12 is where pair 2 starts
    np.testing.assert_array_equal(short.theta_final, res.pair_from[:, 2])


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.describe())
def test_field_equals_naive_twin(rule):
    net, X, Y = _problem(4)
    th = np.stack([dc.init_params(net, s) * 2 for s in range(3)])
    F = gd.field(net, X, Y, rule, th, weight_decay=0.02)
    for m in range(3):
        g = ref.loss_grad(list(net.widths), "tanh", th[m], X, Y, "mse")[1]
        want = ref.clip(rule_dict(rule), g, th[m], list(net.widths)) + 0.02 * th[m]
        np.testing.assert_allclose(F[m], want, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(gd.field(net, X, Y, rule, th[1], weight_decay=0.02), F[1])


def test_field_is_grad_F_where_nothing_is_clipped():
    net, X, Y = _problem(5)
    th = dc.init_params(net, 0)
    big = 10 * np.linalg.norm(mf.grad_F(net, X, Y, th))
    np.testing.assert_array_equal(gd.field(net, X, Y, C.classic(big), th, weight_decay=0.1),
                                  mf.grad_F(net, X, Y, th, weight_decay=0.1))


@pytest.mark.parametrize("kw, name", [
    (dict(rule="classic"), "rule"), (dict(rule=C.alrc()), "rule"), (dict(rule=[C.none()] * 3), "rule"),
    (dict(lr=0.0), "lr"), (dict(lr=np.nan), "lr"), (dict(lr=np.ones(3)), "lr"), (dict(n_steps=0), "n_steps"),
    (dict(theta0=np.ones((2, 3))), "theta0"), (dict(theta0=np.full((2, 33), np.nan)), "theta0"),
    (dict(weight_decay=-1.0), "weight_decay"), (dict(target=np.nan), "target"),
    (dict(blowup_factor=1.0), "blowup_factor"), (dict(race=np.zeros(3, int)), "race"),
    (dict(race=np.zeros(2)), "race"), (dict(record_every=0), "record_every"), (dict(pair_every=-1), "pair_every"),
    (dict(threads=0), "threads"), (dict(loss="l1"), "loss")])
def test_run_validates(kw, name):
    net, X, Y = _problem()
    args = dict(rule=C.classic(1.0), lr=0.1, n_steps=5, theta0=np.stack([dc.init_params(net, s) for s in range(2)]))
    args.update(kw)
    with pytest.raises(ValueError, match=name):
        gd.run(net, X, Y, args.pop("rule"), args.pop("lr"), args.pop("n_steps"), args.pop("theta0"), **args)


def test_field_validates():
    net, X, Y = _problem()
    th = dc.init_params(net, 0)
    for kw, name in ((dict(rule=[C.none()]), "rule"), (dict(theta=np.ones(3)), "theta"),
                     (dict(weight_decay=np.inf), "weight_decay")):
        args = dict(rule=C.none(), theta=th)
        args.update(kw)
        with pytest.raises(ValueError, match=name):
            gd.field(net, X, Y, args.pop("rule"), args.pop("theta"), **args)


def test_full_batch_flow_equals_solve_ivp_of_the_field():
    from scipy.integrate import solve_ivp
    from dynclip import ode
    net, X, Y = _problem(6)
    th0, rule, mu = dc.init_params(net, 1) * 2, C.classic(0.3), 0.05
    t = np.array([0.0, 0.5, 2.0, 5.0])
    fl = ode.integrate(net, X, Y, rule, th0, t, method="RK45", rtol=1e-10, atol=1e-12, weight_decay=mu,
                       full_batch=True)
    sol = solve_ivp(lambda _, y: -gd.field(net, X, Y, rule, y, weight_decay=mu), (0.0, 5.0), th0, method="RK45",
                    t_eval=t, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(fl.theta, sol.y.T)
    np.testing.assert_allclose(fl.H_norm, np.linalg.norm(gd.field(net, X, Y, rule, fl.theta, weight_decay=mu), axis=1),
                               rtol=1e-14)
    # per-sample clipping (the default flow of H) is a different flow
    assert not np.allclose(ode.integrate(net, X, Y, rule, th0, t, weight_decay=mu).theta[-1], fl.theta[-1])
    for kw, name in ((dict(full_batch="yes"), "full_batch"), (dict(full_batch=True, rule=C.alrc()), "rule")):
        args = dict(rule=rule)
        args.update(kw)
        with pytest.raises(ValueError, match=name):
            ode.integrate(net, X, Y, args.pop("rule"), th0, t, **args)
