"""Layer 1 and 2 for the model: gradient = naive twin = central finite differences."""
import numpy as np
import pytest

import dynclip as dc
from reference import loss_grad

ACTS = ["tanh", "sigmoid", "gelu", "softplus"]
LOSSES = ["mse", "half_mse", "quartic", "cross_entropy"]
WIDTHS = [[2, 1], [3, 7, 2], [4, 5, 3, 3]]


def _data(widths, loss, seed, N=13):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, widths[0]))
    Y = rng.integers(0, widths[-1], N) if loss == "cross_entropy" else rng.normal(size=(N, widths[-1]))
    return X, Y


@pytest.mark.parametrize("widths", WIDTHS)
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_twin_and_finite_differences(widths, activation, loss, seed):
    if loss == "cross_entropy" and widths[-1] < 2:
        pytest.skip("cross_entropy needs >= 2 outputs (test_api_papercuts checks the error)")
    net = dc.mlp(widths, activation=activation)
    X, Y = _data(widths, loss, seed)
    theta = dc.init_params(net, seed=seed) * 1.5
    val, g = dc.loss_and_grad(net, theta, X, Y, loss=loss)
    rv, rg = loss_grad(list(widths), activation, theta, X, Y.reshape(len(X), -1), loss)
    assert abs(val - rv) <= 1e-12 * max(1, abs(rv))
    np.testing.assert_allclose(g, rg, rtol=1e-12, atol=1e-13)
    # central differences, step scaled to each coordinate; rel error of the whole vector
    fd = np.empty_like(theta)
    for i in range(theta.size):
        h = 1e-5 * max(1.0, abs(theta[i]))
        e = np.zeros_like(theta)
        e[i] = h
        fd[i] = (dc.loss_and_grad(net, theta + e, X, Y, loss=loss)[0]
                 - dc.loss_and_grad(net, theta - e, X, Y, loss=loss)[0]) / (2 * h)
    assert np.linalg.norm(fd - g) <= 1e-7 * max(np.linalg.norm(g), 1e-3)


def test_relu_allowed_but_not_a1():
    with pytest.warns(UserWarning, match="A1"):
        net = dc.mlp([2, 3, 1], activation="relu")
    assert not net.satisfies_a1
    assert dc.mlp([2, 3, 1]).satisfies_a1
    X, Y = _data([2, 3, 1], "mse", 0)
    theta = dc.init_params(net, 0)
    v, g = dc.loss_and_grad(net, theta, X, Y)
    rv, rg = loss_grad([2, 3, 1], "relu", theta, X, Y.reshape(-1, 1), "mse")
    np.testing.assert_allclose(g, rg, rtol=1e-12, atol=1e-14)


def test_layout_and_init():
    net = dc.mlp([4, 32, 32, 1])
    assert net.n_params == 4 * 32 + 32 + 32 * 32 + 32 + 32 + 1 == 1249
    th = dc.init_params(net, seed=5)
    assert th.shape == (1249,) and th.dtype == np.float64
    np.testing.assert_array_equal(th, dc.init_params(net, seed=5))
    (W1, b1), (W2, b2), (W3, b3) = net.unpack(th)
    assert W1.shape == (32, 4) and np.all(np.abs(W1) <= 0.5) and np.all(np.abs(W2) <= 1 / np.sqrt(32))
    assert np.shares_memory(W1, th)


def test_location_model_gradient():
    # mlp([1, 1]) with X = 0 is f = b: half_mse gradient wrt b is b - y
    net = dc.mlp([1, 1])
    X = np.zeros((2, 1))
    Y = np.array([0.0, 10.0])
    v, g = dc.loss_and_grad(net, np.array([0.0, 4.0]), X, Y, loss="half_mse")
    np.testing.assert_allclose(g, [0.0, 4.0 - 5.0])
    assert v == pytest.approx(0.5 * (16 + 36) / 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(widths=[3]), "widths"), (dict(widths=[3, 0, 1]), "widths"), (dict(widths="abc"), "widths"),
    (dict(widths=[2, 1], activation="swish"), "activation"),
])
def test_bad_model_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dc.mlp(**kwargs)


def test_bad_loss_and_grad_input():
    net = dc.mlp([2, 3, 1])
    th = dc.init_params(net)
    X, Y = _data([2, 3, 1], "mse", 0)
    with pytest.raises(ValueError, match="loss"):
        dc.loss_and_grad(net, th, X, Y, loss="hinge")
    with pytest.raises(ValueError, match="theta"):
        dc.loss_and_grad(net, th[:-1], X, Y)
    with pytest.raises(ValueError, match="theta"):
        dc.loss_and_grad(net, np.full_like(th, np.nan), X, Y)
    with pytest.raises(ValueError, match="X"):
        dc.loss_and_grad(net, th, X[:, :1], Y)
    Xn = X.copy()
    Xn[0, 0] = np.inf
    with pytest.raises(ValueError, match="X"):
        dc.loss_and_grad(net, th, Xn, Y)
    with pytest.raises(ValueError, match="Y"):
        dc.loss_and_grad(net, th, X, Y[:-1])
    with pytest.raises(ValueError, match="Y"):
        dc.loss_and_grad(dc.mlp([2, 3]), dc.init_params(dc.mlp([2, 3])), X, np.full(len(X), 3), loss="cross_entropy")
    with pytest.raises(TypeError, match="net"):
        dc.loss_and_grad("net", th, X, Y)


# ---- non-finite entries propagate through every norm (the peers' inputs: torch's clip_grad_norm_
# tests use nan, +-inf, 2e22 and 2e200 as gradient entries) ----------------------------------
from dynclip._norms import norm, maxabs, dist  # noqa: E402

N_SIMD = 45                                   # lanes: a 32-block [0, 32), an 8-step [32, 40), the tail [40, 45)
POSITIONS = [0, 5, 31, 32, 39, 40, 44]        # first, inside/last of the 32-block, the 8-step, tail start, last


def _base(rest, n=N_SIMD, seed=0):
    if rest == "zeros":
        return np.zeros(n)
    if rest == "ones":
        return np.ones(n)
    return np.random.default_rng(seed).normal(size=n)


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("rest", ["zeros", "ones", "random"])
def test_norm_dist_maxabs_propagate_nonfinite(pos, bad, rest):
    """norm([1, 0, nan, 0]) was 0: the running max restarted at the entry after a NaN."""
    v = _base(rest)
    v[pos] = bad
    want = np.isnan if np.isnan(bad) else (lambda x: x == np.inf)
    assert want(norm(v, 0, N_SIMD)) and want(maxabs(v, 0, N_SIMD))
    assert want(dist(v, np.zeros(N_SIMD))) and want(dist(np.zeros(N_SIMD), v))
    for lo, hi in ((0, pos + 1), (pos, N_SIMD), (max(pos - 3, 0), min(pos + 9, N_SIMD))):
        assert want(norm(v, lo, hi))
    if pos > 0:             # a range without the bad entry is finite and exact
        assert norm(v, 0, pos) == pytest.approx(np.linalg.norm(v[:pos]), rel=1e-14, abs=0)
    # NaN wins over inf, in either order
    w = v.copy()
    w[(pos + 7) % N_SIMD] = np.nan if not np.isnan(bad) else np.inf
    assert np.isnan(norm(w, 0, N_SIMD)) and np.isnan(maxabs(w, 0, N_SIMD)) and np.isnan(dist(w, np.zeros(N_SIMD)))


@pytest.mark.parametrize("s", [2e22, -2e22, 2e200, -2e200])
@pytest.mark.parametrize("pattern", ["one", "all", "one_after_finite"])
def test_norm_of_large_finite_entries_is_exact(s, pattern):
    """Large finite entries are not non-finite: the norm is finite and exact (squares of 2e200 overflow)."""
    for pos in POSITIONS:
        v = _base("ones" if pattern == "one_after_finite" else "zeros")
        if pattern == "all":
            v[:] = s
        else:
            v[pos] = s
        exact = abs(s) * np.linalg.norm(v / abs(s))         # the rescaled sum cannot overflow
        assert np.isfinite(norm(v, 0, N_SIMD))
        assert norm(v, 0, N_SIMD) == pytest.approx(exact, rel=1e-15)
        assert dist(v, np.zeros(N_SIMD)) == pytest.approx(exact, rel=1e-15)
        assert maxabs(v, 0, N_SIMD) == abs(s)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the naive twin overflows on purpose
def test_per_sample_norms_propagate_nonfinite():
    """The rank-1 per-sample norms: a sample whose loss is NaN (infinite logits) has a NaN norm, one
    whose gradient overflows an inf norm; the others are untouched."""
    from dynclip.meanfield import per_sample_grad_norms
    from reference import sample_loss_grad
    net = dc.mlp([1, 2])
    theta = np.array([1e10, -1e10, 0.0, 0.0])               # logits +-1e10 x
    X = np.array([[1.0], [1e300], [0.5]])
    Y = np.array([0, 1, 1])
    n = per_sample_grad_norms(net, X, Y, theta, loss="cross_entropy")
    assert np.isnan(n[1]) and np.all(np.isfinite(n[[0, 2]]))
    assert np.isnan(np.linalg.norm(sample_loss_grad([1, 2], "tanh", theta, X[1], Y[1:2], "cross_entropy")[1]))
    for j in (0, 2):
        ref = np.linalg.norm(sample_loss_grad([1, 2], "tanh", theta, X[j], Y[j:j + 1], "cross_entropy")[1])
        assert n[j] == pytest.approx(ref, rel=1e-13)
    lin = dc.mlp([1, 1])                                     # gradient (2 e x, 2 e): norm 2.1e308 overflows
    n = per_sample_grad_norms(lin, np.array([[1.0], [1.0]]), np.array([[-7.5e307], [1.0]]), np.zeros(2))
    assert n[0] == np.inf and n[1] == pytest.approx(2 * np.sqrt(2), rel=1e-15)


def test_api_papercuts():
    """What torch/optax users type first gets an answer instead of a bare error."""
    from dynclip import clipping as C, schedules as S
    assert C.adaptive(0.5).eps == 1e-3 and C.layerwise(0.5).eps == 1e-3        # documented defaults
    assert dc.mlp([2, 3, 1], activation="Tanh").activation == "tanh"
    X, Y = np.zeros((3, 2)), np.zeros(3)
    with pytest.raises(TypeError, match=r"'lr'.*schedules.constant"):
        dc.simulate(dc.mlp([2, 1]), X, Y, C.none(), S.constant(0.1), n_steps=2, seed=0, lr=0.1)
    with pytest.raises(TypeError, match=r"'max_norm'.*lam"):
        C.classic(max_norm=1.0)
    with pytest.raises(ValueError, match=">= 2 outputs"):
        dc.simulate(dc.mlp([2, 1]), X, Y, C.none(), S.constant(0.1), n_steps=2, seed=0, loss="cross_entropy")
    res = dc.simulate(dc.mlp([2, 1]), X, Y, C.classic(1.0), S.constant(0.1), n_steps=20, seed=0, n_replicas=300)
    text = repr(res)
    assert len(text.splitlines()) <= 12 and "300 replicas" in text and "clip fraction" in text


# --- the two forms of a layer's products (dynclip._layers) -----------------------------------
from dynclip._jit import hot  # noqa: E402
from dynclip._layers import affine, backprop, weight_grads, BLOCK_MIN_ROWS  # noqa: E402


@hot
def _layer_ops(W, A, b, Z, wt, D, G, gb, Dp):
    affine(W, A, b, Z, wt)
    weight_grads(G, gb, D, A, True, wt)
    backprop(D, W, Dp)


@hot
def _grads_onto(G, gb, D, A, wt):
    weight_grads(G, gb, D, A, False, wt)


@pytest.mark.parametrize("no,ni", [(1, 32), (3, 13), (32, 4), (32, 32), (9, 17), (12, 5)])
def test_block_and_row_forms_of_a_layer(no, ni):
    """A block of >= BLOCK_MIN_ROWS rows and the same rows one at a time: weight gradients and
    deltas bit-identical (same sums, same order), narrow outputs (< 8) of the forward pass
    bit-identical too, wider ones equal to rounding (the block form sums in another order)."""
    rng = np.random.default_rng(no * 100 + ni)
    nb = BLOCK_MIN_ROWS + 5
    W, b = rng.standard_normal((no, ni)), rng.standard_normal(no)
    A, D = rng.standard_normal((nb, ni)), rng.standard_normal((nb, no))
    wt = np.zeros(max(no * ni, 16))
    Z, G, gb, Dp = np.zeros((nb, no)), np.zeros((no, ni)), np.zeros(no), np.zeros((nb, ni))
    _layer_ops(W, A, b, Z, wt, D, G, gb, Dp)
    Z1, Dp1 = np.zeros((nb, no)), np.zeros((nb, ni))
    G1, gb1 = np.zeros((no, ni)), np.zeros(no)
    for k in range(nb):
        g, gbk = np.zeros((no, ni)), np.zeros(no)
        z, dp = np.zeros((1, no)), np.zeros((1, ni))
        _layer_ops(W, A[k:k + 1], b, z, wt, D[k:k + 1], g, gbk, dp)
        Z1[k], Dp1[k] = z[0], dp[0]
        G1, gb1 = G1 + g, gb1 + gbk            # sample order, as the block form sums
    assert np.array_equal(G, G1) and np.array_equal(gb, gb1) and np.array_equal(Dp, Dp1)
    G0, b0 = rng.standard_normal((no, ni)), rng.standard_normal(no)
    G2, gb2 = G0.copy(), b0.copy()
    _grads_onto(G2, gb2, D, A, wt)                  # accumulate: onto the old values, same order
    want, wantb = G0.copy(), b0.copy()
    for k in range(nb):
        want, wantb = want + np.outer(D[k], A[k]), wantb + D[k]
    assert np.array_equal(G2, want) and np.array_equal(gb2, wantb)
    if no < 8:
        assert np.array_equal(Z, Z1)
    np.testing.assert_allclose(Z, A @ W.T + b, rtol=1e-13, atol=1e-13)
