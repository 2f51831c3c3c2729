"""The mean field H(theta) that clipped SGD tracks (Ramaswamy eqs. 20-21), and the clipping bias.

Sampling is uniform over the finite data set, so for per-sample clipping (and for batch
size 1) ``H(theta) = (1/N) sum_j u(theta; z_j)`` is computed exactly, with the same
per-sample gradient and the same clipping ``apply`` as the engine. For minibatch clipping
with B > 1 the expectation over all N**B minibatches is not tractable; :func:`H` then
returns a deterministic Monte-Carlo estimate over ``n_batches`` frozen minibatches drawn
with ``seed`` (documented as an estimate, with its standard error available from
:func:`H_batch_estimate`).

ALRC: its running moments (mu1, mu2) are constant-gain averages, the fast variables of a
two-timescale system, so under decreasing steps the loss cap tracks a function of theta and
the slow dynamics is governed by H at a frozen cap. :func:`H` therefore takes the cap
``lmax`` (default: from the rule's starting moments) instead of integrating an ODE on the
extended state (theta, mu1, mu2); with the cap frozen, H is the gradient of the log-capped
loss E psi(L) (a true gradient field, unlike per-sample norm clipping).

H is the mean field of clipped *SGD* (``simulate``'s default optimiser); momentum and Adam
(:mod:`dynclip.optimizers`) are not described by it.
"""
import numpy as np
from numba import prange

from ._jit import njit, pjit
from ._kernels import mean_field, minibatch_update, N_ACC
from .clipping import ClipKind, check_rule, alrc_lmax
from .model import (check_net, check_data, check_theta, make_workspace, full_loss_grad, forward,
                    losses_and_dout, sample_norms, EVAL_BLOCK, as_float_array, check_int, check_real,
                    check_choice, check_seed)
from .engine import CLIP_PER


def _thetas(net, theta):
    th = as_float_array(theta, "theta", "a float array of shape (P,) or (M, P)")
    single = th.ndim == 1
    th2 = check_theta(net, th.reshape(-1, net.n_params) if th.ndim == 2 and th.shape[-1] == net.n_params else th,
                      "theta", rows=th.shape[0] if th.ndim == 2 else None)
    return np.ascontiguousarray(th2.reshape(-1, net.n_params)), single


def _lmax(rule, lmax):
    if lmax is not None:
        lmax = check_real("lmax", lmax, "a number >= 0 (inf: never clip)", lambda x: x >= 0)
    if rule.kind != ClipKind.alrc:
        return np.inf
    if lmax is None:
        return float(alrc_lmax(rule, rule.mu1, rule.mu2))
    return lmax


@njit
def _H_rows(thetas, lo, hi, widths, offs, act, lossk, X, Y, rule, lmax, out):
    P = thetas.shape[1]
    nE = min(EVAL_BLOCK, X.shape[0])
    ws1 = make_workspace(widths, 1)
    wsE = make_workspace(widths, nE)
    rows1 = np.zeros(1, dtype=np.int64)
    rowsE = np.zeros(nE, dtype=np.int64)
    tmp = np.zeros(P)
    for m in range(lo, hi):
        mean_field(thetas[m], widths, offs, act, lossk, X, Y, rule, lmax, wsE, rowsE, ws1, rows1, tmp, out[m])


@pjit
def _H_many(thetas, widths, offs, act, lossk, X, Y, rule, lmax, out):
    M = thetas.shape[0]
    nblk = min(M, 64)
    for k in prange(nblk):
        _H_rows(thetas, k * M // nblk, (k + 1) * M // nblk, widths, offs, act, lossk, X, Y, rule, lmax, out)


@njit
def _gradF_rows(thetas, lo, hi, widths, offs, act, lossk, X, Y, out, losses):
    nE = min(EVAL_BLOCK, X.shape[0])
    ws = make_workspace(widths, nE)
    rows = np.zeros(nE, dtype=np.int64)
    for m in range(lo, hi):
        losses[m] = full_loss_grad(thetas[m], widths, offs, act, lossk, X, Y, ws, rows, out[m])


@pjit
def _gradF_many(thetas, widths, offs, act, lossk, X, Y, out, losses):
    M = thetas.shape[0]
    nblk = min(M, 64)
    for k in prange(nblk):
        _gradF_rows(thetas, k * M // nblk, (k + 1) * M // nblk, widths, offs, act, lossk, X, Y, out, losses)


#: below this many points the serial kernels run: a parallel launch costs more than the work
#: on small problems (and much more when the other core is busy)
SERIAL_BELOW = 4


@pjit
def _H_batch_many(thetas, widths, offs, act, lossk, X, Y, rule, batches, out, out_sq):
    M, P = thetas.shape
    nb, B = batches.shape
    for m in prange(M):
        ws = make_workspace(widths, B)
        ws1 = make_workspace(widths, 1)
        rows1 = np.zeros(1, dtype=np.int64)
        g = np.zeros(P)
        u = np.zeros(P)
        tmp = np.zeros(P)
        acc = np.zeros((1, N_ACC))
        out[m, :] = 0.0
        out_sq[m] = 0.0
        for s in range(nb):
            w = minibatch_update(thetas[m], widths, offs, act, lossk, X, Y, rule, np.inf, False, batches[s], B,
                                 ws, ws1, rows1, g, u, tmp, acc, 0)[5]
            if w > 0.0:     # a scalar rule: the update is w g
                for i in range(P):
                    u[i] = w * g[i]
            sq = 0.0
            for i in range(P):
                out[m, i] += u[i] / nb
                sq += u[i] * u[i]
            out_sq[m] += sq / nb


@pjit
def _sample_norms(thetas, widths, offs, act, lossk, X, Y, out):
    M = thetas.shape[0]
    N = X.shape[0]
    nE = min(EVAL_BLOCK, N)
    for m in prange(M):
        ws = make_workspace(widths, nE)
        rows = np.zeros(nE, dtype=np.int64)
        nrm = np.zeros(nE)
        for s in range(0, N, nE):
            nb = min(nE, N - s)
            for b in range(nb):
                rows[b] = s + b
            forward(thetas[m], widths, offs, act, X, rows, nb, ws)
            losses_and_dout(widths, lossk, Y, rows, nb, ws)
            sample_norms(thetas[m], widths, offs, act, nb, ws, nrm)
            for b in range(nb):
                out[m, s + b] = nrm[b]


def H(net, X, Y, rule, theta, loss="mse", *, batch_size=1, clip_per="batch", lmax=None,
      n_batches=4096, seed=0):
    """Mean field H(theta) = E[u(theta; minibatch)], the drift of clipped SGD.

    Parameters
    ----------
    net, X, Y, rule, loss : as for :func:`dynclip.simulate`
    theta : array (P,) or (M, P)
        One point or many (computed in parallel).
    batch_size, clip_per : as for simulate (an integer >= 1; "batch" or "sample")
        Exact for batch_size 1, for clip_per="sample" and for the rules none/alrc; otherwise
        a Monte-Carlo estimate over ``n_batches`` (an integer >= 1) minibatches drawn with
        ``seed`` (an integer >= 0).
    lmax : float >= 0, optional
        ALRC only (ignored by other rules): the frozen loss cap (default from the rule's mu1, mu2).

    Returns
    -------
    ndarray (P,) or (M, P)
    """
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    th, single = _thetas(net, theta)
    batch_size = check_int("batch_size", batch_size)
    clip_per = check_choice("clip_per", clip_per, CLIP_PER)
    n_batches = check_int("n_batches", n_batches)
    seed = check_seed(seed)
    lmax = _lmax(rule, lmax)
    out = np.zeros_like(th)
    if batch_size == 1 or clip_per == "sample" or rule.kind in (ClipKind.none, ClipKind.alrc):
        serial = th.shape[0] < SERIAL_BELOW
        kern = _H_rows if serial else _H_many
        args = (th, 0, th.shape[0]) if serial else (th,)
        kern(*args, net.widths_array(), net.offsets(), net.act, lk, X, Y2, rule, lmax, out)
    else:
        out = H_batch_estimate(net, X, Y, rule, th, loss, batch_size=batch_size, n_batches=n_batches,
                               seed=seed)[0]
    return out[0] if single else out


def H_batch_estimate(net, X, Y, rule, theta, loss="mse", *, batch_size, n_batches=4096, seed=0):
    """Monte-Carlo H for minibatch clipping: mean of u over frozen minibatches, and its standard error.

    Returns ``(H, se)`` with ``se`` the root-mean-square standard error per coordinate.
    """
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    rule = check_rule(rule)
    th, single = _thetas(net, theta)
    batch_size = check_int("batch_size", batch_size)
    n_batches = check_int("n_batches", n_batches)
    rng = np.random.default_rng(check_seed(seed))
    batches = rng.integers(0, X.shape[0], size=(n_batches, batch_size)).astype(np.int64)
    out = np.zeros_like(th)
    sq = np.zeros(th.shape[0])
    _H_batch_many(th, net.widths_array(), net.offsets(), net.act, lk, X, Y2, rule, batches, out, sq)
    var = np.maximum(sq - np.sum(out ** 2, axis=1), 0.0) / net.n_params
    se = np.sqrt(var / n_batches)
    return (out[0], se[0]) if single else (out, se)


def _loss_grad(net, X, Y, theta, loss):
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    th, single = _thetas(net, theta)
    out = np.zeros_like(th)
    losses = np.zeros(th.shape[0])
    if th.shape[0] < SERIAL_BELOW:
        _gradF_rows(th, 0, th.shape[0], net.widths_array(), net.offsets(), net.act, lk, X, Y2, out, losses)
    else:
        _gradF_many(th, net.widths_array(), net.offsets(), net.act, lk, X, Y2, out, losses)
    return (float(losses[0]), out[0]) if single else (losses, out)


def grad_F(net, X, Y, theta, loss="mse", *, return_loss=False):
    """Gradient of the unclipped full-data loss F(theta) = mean_j l(theta; z_j).

    theta (P,) or (M, P) (parallel over M). With ``return_loss=True`` returns ``(F, grad)``.
    """
    F_, g = _loss_grad(net, X, Y, theta, loss)
    return (F_, g) if return_loss else g


def F(net, X, Y, theta, loss="mse"):
    """Full-data loss F(theta) (array for many theta)."""
    return _loss_grad(net, X, Y, theta, loss)[0]


def clip_bias(net, X, Y, rule, theta, loss="mse", **kw):
    """H(theta) - grad F(theta): what clipping adds to the drift (zero iff no sample is clipped)."""
    return H(net, X, Y, rule, theta, loss, **kw) - grad_F(net, X, Y, theta, loss)


def per_sample_grad_norms(net, X, Y, theta, loss="mse"):
    """Norms ||grad l(theta; z_j)|| for every sample j (to set lam by a percentile).

    theta (P,) gives (N,); theta (M, P) gives (M, N), computed in parallel.
    """
    check_net(net)
    X, Y2, lk = check_data(net, X, Y, loss)
    th, single = _thetas(net, theta)
    out = np.zeros((th.shape[0], X.shape[0]))
    _sample_norms(th, net.widths_array(), net.offsets(), net.act, lk, X, Y2, out)
    return out[0] if single else out
