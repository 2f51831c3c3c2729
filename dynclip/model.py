"""MLP specification, flat parameter layout, and jitted forward / loss / backprop.

Flat layout: for each layer l in order, W_l of shape (out, in) in C order, then b_l of
shape (out,). Hidden layers apply the activation; the output layer is linear.

Minibatches are processed as matrix-matrix work over a block of rows (activations stored
row-major, one row per sample), with hand-derived backprop written on matrix views of the
flat vectors (:mod:`dynclip._layers`: ``affine``, ``weight_grads``, ``backprop``, on the
explicit SIMD kernels of :mod:`dynclip._simd`). The same functions serve the engine, the mean field and the public
``loss_and_grad``, so there is one definition of the maths (its naive twin is
``tests/reference.py``). Argument checks live in :mod:`dynclip.checks`, vector norms in
:mod:`dynclip._norms`.
"""
from enum import IntEnum
from typing import NamedTuple
import math

import numpy as np

from ._jit import njit, hot, hot_inline
from ._fastmath import tanh as fast_tanh, tanh_range
from ._layers import BLOCK_MIN_ROWS, block, layer, flat, affine, weight_grads, backprop
from ._norms import norm
from .checks import check_choice, check_widths, check_net, check_data, check_theta, check_seed


class Activation(IntEnum):
    tanh = 0
    sigmoid = 1
    gelu = 2
    softplus = 3
    relu = 4


class Loss(IntEnum):
    mse = 0            # sum over outputs of (f - y)^2 (no 1/2, the paper's l_r)
    half_mse = 1       # 1/2 sum (f - y)^2 (gradient f - y; THEORY 1-D examples)
    quartic = 2        # sum (f - y)^4
    cross_entropy = 3  # softmax cross-entropy, integer labels in Y


#: activations satisfying assumption A1 (twice continuously differentiable)
A1_ACTIVATIONS = ("tanh", "sigmoid", "gelu", "softplus")


def _code(enum, name, argname):
    if isinstance(name, enum):
        return int(name)
    if isinstance(name, str):
        name = name.lower()         # "Tanh", "MSE" are accepted
    return int(enum[check_choice(argname, name, tuple(enum.__members__))])


def activation_code(name, argname="activation"):
    return _code(Activation, name, argname)


def loss_code(name):
    return _code(Loss, name, "loss")


class MLP(NamedTuple):
    """A fully connected network ``widths[0] -> ... -> widths[-1]``.

    Create it with :func:`mlp`. ``satisfies_a1`` is False for relu, which is not twice
    differentiable (the paper's assumption A1).
    """
    widths: tuple
    activation: str

    @property
    def n_layers(self):
        return len(self.widths) - 1

    @property
    def n_params(self):
        w = self.widths
        return int(sum(w[l + 1] * (w[l] + 1) for l in range(len(w) - 1)))

    @property
    def satisfies_a1(self):
        return self.activation in A1_ACTIVATIONS

    @property
    def act(self):
        return activation_code(self.activation)

    def widths_array(self):
        return np.asarray(self.widths, dtype=np.int64)

    def offsets(self):
        """Start of each layer's block (W_l then b_l) in the flat vector; length L+1."""
        w = self.widths
        offs = [0]
        for l in range(len(w) - 1):
            offs.append(offs[-1] + w[l + 1] * (w[l] + 1))
        return np.asarray(offs, dtype=np.int64)

    def layer_slices(self):
        """List of ``(W_slice, b_slice)`` into the flat vector, one per layer."""
        offs = self.offsets()
        out = []
        for l in range(self.n_layers):
            ni, no = self.widths[l], self.widths[l + 1]
            o = int(offs[l])
            out.append((slice(o, o + no * ni), slice(o + no * ni, o + no * ni + no)))
        return out

    def unpack(self, theta):
        """Return a list of ``(W, b)`` views of a flat vector."""
        theta = np.asarray(theta)
        return [(theta[sw].reshape(self.widths[l + 1], self.widths[l]), theta[sb])
                for l, (sw, sb) in enumerate(self.layer_slices())]


def mlp(widths, activation="tanh"):
    """Build an MLP spec.

    Parameters
    ----------
    widths : sequence of int
        Layer widths ``[d_in, h_1, ..., d_out]``, at least two entries, all >= 1 (a list, tuple
        or 1-D array of integers or integral floats; not a string).
        ``[d_in, d_out]`` is a linear model (with X = 0 it is the location model f = b).
    activation : {"tanh", "sigmoid", "gelu", "softplus", "relu"}
        Hidden-layer activation. GELU is the exact erf form. relu is allowed but violates
        assumption A1 (``net.satisfies_a1`` is False).
    """
    w = check_widths(widths)
    net = MLP(w, str(Activation(activation_code(activation)).name))
    if not net.satisfies_a1:
        import warnings
        warnings.warn("relu is not twice differentiable: it violates assumption A1 of the stability theory "
                      "(net.satisfies_a1 is False); the engine runs it, the theory does not cover it",
                      UserWarning, stacklevel=2)
    return net


def init_params(net, seed=0):
    """Initial parameters, torch ``nn.Linear`` default: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    ``seed`` is a non-negative integer. Returns a float64 array of shape ``(net.n_params,)``.
    """
    check_net(net)
    rng = np.random.default_rng(check_seed(seed))
    theta = np.empty(net.n_params)
    for l, (sw, sb) in enumerate(net.layer_slices()):
        bound = 1.0 / math.sqrt(net.widths[l])
        theta[sw] = rng.uniform(-bound, bound, sw.stop - sw.start)
        theta[sb] = rng.uniform(-bound, bound, sb.stop - sb.start)
    return theta


# ----------------------------------------------------------------------------------------
# jitted maths
# ----------------------------------------------------------------------------------------
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@hot
def act_value(z, act):
    if act == 0:
        return fast_tanh(z)
    elif act == 1:
        if z >= 0.0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)
    elif act == 2:
        return 0.5 * z * (1.0 + math.erf(z * _SQRT1_2))
    elif act == 3:
        return max(z, 0.0) + math.log1p(math.exp(-abs(z)))
    else:
        return max(z, 0.0)


@hot
def act_deriv(z, a, act):
    """sigma'(z) given z and a = sigma(z)."""
    if act == 0:
        return 1.0 - a * a
    elif act == 1:
        return a * (1.0 - a)
    elif act == 2:
        return 0.5 * (1.0 + math.erf(z * _SQRT1_2)) + z * _INV_SQRT_2PI * math.exp(-0.5 * z * z)
    elif act == 3:
        return act_value(z, 1)
    else:
        return 1.0 if z > 0.0 else 0.0


@njit
def act_offsets(widths, B):
    """Offsets of each layer's (B, width) block in the activation buffer."""
    L1 = widths.shape[0]
    aoff = np.zeros(L1 + 1, dtype=np.int64)
    for l in range(L1):
        aoff[l + 1] = aoff[l] + B * widths[l]
    return aoff


class Workspace(NamedTuple):
    acts: np.ndarray   # (sum widths * B,) activations, layer 0 = inputs
    zs: np.ndarray     # pre-activations, same layout
    aoff: np.ndarray   # layer offsets into acts / zs
    d1: np.ndarray     # backprop deltas
    d2: np.ndarray
    lossv: np.ndarray  # (B,) per-sample loss
    wts: np.ndarray    # (B,) per-sample weights for the backward pass
    gt: np.ndarray     # scratch for one layer's weights transposed (block forms in _layers)
    redo: np.ndarray   # (B,) bool: samples whose per-sample norm is recomputed overflow-safely


@njit
def make_workspace(widths, B):
    aoff = act_offsets(widths, B)
    mw = 0
    mp = 0
    for l in range(widths.shape[0]):
        mw = max(mw, widths[l])
        if l > 0:
            mp = max(mp, widths[l] * widths[l - 1])
    return Workspace(np.zeros(aoff[-1]), np.zeros(aoff[-1]), aoff, np.zeros(B * mw),
                     np.zeros(B * mw), np.zeros(B), np.zeros(B), np.zeros(max(mp, 16) if B >= BLOCK_MIN_ROWS else 0),
                     np.zeros(B, dtype=np.bool_))


@hot
def forward(theta, widths, offs, act, X, rows, nb, ws):
    """Forward pass over the ``nb`` samples ``X[rows[:nb]]``: a_0 = x, z_{l+1} = W_l a_l + b_l,
    a_{l+1} = sigma(z_{l+1}) on hidden layers and f = z_L on the output layer, all samples of the
    block at once (one row each); fills ws.acts and ws.zs."""
    L = widths.shape[0] - 1
    A = block(ws.acts, ws.aoff[0], nb, widths[0])
    for k in range(nb):
        r = rows[k]
        for i in range(widths[0]):
            A[k, i] = X[r, i]
    for l in range(L):
        W, b = layer(theta, widths, offs, l)
        Z = block(ws.zs, ws.aoff[l + 1], nb, widths[l + 1])
        affine(W, A, b, Z, ws.gt)
        A = block(ws.acts, ws.aoff[l + 1], nb, widths[l + 1])
        if l < L - 1:
            activate(flat(Z), flat(A), act)
        else:
            copy(flat(Z), flat(A))


@hot
def copy(src, dst):
    """dst = src elementwise."""
    for k in range(src.shape[0]):
        dst[k] = src[k]


@hot
def activate(z, a, act):
    """a = sigma(z) elementwise (tanh in its 8-lane form)."""
    n = z.shape[0]
    if act == 0:
        tanh_range(z, 0, a, 0, n)
    else:
        for k in range(n):
            a[k] = act_value(z[k], act)


@hot_inline
def losses_and_dout(widths, lossk, Y, rows, nb, ws):
    """Per-sample losses l(f, y) into ws.lossv; dl/df into the output-layer slot of ws.zs.

    The forward pass must have run. After this, ws.zs of the last layer holds dl/df
    (the output pre-activation is not needed any more: the output layer is linear).
    """
    L = widths.shape[0] - 1
    no = widths[L]
    F = block(ws.acts, ws.aoff[L], nb, no)
    dF = block(ws.zs, ws.aoff[L], nb, no)
    for k in range(nb):
        r = rows[k]
        if lossk == 3:
            m = F[k, 0]
            for o in range(1, no):
                m = max(m, F[k, o])
            s = 0.0
            for o in range(no):
                s += math.exp(F[k, o] - m)
            lse = m + math.log(s)
            lab = int(Y[r, 0])
            ws.lossv[k] = lse - F[k, lab]
            for o in range(no):
                dF[k, o] = math.exp(F[k, o] - lse) - (1.0 if o == lab else 0.0)
        else:
            s = 0.0
            for o in range(no):
                e = F[k, o] - Y[r, o]
                if lossk == 0:
                    s += e * e
                    dF[k, o] = 2.0 * e
                elif lossk == 1:
                    s += 0.5 * e * e
                    dF[k, o] = e
                else:
                    e2 = e * e
                    s += e2 * e2
                    dF[k, o] = 4.0 * e2 * e
            ws.lossv[k] = s


@hot
def times_deriv(D, Z, A, act):
    """D *= sigma'(Z) elementwise, given Z and A = sigma(Z) (tanh in its own loop, which vectorises)."""
    d = flat(D)
    z = flat(Z)
    a = flat(A)
    if act == 0:
        for k in range(d.shape[0]):
            d[k] *= 1.0 - a[k] * a[k]
    else:
        for k in range(d.shape[0]):
            d[k] *= act_deriv(z[k], a[k], act)


@hot
def backward(theta, widths, offs, act, nb, ws, grad, overwrite=False):
    """Accumulate sum_k ws.wts[k] grad l_k into ``grad`` (or, with ``overwrite``, write it
    there: no separate zeroing pass), for the samples of the last forward pass.

    Deltas d_k = wts[k] dl/df at the output; then for l = L-1, ..., 0: grad W_l += d_k a_k^T and
    grad b_l += d_k summed over the block, and (l > 0) d_k <- (W_l^T d_k) * sigma'(z_k). The
    deltas alternate between ws.d1 and ws.d2.
    """
    L = widths.shape[0] - 1
    dcur = ws.d1
    dnext = ws.d2
    D = block(dcur, 0, nb, widths[L])
    dF = block(ws.zs, ws.aoff[L], nb, widths[L])
    for k in range(nb):
        w = ws.wts[k]
        for o in range(widths[L]):
            D[k, o] = w * dF[k, o]
    for l in range(L - 1, -1, -1):
        W = layer(theta, widths, offs, l)[0]
        G, gb = layer(grad, widths, offs, l)
        A = block(ws.acts, ws.aoff[l], nb, widths[l])
        D = block(dcur, 0, nb, widths[l + 1])
        weight_grads(G, gb, D, A, overwrite, ws.gt)
        if l > 0:
            Dprev = block(dnext, 0, nb, widths[l])
            backprop(D, W, Dprev)
            times_deriv(Dprev, block(ws.zs, ws.aoff[l], nb, widths[l]), A, act)
            dcur, dnext = dnext, dcur


@hot
def _sample_grad_norms(theta, widths, offs, act, nb, ws, out, safe):
    """Core of :func:`sample_norms`.

    Fast pass (``safe`` False): out[k] = sum over layers of ||d_k||^2 (||a_k||^2 + 1).
    Otherwise only the samples with ws.redo[k] are computed again, overflow-safely, and out[k]
    becomes their *norm* (not squared): per layer ||d_k|| * hypot(1, ||a_k||) with the
    rescaling norm(), summed by hypot. The deltas propagate as in :func:`backward`, in its
    loop form (same buffers; call it before, not after, ws.d1/d2 are needed).
    """
    redo = ws.redo
    L = widths.shape[0] - 1
    dcur = ws.d1
    dnext = ws.d2
    D = block(dcur, 0, nb, widths[L])
    dF = block(ws.zs, ws.aoff[L], nb, widths[L])
    for k in range(nb):
        if not safe or redo[k]:
            out[k] = 0.0
        for o in range(widths[L]):
            D[k, o] = dF[k, o]
    for l in range(L - 1, -1, -1):
        ni = widths[l]
        no = widths[l + 1]
        W = layer(theta, widths, offs, l)[0]
        A = block(ws.acts, ws.aoff[l], nb, ni)
        D = block(dcur, 0, nb, no)
        d = flat(D)
        a = flat(A)
        for k in range(nb):
            if safe:
                if redo[k]:
                    t = norm(d, k * no, k * no + no) * math.hypot(1.0, norm(a, k * ni, k * ni + ni))
                    out[k] = math.nan if (t != t or out[k] != out[k]) else math.hypot(out[k], t)
                continue
            dd = 0.0
            for o in range(no):
                dd += D[k, o] * D[k, o]
            aa = 1.0
            for i in range(ni):
                aa += A[k, i] * A[k, i]
            out[k] += dd * aa
        if l > 0:
            Dprev = block(dnext, 0, nb, ni)
            backprop(D, W, Dprev)
            times_deriv(Dprev, block(ws.zs, ws.aoff[l], nb, ni), A, act)
            dcur, dnext = dnext, dcur


@hot
def _redo_mask(nb, out, redo):
    """Mark in ``redo`` the samples whose fast squared norm is inf, NaN, or below 1e-280
    (overflow, 0 * inf, underflow); return how many there are."""
    n = 0
    for b in range(nb):
        redo[b] = not (out[b] < math.inf and out[b] > 1e-280)
        if redo[b]:
            n += 1
    return n


@hot
def sample_norms(theta, widths, offs, act, nb, ws, out):
    """Per-sample gradient norms ||grad l_b|| for the nb samples of the last forward pass.

    Uses the rank-1 structure of a per-sample layer gradient: ||delta a^T||^2 + ||delta||^2 =
    ||delta||^2 (||a||^2 + 1), so no per-sample gradient vector is formed. Deltas propagate
    as in :func:`backward` (same buffers; call it before, not after, ws.d1/d2 are needed).
    Safe from overflow and underflow: the square root of the fast sum, or a rescaled
    recomputation for the samples where that sum is inf, NaN or below 1e-280.
    """
    _sample_grad_norms(theta, widths, offs, act, nb, ws, out, False)
    n = _redo_mask(nb, out, ws.redo)
    for b in range(nb):
        if not ws.redo[b]:
            out[b] = math.sqrt(out[b])
    if n > 0:
        _sample_grad_norms(theta, widths, offs, act, nb, ws, out, True)


@hot_inline
def block_loss_grad(theta, widths, offs, act, lossk, X, Y, rows, nb, ws, grad, scale, overwrite=False):
    """Add ``scale * sum_b grad l_b`` over rows[:nb] into grad (or, with ``overwrite``, write
    it there); return scale * sum_b l_b."""
    forward(theta, widths, offs, act, X, rows, nb, ws)
    losses_and_dout(widths, lossk, Y, rows, nb, ws)
    tot = 0.0
    for b in range(nb):
        ws.wts[b] = scale
        tot += ws.lossv[b]
    backward(theta, widths, offs, act, nb, ws, grad, overwrite)
    return scale * tot


@hot
def block_loss(theta, widths, offs, act, lossk, X, Y, rows, nb, ws):
    """Sum of per-sample losses over rows[:nb] (forward only)."""
    forward(theta, widths, offs, act, X, rows, nb, ws)
    losses_and_dout(widths, lossk, Y, rows, nb, ws)
    tot = 0.0
    for b in range(nb):
        tot += ws.lossv[b]
    return tot


EVAL_BLOCK = 64


@hot
def full_loss(theta, widths, offs, act, lossk, X, Y, ws, rows):
    """Mean loss over all rows of X, in blocks of ws.lossv.shape[0] rows."""
    N = X.shape[0]
    Bw = ws.lossv.shape[0]
    tot = 0.0
    for s in range(0, N, Bw):
        nb = min(Bw, N - s)
        for b in range(nb):
            rows[b] = s + b
        tot += block_loss(theta, widths, offs, act, lossk, X, Y, rows, nb, ws)
    return tot / N


@hot
def full_loss_grad(theta, widths, offs, act, lossk, X, Y, ws, rows, grad):
    """Mean loss and (into grad, zeroed first) mean gradient over all rows."""
    N = X.shape[0]
    Bw = ws.lossv.shape[0]
    tot = 0.0
    for s in range(0, N, Bw):
        nb = min(Bw, N - s)
        for b in range(nb):
            rows[b] = s + b
        tot += block_loss_grad(theta, widths, offs, act, lossk, X, Y, rows, nb, ws, grad, 1.0 / N, s == 0)
    return tot


def loss_and_grad(net, theta, X, Y, loss="mse"):
    """Mean loss and its gradient over the rows of X.

    Parameters
    ----------
    net : MLP
    theta : array (P,)
    X : array (N, d_in)
    Y : array (N, d_out) or (N,) (integer labels for cross_entropy)
    loss : {"mse", "half_mse", "quartic", "cross_entropy"}

    Returns
    -------
    loss : float
    grad : ndarray (P,)
    """
    check_net(net)
    X, Y, lk = check_data(net, X, Y, loss)
    theta = check_theta(net, theta)
    B = min(EVAL_BLOCK, X.shape[0])
    ws = make_workspace(net.widths_array(), B)
    grad = np.zeros(net.n_params)
    val = full_loss_grad(theta, net.widths_array(), net.offsets(), net.act, lk, X, Y, ws,
                         np.zeros(B, np.int64), grad)
    return float(val), grad
