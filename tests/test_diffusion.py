"""Jacobian DH, update covariance Q, and the diffusion (linear-noise) approximation of clipped SGD."""
import numpy as np
import pytest
from scipy.linalg import expm

import dynclip as dc
from dynclip import clipping as C, schedules as S, meanfield as mf, diffusion as dfn
from conftest import rule_dict
import reference as ref


def _linear():
    """Linear regression, 2 inputs (P = 3), Gaussian design, mse."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    Y = X @ np.array([[1.0], [-0.5]]) + 0.3 + 0.5 * rng.normal(size=(40, 1))
    return dc.mlp([2, 1]), X, Y


def _mlp():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 2))
    return dc.mlp([2, 4, 1]), X, np.sin(X[:, :1]) + 0.3 * rng.normal(size=(30, 1))


def _relerr(A, B):
    return float(np.linalg.norm(A - B) / np.linalg.norm(B))


# ------------------------------------------------------------------------------------------
# jacobian
# ------------------------------------------------------------------------------------------
def test_jacobian_unclipped_linear_is_the_hessian():
    """Linear net, mse, no clipping: H = grad F and DH = (2/N) sum x~ x~^T exactly (x~ = (x, 1))."""
    net, X, Y = _linear()
    th = np.array([0.3, -1.2, 0.5])
    J = mf.jacobian(net, X, Y, C.none(), th)
    Xt = np.hstack([X, np.ones((len(X), 1))])
    assert _relerr(J, 2 * Xt.T @ Xt / len(X)) < 1e-9       # FD error ~ eps**(2/3) ~ 4e-11 (H is affine)


def test_jacobian_unclipped_mlp_symmetric():
    """No clipping: DH is the Hessian of F, symmetric up to the finite-difference error (~1e-10 relative)."""
    net, X, Y = _mlp()
    J = mf.jacobian(net, X, Y, C.none(), dc.init_params(net, 3))
    assert np.linalg.norm(J - J.T) / np.linalg.norm(J) < 1e-8


@pytest.mark.parametrize("rule", [C.classic(0.4), C.layerwise(0.3, 0.1), C.unitwise(0.3), C.normalized(0.5)],
                         ids=lambda r: r.describe())
def test_jacobian_against_fd_of_naive_H(rule):
    """DH against central differences (h = 1e-5, Richardson-free) of the naive twin's H: both errors are
    ~1e-10 relative where H is smooth; the random point is a.s. not on a clipping switch.
    Clipping is active at the point (some samples clipped, some not), so the clipped branch is tested."""
    net, X, Y = _mlp()
    th = dc.init_params(net, 5)
    J = mf.jacobian(net, X, Y, rule, th)
    h = 1e-5
    cols = []
    for i in range(net.n_params):
        e = np.zeros(net.n_params)
        e[i] = h
        Hp = ref.mean_field(list(net.widths), "tanh", th + e, X, Y, "mse", rule_dict(rule))
        Hm = ref.mean_field(list(net.widths), "tanh", th - e, X, Y, "mse", rule_dict(rule))
        cols.append((Hp - Hm) / (2 * h))
    assert _relerr(J, np.array(cols).T) < 1e-8         # measured 3e-11 .. 5e-10; 1e-7 .. 1e-8 at h = 1e-4 (h^2)
    if rule.kind == C.ClipKind.classic:
        n = mf.per_sample_grad_norms(net, X, Y, th)
        assert 0 < np.sum(n > rule.lam) < len(n)


def test_jacobian_at_a_clipping_switch_is_the_mean_of_one_sided_derivatives():
    """Two-point problem, classic lambda = 1, half_mse: near b = 1, H_b = 0.9 min(b, 1) - 0.1 (the y = 0 sample
    switches at b = 1, the y = 10 sample is clipped to -1). At the switch the left derivative is 0.9, the right
    one 0: the central difference returns their mean, 0.45; a step away from the switch gives 0.9 or 0."""
    net = dc.mlp([1, 1])
    X, Y = dc.data.two_point(counts=(9, 1))
    rule = C.classic(1.0)
    for b, want in ((1.0, 0.45), (1.0 - 1e-3, 0.9), (1.0 + 1e-3, 0.0)):
        J = mf.jacobian(net, X, Y, rule, np.array([0.0, b]), loss="half_mse")
        assert abs(J[1, 1] - want) < 1e-9, (b, J)


def test_jacobian_batch_settings():
    """Where H is exact it does not depend on the batch size: the same J; minibatch clipping at B > 1
    (H only estimated) is refused with the engine's wording."""
    net, X, Y = _mlp()
    th = dc.init_params(net, 2)
    rule = C.classic(0.4)
    J1 = mf.jacobian(net, X, Y, rule, th)
    np.testing.assert_array_equal(mf.jacobian(net, X, Y, rule, th, batch_size=4, clip_per="sample"), J1)
    with pytest.raises(ValueError, match="jacobian needs an exactly computable mean field H: use batch_size=1"):
        mf.jacobian(net, X, Y, rule, th, batch_size=4)
    Jn = mf.jacobian(net, X, Y, C.none(), th, batch_size=4)           # none: exact at any B
    np.testing.assert_array_equal(Jn, mf.jacobian(net, X, Y, C.none(), th))
    np.testing.assert_allclose(mf.jacobian(net, X, Y, rule, th, weight_decay=0.3), J1 + 0.3 * np.eye(net.n_params),
                               rtol=0, atol=1e-8)


# ------------------------------------------------------------------------------------------
# noise_covariance
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", [C.none(), C.classic(0.4), C.adaptive(0.3, 0.1), C.layerwise(0.3, 0.1),
                                  C.unitwise(0.3), C.value(0.1), C.normalized(0.5)], ids=lambda r: r.describe())
def test_noise_covariance_equals_naive_twin(rule):
    net, X, Y = _mlp()
    th = dc.init_params(net, 4)
    Q = mf.noise_covariance(net, X, Y, rule, th)
    np.testing.assert_allclose(Q, ref.noise_covariance(list(net.widths), "tanh", th, X, Y, "mse", rule_dict(rule)),
                               rtol=1e-10, atol=1e-14 * np.abs(Q).max())
    np.testing.assert_array_equal(Q, Q.T)
    assert np.linalg.eigvalsh(Q).min() > -1e-12 * np.abs(Q).max()
    np.testing.assert_allclose(mf.per_sample_updates(net, X, Y, rule, th).mean(axis=0), mf.H(net, X, Y, rule, th),
                               rtol=1e-12, atol=1e-15)


def test_noise_covariance_minibatch():
    """B iid per-sample updates averaged: Q_1 / B (clip_per="sample", and rule none with batch clipping);
    minibatch clipping at B > 1 is refused."""
    net, X, Y = _mlp()
    th = dc.init_params(net, 4)
    rule = C.classic(0.4)
    Q1 = mf.noise_covariance(net, X, Y, rule, th)
    np.testing.assert_allclose(mf.noise_covariance(net, X, Y, rule, th, batch_size=5, clip_per="sample"), Q1 / 5,
                               rtol=1e-14)
    np.testing.assert_allclose(mf.noise_covariance(net, X, Y, C.none(), th, batch_size=5),
                               mf.noise_covariance(net, X, Y, C.none(), th) / 5, rtol=1e-14)
    with pytest.raises(ValueError, match="noise_covariance needs an exactly computable mean field H"):
        mf.noise_covariance(net, X, Y, rule, th, batch_size=5)


def test_noise_covariance_one_step_of_sgd():
    """Q is the covariance of one SGD step's update: simulate one step from theta for R replicas, B = 3
    per-sample clipping. Each entry's z-score (sample covariance minus Q, over its standard error) is
    checked; max |z| < 4.5 over the 28 distinct entries of a 7x7 block has false-alarm rate
    <= 28 * 6.8e-6 = 2e-4 (normal approximation, union bound)."""
    net, X, Y = _mlp()
    th = dc.init_params(net, 4)
    rule, a, R = C.classic(0.4), 0.1, 40000
    res = dc.simulate(net, X, Y, rule, S.constant(a), n_steps=1, seed=3, batch_size=3, clip_per="sample",
                      n_replicas=R, theta0=th, record_every=1)
    U = (th - res.theta_final)[:, :7] / a
    D = U - U.mean(axis=0)
    prods = np.einsum("ri,rj->rij", D, D)
    Q = mf.noise_covariance(net, X, Y, rule, th, batch_size=3, clip_per="sample")[:7, :7]
    z = (prods.mean(axis=0) - Q) / (prods.std(axis=0, ddof=1) / np.sqrt(R))
    assert np.max(np.abs(z[np.triu_indices(7)])) < 4.5


# ------------------------------------------------------------------------------------------
# stationary_covariance
# ------------------------------------------------------------------------------------------
def test_stationary_covariance_solves_lyapunov():
    net, X, Y = _mlp()
    rule = C.classic(0.4)
    eq = mf.find_equilibrium(net, X, Y, rule, dc.init_params(net, 0), weight_decay=0.05)
    assert eq.certified
    S1 = dfn.stationary_covariance(net, X, Y, rule, eq.theta, 1.0, weight_decay=0.05)
    J = mf.jacobian(net, X, Y, rule, eq.theta, weight_decay=0.05)
    Q = mf.noise_covariance(net, X, Y, rule, eq.theta)
    assert np.linalg.norm(J @ S1 + S1 @ J.T - Q) <= 1e-10 * np.linalg.norm(Q)
    np.testing.assert_array_equal(S1, S1.T)
    np.testing.assert_allclose(dfn.stationary_covariance(net, X, Y, rule, eq.theta, 0.01, weight_decay=0.05),
                               0.01 * S1, rtol=1e-12)
    assert np.linalg.eigvalsh(S1).min() > -1e-12 * np.abs(S1).max()          # PSD (Q may be singular)


def test_stationary_covariance_refuses_unstable():
    """A saddle of F (rule none): all weights 0, the output bias at mean(y); and a flat direction
    (the two-point problem without weight decay, whose weight w sees x = 0)."""
    net, X, Y = _mlp()
    th = np.zeros(net.n_params)
    th[-1] = Y.mean()
    with pytest.raises(ValueError, match="is not stable"):
        dfn.stationary_covariance(net, X, Y, C.none(), th, 0.1)
    net2 = dc.mlp([1, 1])
    X2, Y2 = dc.data.two_point(counts=(9, 1))
    with pytest.raises(ValueError, match="is not stable"):
        dfn.stationary_covariance(net2, X2, Y2, C.classic(1.0), np.array([0.0, 1 / 9]), 0.1, loss="half_mse")


def test_stationary_covariance_warns_off_equilibrium():
    net, X, Y = _linear()
    with pytest.warns(RuntimeWarning, match="not an equilibrium"):
        dfn.stationary_covariance(net, X, Y, C.none(), np.zeros(3), 0.1)


@pytest.mark.parametrize("kw, name", [(dict(step=0.0), "step"), (dict(step=np.inf), "step"),
                                      (dict(theta_star=np.zeros(2)), "theta_star"), (dict(batch_size=0), "batch_size"),
                                      (dict(clip_per="layer"), "clip_per"), (dict(loss="l1"), "loss"),
                                      (dict(weight_decay=-1.0), "weight_decay"), (dict(rule="classic"), "rule")])
def test_stationary_covariance_validates(kw, name):
    net, X, Y = _linear()
    args = dict(rule=C.none(), theta_star=np.zeros(3), step=0.1)
    args.update(kw)
    with pytest.raises(ValueError, match=name):
        dfn.stationary_covariance(net, X, Y, args.pop("rule"), args.pop("theta_star"), args.pop("step"), **args)


def _exact_case(clipped):
    """(net, X, Y, loss, rule, weight decay, theta*) of a problem whose constant-step SGD covariance is exact:
    linear regression without clipping; the two-point problem (classic lambda = 1, the y = 10 sample is
    clipped to a constant update at theta*, the y = 0 sample is far from its switch), weight decay 0.1."""
    if clipped:
        net = dc.mlp([1, 1])
        X, Y = dc.data.two_point(counts=(9, 1))
        rule, mu, loss = C.classic(1.0), 0.1, "half_mse"
    else:
        (net, X, Y), rule, mu, loss = _linear(), C.none(), 0.0, "mse"
    eq = mf.find_equilibrium(net, X, Y, rule, np.array([0.0, 0.5]) if clipped else np.zeros(3), loss=loss,
                             weight_decay=mu)
    assert eq.certified and eq.H_norm <= 1e-12
    return net, X, Y, loss, rule, mu, eq.theta


@pytest.mark.parametrize("clipped", [False, True], ids=["linear-unclipped", "two-point-clipped"])
def test_stationary_covariance_first_order_in_a(clipped):
    """Against the exact constant-step covariance C_a (discrete Lyapunov equation with the multiplicative
    term, tests/reference.py): ||C_a - a Sigma|| / ||C_a|| = O(a), fitted log-log slope 1 +- 0.05 over
    a = 0.04 .. 0.005 (deterministic: no sampling)."""
    net, X, Y, loss, rule, mu, th = _exact_case(clipped)
    a_s = np.array([0.04, 0.02, 0.01, 0.005])
    err = []
    for a in a_s:
        Ca = ref.affine_sgd_stationary_cov(list(net.widths), th, X, Y, loss, rule_dict(rule), a, weight_decay=mu)
        err.append(_relerr(dfn.stationary_covariance(net, X, Y, rule, th, a, loss=loss, weight_decay=mu), Ca))
    slope = np.polyfit(np.log(a_s), np.log(err), 1)[0]
    assert abs(slope - 1) < 0.05, (err, slope)
    assert err[-1] < 0.05


@pytest.mark.parametrize("clipped", [False, True], ids=["linear-unclipped", "two-point-clipped"])
def test_stationary_covariance_against_sgd_replicas(clipped):
    """Constant-step SGD from theta*, R replicas, burn-in 15 / (a lambda_min(J)) steps (the start's
    memory e^-30): the sample covariance of the final iterates against the exact C_a (z-score per entry,
    standard error from the replicas' products) and against a Sigma (within the exact O(a) term plus the
    sampling error). Max |z| < 4.5 over <= 6 entries: false-alarm rate <= 6 * 6.8e-6 = 4e-5."""
    net, X, Y, loss, rule, mu, th = _exact_case(clipped)
    a, R = 0.05, 20000
    J = mf.jacobian(net, X, Y, rule, th, loss=loss, weight_decay=mu)
    keep = np.flatnonzero(np.diag(mf.noise_covariance(net, X, Y, rule, th, loss=loss)) > 0)   # the two-point w: no noise
    ev = np.linalg.eigvalsh(0.5 * (J + J.T)[np.ix_(keep, keep)])
    n = int(15 / (a * ev.min()))
    res = dc.simulate(net, X, Y, rule, S.constant(a), n_steps=n, seed=7, n_replicas=R, theta0=th, loss=loss,
                      record_every=n, optimizer=dc.optimizers.sgd(weight_decay=mu))
    D = (res.theta_final - th)[:, keep]
    prods = np.einsum("ri,rj->rij", D, D)                         # around theta*: E delta = 0 for affine H
    Ca = ref.affine_sgd_stationary_cov(list(net.widths), th, X, Y, loss, rule_dict(rule), a,
                                       weight_decay=mu)[np.ix_(keep, keep)]
    z = (prods.mean(axis=0) - Ca) / (prods.std(axis=0, ddof=1) / np.sqrt(R))
    assert np.max(np.abs(z[np.triu_indices(keep.size)])) < 4.5
    aS = dfn.stationary_covariance(net, X, Y, rule, th, a, loss=loss, weight_decay=mu)[np.ix_(keep, keep)]
    # triangle inequality: ||Cov - a Sigma|| <= ||C_a - a Sigma|| (the O(a) term) + ||Cov - C_a|| (sampling,
    # <= 5 sqrt(2/R) ||C_a|| in Frobenius norm for these near-Gaussian clouds)
    bound = (np.linalg.norm(Ca - aS) + 5 * np.sqrt(2 / R) * np.linalg.norm(Ca)) / np.linalg.norm(aS)
    assert _relerr(prods.mean(axis=0), aS) < bound


# ------------------------------------------------------------------------------------------
# linear_noise_path
# ------------------------------------------------------------------------------------------
def test_linear_noise_path_from_equilibrium_exact():
    """From theta* with a constant step the flow stays at theta*, J and Q are constant, and
    C(t) = a Sigma - e^{-J t} a Sigma e^{-J^T t} (the exact solution); Van Loan steps are exact then."""
    net, X, Y, loss, rule, _, th = _exact_case(False)
    a = 0.01
    p = dfn.linear_noise_path(net, X, Y, rule, S.constant(a), th, n_steps=300, record_every=50, loss=loss)
    aS = dfn.stationary_covariance(net, X, Y, rule, th, a, loss=loss)
    J = mf.jacobian(net, X, Y, rule, th, loss=loss)
    np.testing.assert_allclose(p.t, a * p.step, rtol=1e-12)
    for t, Ct in zip(p.t, p.cov):
        E = expm(-J * t)
        np.testing.assert_allclose(Ct, aS - E @ aS @ E.T, rtol=0, atol=1e-9 * np.abs(aS).max())
    assert np.abs(p.theta - th).max() < 1e-12
    _, hi = p.band(2.0)
    np.testing.assert_allclose(hi - p.theta, 2 * np.sqrt(np.diagonal(p.cov, axis1=1, axis2=2)), rtol=1e-14)


def test_linear_noise_path_against_sgd_replicas():
    """Clipped MLP from a random start, a(k) = 0.5 / (k + 20): the covariance of R replicas around the
    flow, E||theta_k - theta(t_k)||^2 / tr C(t), at the records past t = 1 (a(k) <= 0.017 there).
    The ratio's sampling SE is ~1.5 % (seeds 5, 6, 7 give 0.96 .. 1.02 over the records); the band
    [0.9, 1.11] is >= 6 SE from 1 on either side, so the false-alarm rate is < 1e-8 per record
    (normal approximation), while a Q off by the batch factor or a missing a(t) fails by far."""
    net, X, Y = _mlp()
    rule = C.classic(0.4)
    th0 = dc.init_params(net, 0)
    sch, n, every, R = S.inverse(0.5, 20.0), 4000, 400, 2000
    p = dfn.linear_noise_path(net, X, Y, rule, sch, th0, n_steps=n, record_every=every)
    res = dc.simulate(net, X, Y, rule, sch, n_steps=n, seed=5, n_replicas=R, theta0=th0, record_every=every,
                      record_theta=True)
    np.testing.assert_array_equal(res.step, p.step)
    dev = res.theta - p.theta[None]
    tr_sa = np.einsum("rki,rki->k", dev, dev) / R
    ratio = tr_sa[p.t > 1] / np.trace(p.cov, axis1=1, axis2=2)[p.t > 1]
    assert np.all((ratio > 0.9) & (ratio < 1.11)), ratio


def test_linear_noise_path_validates():
    net, X, Y = _linear()
    with pytest.raises(ValueError, match="dt"):
        dfn.linear_noise_path(net, X, Y, C.none(), S.constant(0.1), np.zeros(3), n_steps=10, dt=0.0)
    with pytest.raises(ValueError, match="schedule"):
        dfn.linear_noise_path(net, X, Y, C.none(), 0.1, np.zeros(3), n_steps=10)
    with pytest.raises(ValueError, match="theta0"):
        dfn.linear_noise_path(net, X, Y, C.none(), S.constant(0.1), np.zeros(2), n_steps=10)
    with pytest.raises(ValueError, match="linear_noise_path needs an exactly computable"):
        dfn.linear_noise_path(net, X, Y, C.classic(1.0), S.constant(0.1), np.zeros(3), n_steps=10, batch_size=2)
