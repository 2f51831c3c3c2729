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
from ._simd import sumsq_lanes, sqdist_lanes, affine8, step_sqdist_lanes, axpy_rows, ger_rows
from ._blas import matmul


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


def activation_code(name):
    return _code(Activation, name, "activation")


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
@hot
def sumsq(v, lo, hi):
    """sum_{lo <= i < hi} v_i^2 in 32 SIMD lanes (:func:`dynclip._simd.sumsq_lanes`).

    Strict IEEE cannot reorder one running sum, so a single accumulator runs at the add
    latency; 32 independent ones (four 8-lane registers, in a fixed documented order) keep
    four vector additions in flight. The tail (hi - lo) mod 8 goes to lane 0, then the lanes
    are combined as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)).

    Performance notes that hold for every kernel in dynclip: the per-step functions are
    compiled without reference counting (:func:`dynclip._jit.hot`; with it, every array
    argument, attribute and view costs atomic increments, measured at half of a small
    step), loops run over k >= 0 at an offset (``a[o + k]``; a loop over [o, o + n) does not
    vectorise), and each function first rejects negative offsets, which lets LLVM drop
    Numba's negative-index fix-up and vectorise.
    """
    if lo < 0 or hi <= lo or hi > v.shape[0]:
        return 0.0
    m = lo + ((hi - lo) // 8) * 8
    s0, s1, s2, s3, s4, s5, s6, s7 = sumsq_lanes(v, lo, m)
    for i in range(m, hi):
        s0 += v[i] * v[i]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@hot
def norm(v, lo, hi):
    """||v[lo:hi]||, safe from overflow and underflow of the sum of squares.

    Gradients of diverging runs can exceed 1e154, where v_i^2 overflows although v is
    finite: the fast sum is rescaled by max |v_i| only in that rare case. Non-finite entries
    propagate as in torch and JAX: a NaN anywhere gives NaN, an infinite entry (and no NaN)
    gives inf; a sum of squares holding a NaN is NaN, so the check costs nothing on the fast path.
    """
    s = sumsq(v, lo, hi)
    if s < math.inf and s > 1e-280:
        return math.sqrt(s)
    m = maxabs(v, lo, hi)
    if m == 0.0 or not m < math.inf:
        return m                        # 0, inf or NaN
    return m * math.sqrt(scaled_sumsq(v, lo, hi, m))


@hot
def absmax_step(m, x):
    """max(m, |x|) for a running maximum m that keeps a NaN once seen: inf without NaN gives
    inf, any NaN gives NaN. (``max()`` skips a NaN in some argument orders, and replacing m
    whenever ``not (|x| <= m)`` would restart the maximum at the entry after a NaN.)"""
    a = abs(x)
    if a > m or a != a:
        return a
    return m


@hot
def maxabs(v, lo, hi):
    """max |v_i| over [lo, hi) (0 for an empty range); NaN if some v_i is NaN."""
    m = 0.0
    for i in range(lo, hi):
        m = absmax_step(m, v[i])
    return m


@hot
def scaled_sumsq(v, lo, hi, m):
    """sum (v_i / m)^2 over [lo, hi): the sum of squares rescaled by m = max |v_i|, which
    neither overflows nor underflows (the slow path of :func:`norm` and of the clipping rules)."""
    t = 0.0
    for i in range(lo, hi):
        q = v[i] / m
        t += q * q
    return t


@hot
def sqdist(v, w):
    """||v - w||^2 summed in SIMD lanes as :func:`sumsq`."""
    n = min(v.shape[0], w.shape[0])
    m = (n // 8) * 8
    s0, s1, s2, s3, s4, s5, s6, s7 = sqdist_lanes(v, w, m)
    for i in range(m, n):
        d = v[i] - w[i]
        s0 += d * d
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


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


@hot
def dist(v, w):
    """||v - w|| (safe from overflow and underflow of the squares, and NaN/inf as :func:`norm`)."""
    s = sqdist(v, w)
    if s < math.inf and s > 1e-280:     # else: overflow, or underflow into subnormals
        return math.sqrt(s)
    m = 0.0
    for i in range(v.shape[0]):
        m = absmax_step(m, v[i] - w[i])
    if m == 0.0 or not m < math.inf:
        return m                        # 0, inf or NaN
    t = 0.0
    for i in range(v.shape[0]):
        q = (v[i] - w[i]) / m
        t += q * q
    return m * math.sqrt(t)


# ----------------------------------------------------------------------------------------
# validation shared by the public functions
# ----------------------------------------------------------------------------------------
#: the largest value of the int64 counters and indices of the kernels
INT64_MAX = 2**63 - 1


def describe(v, limit=60):
    """A short one-line description of a value, for error messages."""
    if isinstance(v, np.ndarray) and v.ndim > 0:
        return f"an array of shape {v.shape} and dtype {v.dtype}"
    try:
        r = " ".join(repr(v).split())
    except Exception:       # a broken __repr__ must not hide the real error
        r = f"a {type(v).__name__}"
    return r if len(r) <= limit else r[:limit - 3] + "..."


#: keyword arguments users bring from torch/optax, and what dynclip calls them
ML_HINTS = {"lr": "the step size is a schedule: schedule=schedules.constant(lr)",
            "learning_rate": "the step size is a schedule: schedule=schedules.constant(learning_rate)",
            "max_norm": "the clipping threshold is lam: rule=clipping.classic(lam=max_norm, convention='torch')",
            "clip_value": "element-wise clipping is its own rule: clipping.value(v)",
            "momentum": "pass optimizer=optimizers.momentum(beta)",
            "weight_decay": "pass optimizer=optimizers.sgd(weight_decay=...) (or momentum/adam)",
            "batch": "the minibatch size is batch_size", "steps": "the number of steps is n_steps",
            "epochs": "dynclip counts steps: n_steps"}


def check_no_unknown(fn, unknown):
    """TypeError for unexpected keyword arguments, with a hint for the names torch/optax users try."""
    if unknown:
        k = sorted(unknown)[0]
        hint = f" ({ML_HINTS[k]})" if k in ML_HINTS else ""
        raise TypeError(f"{fn}() got an unexpected keyword argument {k!r}{hint}")


def check_int(name, v, lo=1, hi=INT64_MAX):
    """``v`` as an int in [lo, hi]: an int, a NumPy integer or an integral float (not a bool)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        else:
            raise ValueError(f"{name} must be an integer >= {lo}; got {describe(v)}")
    if v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {describe(v)}")
    if v > hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}]; got {describe(v)}")
    return int(v)


def check_real(name, v, what, ok=None):
    """``v`` as a float: a real number (int, float, NumPy scalar or 0-d array; not a bool or a string)
    with ``ok(value)`` true; else ValueError "{name} must be {what}; got ..."."""
    x = None
    if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iuf":
        x = float(v)
    elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        try:
            x = float(v)
        except OverflowError:       # an int beyond the float range
            x = math.inf if v > 0 else -math.inf
    if x is None or (ok is not None and not ok(x)):
        raise ValueError(f"{name} must be {what}; got {describe(v)}")
    return x


def check_choice(name, v, allowed):
    """``v`` if it is one of the strings ``allowed``; else ValueError naming ``name`` and the choices."""
    if not isinstance(v, str) or v not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {describe(v)}")
    return v


def check_bool(name, v, allow_none=False):
    """``v`` as a bool: True/False (or NumPy bools, 0 and 1); None too when ``allow_none``."""
    if v is None and allow_none:
        return None
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1)):
        return bool(v)
    raise ValueError(f"{name} must be True or False{' (or None)' if allow_none else ''}; got {describe(v)}")


def check_seed(seed, name="seed"):
    """A seed: a non-negative integer (not a bool)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {describe(seed)}")
    return int(seed)


def as_float_array(v, name, what="a float array"):
    """``v`` as a C-contiguous float64 array of its own shape (a scalar stays 0-d); ValueError
    "{name} must be {what}" if NumPy cannot convert it."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be {what}; got {describe(v)}") from None
    return np.ascontiguousarray(a) if a.ndim else a


def check_widths(widths, name="widths"):
    """Layer widths as a tuple of at least two ints >= 1 (from a list, tuple or 1-D array; not a string)."""
    msg = f"{name} must be a sequence of at least two integers >= 1; got {describe(widths)}"
    if isinstance(widths, (str, bytes, bytearray, memoryview)) or not isinstance(widths, (list, tuple, np.ndarray)):
        raise ValueError(msg)
    try:
        w = tuple(check_int(name, v) for v in widths)
    except (TypeError, ValueError):     # also a 0-d array (not iterable)
        raise ValueError(msg) from None
    if len(w) < 2:
        raise ValueError(msg)
    return w


def check_net(net):
    """``net`` is an MLP with valid widths and activation (also when built by hand, not by :func:`mlp`)."""
    if not isinstance(net, MLP):
        raise TypeError(f"net must be an MLP from dynclip.mlp(); got {type(net).__name__}")
    check_widths(net.widths, "net.widths")
    _code(Activation, net.activation, "net.activation")


def check_data(net, X, Y, loss):
    """Validate and cast X, Y; return (X, Y2d, loss_code)."""
    lk = loss_code(loss)
    X = as_float_array(X, "X", "a float array of shape (N, d_in)")
    if X.ndim != 2 or X.shape[1] != net.widths[0] or X.shape[0] < 1:
        raise ValueError(f"X must have shape (N, {net.widths[0]}) with N >= 1; got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite (no NaN or inf)")
    try:
        Y = np.asarray(Y)
        Yf = Y.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError("Y must be a numeric array") from None
    N, dout = X.shape[0], net.widths[-1]
    if lk == Loss.cross_entropy:
        if dout < 2:
            raise ValueError(f"loss 'cross_entropy' needs a net with >= 2 outputs (one per class); this net has "
                             f"{dout}: use widths ending in the number of classes, or loss 'mse' for one output")
        Yf = Yf.reshape(-1) if Yf.ndim == 2 and Yf.shape[1] == 1 else Yf
        if Yf.shape != (N,):
            raise ValueError(f"Y must have shape ({N},) of integer class labels for cross_entropy; got {Y.shape}")
        if not np.all(np.isfinite(Yf)) or np.any(Yf != np.round(Yf)) or np.any(Yf < 0) or np.any(Yf >= dout):
            raise ValueError(f"Y must hold integer class labels in [0, {dout}) for cross_entropy")
        Yf = Yf.reshape(N, 1)
    else:
        if Yf.ndim == 1 and dout == 1:
            Yf = Yf.reshape(N, 1) if Yf.shape[0] == N else Yf
        if Yf.shape != (N, dout):
            raise ValueError(f"Y must have shape ({N}, {dout})" + (f" or ({N},)" if dout == 1 else "")
                             + f"; got {Y.shape}")
        if not np.all(np.isfinite(Yf)):
            raise ValueError("Y must be finite (no NaN or inf)")
    return X, np.ascontiguousarray(Yf), lk


def check_theta(net, theta, name="theta", rows=None):
    th = as_float_array(theta, name)
    P = net.n_params
    if rows is None:
        ok = th.shape == (P,)
        want = f"({P},)"
    else:
        ok = th.shape in ((P,), (rows, P))
        want = f"({P},) or ({rows}, {P})"
    if not ok:
        raise ValueError(f"{name} must have shape {want}; got {th.shape}")
    if not np.all(np.isfinite(th)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return th


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


@hot
def step_dist(th, u, a, w, th0):
    """The SA step th <- th - a (w u) in place, fused with the pass that returns ||th - th0||
    (bit-identical to the step followed by :func:`dist`). With w = 1 it is th - a u; with
    u = g and w = 1 / c it applies a scalar clipping rule without writing the update."""
    n = min(th.shape[0], u.shape[0], th0.shape[0])
    m = (n // 8) * 8
    s0, s1, s2, s3, s4, s5, s6, s7 = step_sqdist_lanes(th, u, a, w, th0, m)
    for i in range(m, n):
        th[i] -= a * (w * u[i])
        d = th[i] - th0[i]
        s0 += d * d
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    if s < math.inf and s > 1e-280:
        return math.sqrt(s)
    return dist(th, th0)
