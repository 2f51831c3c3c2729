"""MLP specification, flat parameter layout, and jitted forward / loss / backprop.

Flat layout: for each layer l in order, W_l of shape (out, in) in C order, then b_l of
shape (out,). Hidden layers apply the activation; the output layer is linear.

Minibatches are processed as matrix-matrix work over a block of rows (activations stored
row-major, one row per sample), with hand-derived backprop: BLAS for blocks of 16 rows or
more, the explicit SIMD row kernels of :mod:`dynclip._simd` for smaller ones. The same functions serve the
engine, the mean field and the public ``loss_and_grad``, so there is one definition of
the maths.
"""
from enum import IntEnum
from typing import NamedTuple
import math

import numpy as np

from ._jit import njit, hot, hot_inline
from ._fastmath import tanh as fast_tanh, tanh_range
from ._simd import affine8, axpy_rows, ger_rows
from ._norms import norm
from ._blas import matmul
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
    gt: np.ndarray     # one layer's weight gradient (BLAS path)
    redo: np.ndarray   # (B,) bool: samples whose per-sample norm is recomputed overflow-safely


#: blocks of at least this many rows use BLAS matrix products (dgemm); smaller ones use
#: compiled loops, which beat a BLAS call's fixed cost on tiny matrices
BLAS_MIN_ROWS = 16


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
                     np.zeros(B * mw), np.zeros(B), np.zeros(B), np.zeros(mp if B >= BLAS_MIN_ROWS else 0),
                     np.zeros(B, dtype=np.bool_))


@hot
def forward(theta, widths, offs, act, X, rows, nb, ws):
    """Forward pass over the ``nb`` samples ``X[rows[:nb]]``; fills ws.acts / ws.zs."""
    acts = ws.acts
    zs = ws.zs
    aoff = ws.aoff
    d0 = widths[0]
    for b in range(nb):
        r = rows[b]
        for i in range(d0):
            acts[b * d0 + i] = X[r, i]
    L = widths.shape[0] - 1
    for l in range(L):
        ni = widths[l]
        no = widths[l + 1]
        ow = offs[l]
        ob = ow + no * ni
        ai = aoff[l]
        ao = aoff[l + 1]
        if ni <= 0 or no <= 0 or ow < 0 or ai < 0 or ao < 0:
            return
        if nb >= BLAS_MIN_ROWS:
            matmul(acts[ai:ai + nb * ni].reshape((nb, ni)), theta[ow:ob].reshape((no, ni)).T,
                   zs[ao:ao + nb * no].reshape((nb, no)))
            ger_rows(zs, ao, no, None, 0, nb, theta, ob, no, False)      # + bias, row by row
            nb_loop = 0
        else:
            nb_loop = nb
        for b in range(nb_loop):
            # eight outputs at a time: bias + eight-lane dot products (the SIMD row kernel)
            for o in range(0, no, 8):
                affine8(theta, ow + o * ni, ni, acts, ai + b * ni, ni, min(8, no - o), theta, ob + o,
                        zs, ao + b * no + o)
        # loops over k >= 0 at offset ao (a loop over [ao, ao + n) does not vectorise)
        if l < L - 1:
            if act == 0:
                tanh_range(zs, ao, acts, ao, nb * no)
            else:
                for k in range(nb * no):
                    acts[ao + k] = act_value(zs[ao + k], act)
        else:
            for k in range(nb * no):
                acts[ao + k] = zs[ao + k]


@hot_inline
def losses_and_dout(widths, lossk, Y, rows, nb, ws):
    """Per-sample losses into ws.lossv; dloss/df into the output-layer slot of ws.zs.

    The forward pass must have run. After this, ws.zs of the last layer holds dl/df
    (the output pre-activation is not needed any more: the output layer is linear).
    """
    L = widths.shape[0] - 1
    no = widths[L]
    f0 = ws.aoff[L]
    if f0 < 0 or no <= 0:
        return
    acts = ws.acts
    zs = ws.zs
    for b in range(nb):
        r = rows[b]
        fb = f0 + b * no
        if lossk == 3:
            m = acts[fb]
            for o in range(1, no):
                m = max(m, acts[fb + o])
            s = 0.0
            for o in range(no):
                s += math.exp(acts[fb + o] - m)
            lse = m + math.log(s)
            lab = int(Y[r, 0])
            ws.lossv[b] = lse - acts[fb + lab]
            for o in range(no):
                zs[fb + o] = math.exp(acts[fb + o] - lse) - (1.0 if o == lab else 0.0)
        else:
            s = 0.0
            for o in range(no):
                e = acts[fb + o] - Y[r, o]
                if lossk == 0:
                    s += e * e
                    zs[fb + o] = 2.0 * e
                elif lossk == 1:
                    s += 0.5 * e * e
                    zs[fb + o] = e
                else:
                    e2 = e * e
                    s += e2 * e2
                    zs[fb + o] = 4.0 * e2 * e
            ws.lossv[b] = s


@hot
def _backward_layer_blas(theta, grad, acts, ai, ow, ni, no, nb, dcur, dprev, gt, propagate, overwrite):
    """BLAS form of one backprop layer: grad W += D^T A, grad b += sum_b D, dprev = D W."""
    if ow < 0 or ai < 0:     # (lets LLVM drop the negative-index fix-up and vectorise)
        return
    ob = ow + no * ni
    D = dcur[:nb * no].reshape((nb, no))
    A = acts[ai:ai + nb * ni].reshape((nb, ni))
    G = gt[:no * ni].reshape((no, ni))
    matmul(D.T, A, G)
    if overwrite:
        for k in range(no * ni):
            grad[ow + k] = gt[k]
    else:
        for k in range(no * ni):
            grad[ow + k] += gt[k]
    axpy_rows(dcur, 0, no, None, 0, nb, grad, ob, no, not overwrite)      # grad b (+)= sum over rows of D
    if propagate:
        matmul(D, theta[ow:ob].reshape((no, ni)), dprev[:nb * ni].reshape((nb, ni)))


@hot_inline
def _backward_layer_rows(theta, grad, acts, ai, ow, ni, no, nb, dcur, dprev, propagate, overwrite):
    """Loop form of one backprop layer, sample by sample: the rank-1 update grad W += d a^T,
    grad b += d, and dprev = W^T d, with the SIMD row kernels."""
    if ow < 0 or ai < 0:
        return
    ob = ow + no * ni
    for b in range(nb):
        db = b * no
        first = overwrite and b == 0
        ger_rows(grad, ow, ni, dcur, db, no, acts, ai + b * ni, ni, first)
        if first:       # (branch hoisted out of the loop, which then vectorises)
            for o in range(no):
                grad[ob + o] = dcur[db + o]
        else:
            for o in range(no):
                grad[ob + o] += dcur[db + o]
        if propagate:
            axpy_rows(theta, ow, ni, dcur, db, no, dprev, b * ni, ni, False)


@hot
def backward(theta, widths, offs, act, nb, ws, grad, overwrite=False):
    """Accumulate sum_b ws.wts[b] * grad l_b into ``grad`` (or, with ``overwrite``, write it
    there: no separate zeroing pass). The deltas alternate between ws.d1 and ws.d2 by layer parity.
    """
    acts = ws.acts
    zs = ws.zs
    aoff = ws.aoff
    d1 = ws.d1
    d2 = ws.d2
    L = widths.shape[0] - 1
    no = widths[L]
    f0 = aoff[L]
    if f0 < 0:
        return
    for b in range(nb):
        w = ws.wts[b]
        for o in range(no):
            d1[b * no + o] = w * zs[f0 + b * no + o]
    for l in range(L - 1, -1, -1):
        odd = (L - 1 - l) % 2 == 1      # current deltas in d2 (odd) or d1 (even)
        ni = widths[l]
        no = widths[l + 1]
        ow = offs[l]
        ai = aoff[l]
        if ni <= 0 or no <= 0 or ow < 0 or ai < 0:
            return
        if nb >= BLAS_MIN_ROWS:
            if odd:
                _backward_layer_blas(theta, grad, acts, ai, ow, ni, no, nb, d2, d1, ws.gt, l > 0, overwrite)
            else:
                _backward_layer_blas(theta, grad, acts, ai, ow, ni, no, nb, d1, d2, ws.gt, l > 0, overwrite)
        elif odd:
            _backward_layer_rows(theta, grad, acts, ai, ow, ni, no, nb, d2, d1, l > 0, overwrite)
        else:
            _backward_layer_rows(theta, grad, acts, ai, ow, ni, no, nb, d1, d2, l > 0, overwrite)
        if l > 0:
            _times_deriv(d1 if odd else d2, zs, acts, ai, nb * ni, act)


@hot_inline
def _times_deriv(d, zs, acts, ai, n, act):
    """d[k] *= sigma'(z) at the activations [ai, ai + n) (tanh in its own loop, which vectorises)."""
    if ai < 0:
        return
    if act == 0:
        for k in range(n):
            a = acts[ai + k]
            d[k] *= 1.0 - a * a
    else:
        for k in range(n):
            d[k] *= act_deriv(zs[ai + k], acts[ai + k], act)


@hot
def _dnorm(d1, d2, odd, lo, hi):
    """||d[lo:hi]|| (overflow-safe) of the current delta buffer (d2 when odd, else d1)."""
    if odd:
        return norm(d2, lo, hi)
    return norm(d1, lo, hi)


@hot
def _sample_grad_norms(theta, widths, offs, act, nb, ws, out, safe):
    """Core of :func:`sample_norms`.

    Fast pass (``safe`` False): out[b] = sum over layers of ||delta||^2 (||a||^2 + 1).
    Otherwise only the samples with ws.redo[b] are computed again, overflow-safely, and out[b]
    becomes their *norm* (not squared): per layer ||delta|| * hypot(1, ||a||) with the
    rescaling norm(), summed by hypot. The deltas propagate as in :func:`backward` (same
    buffers; call it before, not after, ws.d1/d2 are needed).
    """
    redo = ws.redo
    acts = ws.acts
    zs = ws.zs
    aoff = ws.aoff
    d1 = ws.d1
    d2 = ws.d2
    L = widths.shape[0] - 1
    no = widths[L]
    f0 = aoff[L]
    if f0 < 0:
        return
    for b in range(nb):
        if not safe or redo[b]:
            out[b] = 0.0
        for o in range(no):
            d1[b * no + o] = zs[f0 + b * no + o]
    for l in range(L - 1, -1, -1):
        odd = (L - 1 - l) % 2 == 1
        ni = widths[l]
        no = widths[l + 1]
        ow = offs[l]
        ai = aoff[l]
        if ni <= 0 or no <= 0 or ow < 0 or ai < 0:
            return
        for b in range(nb):
            if safe:
                if redo[b]:
                    t = _dnorm(d1, d2, odd, b * no, b * no + no) * math.hypot(
                        1.0, norm(acts, ai + b * ni, ai + b * ni + ni))
                    out[b] = math.nan if (t != t or out[b] != out[b]) else math.hypot(out[b], t)
                continue
            dd = 0.0
            for o in range(no):
                d = d2[b * no + o] if odd else d1[b * no + o]
                dd += d * d
            aa = 1.0
            for i in range(ni):
                aa += acts[ai + b * ni + i] * acts[ai + b * ni + i]
            out[b] += dd * aa
        if l > 0:
            for k in range(nb * ni):
                if odd:
                    d1[k] = 0.0
                else:
                    d2[k] = 0.0
            for b in range(nb):
                pb = b * ni
                for o in range(no):
                    d = d2[b * no + o] if odd else d1[b * no + o]
                    base = ow + o * ni
                    if odd:
                        for i in range(ni):
                            d1[pb + i] += d * theta[base + i]
                    else:
                        for i in range(ni):
                            d2[pb + i] += d * theta[base + i]
            for k in range(nb * ni):
                f = act_deriv(zs[ai + k], acts[ai + k], act)
                if odd:
                    d1[k] *= f
                else:
                    d2[k] *= f


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
