"""The compiled stochastic-approximation kernel behind :func:`dynclip.simulate`.

One step k of replica r (Ramaswamy eq. 10 with projection, eq. 9):
``theta <- Pi(theta - a(k) u_k)`` with ``u_k`` the clipped minibatch update (with momentum,
Adam or weight decay, :mod:`dynclip.optimizers`, the optimiser's step from ``u_k`` replaces
``a(k) u_k``). The
kernel runs a chunk of steps ``k0 .. k1-1`` for a block of replicas (one block per thread,
:func:`dynclip._jit.run_rows`); all state
lives in arrays owned by the wrapper, so a run split into chunks is bit-identical to one
run in a single chunk, and each replica only touches its own rows (bit-identical for any
thread count).
"""
import math
from collections import namedtuple

import numpy as np

from ._jit import njit, hot
from .clipping import (apply, apply_gn, alrc_lmax, alrc_moments, alrc_weights, clip_factor, clips_losses,
                       factor_theta_norm, is_scalar_rule, is_stateful, scale_factor, NONE, TINY)
from .optimizers import optimizer_step
from ._norms import dist, step_dist, norm
from .model import (make_workspace, block_loss_grad, forward, losses_and_dout, backward, sample_norms, full_loss,
                    EVAL_BLOCK)
from .rng import randint

# per-replica state columns, named: accumulators acc[r, :] (float64) ...
A_S, A_MAXDISP, A_MAXNOISE, A_WG, A_WC, A_WN, A_NCLIP, A_NDEC, A_M2 = range(9)
N_ACC = 9
# ... (A_S = sum a ||u||, the maxima of ||theta - theta0|| and ||xi||, the sums of ||g||, c and their
# count since the last record, clip decisions taken and clipped, sum a^2 ||u - H||^2),
# status[r, :] (int64): running (1) or stopped (0), the step it stopped at (-1: never), stopped
# because non-finite (1), the step the state is at (written by the kernel itself) ...
S_RUNNING, S_STOP_STEP, S_NONFINITE, S_STEP = range(4)
N_STATUS = 4
# ... and records rec[r, :, j]
R_LOSS, R_GNORM, R_CFAC, R_DISP, R_S, R_NOISE, R_REF = range(7)
N_REC = 7

# The kernel's arguments, in named bundles (NamedTuples compile to plain structs: no cost in the kernels).
#: the network: layer widths, parameter offsets, activation code
Net = namedtuple("Net", "widths offs act")
#: the data set, the loss code, and the replayed minibatch indices (shape (0, 0, 0) when drawn)
Data = namedtuple("Data", "X Y lossk idx")
#: fixed for the run: clip rule, optimiser, batch size, clip_per="sample", projection and blow-up radii,
#: track_noise, and the reference flow at the record steps (shape (0, 0) without one)
Setup = namedtuple("Setup", "rule opt B per_sample proj blowup track ref")
#: steps k0 .. k1-1 of a run of n_total steps: their step sizes a_tab[k - k0], the record steps, and the
#: index of the next record j0
Chunk = namedtuple("Chunk", "k0 k1 n_total a_tab rec_steps j0")
#: the run state, one row per replica (:mod:`dynclip.engine` holds it as a dict of these names)
State = namedtuple("State", "theta theta0 rng mu xi acc status rec rec_theta opt_m opt_v opt_t")
#: one replica's working arrays: workspaces for a minibatch, one sample and a block of the data set, their
#: row lists, the gradient g, the clipped update u, a spare vector, and H and a spare for track_noise
Scratch = namedtuple("Scratch", "ws ws1 wsE rowsE rows rows1 g u tmp H tmp2")
#: one minibatch's clipped update: clip factor c, ALRC's moment inputs m1, m2 (0 for other rules), ||g||,
#: ||update||, and where the update is: ``scale > 0`` means it is scale * g (a scalar rule: u is not
#: written), ``scale == 0`` that it is in u
Update = namedtuple("Update", "c m1 m2 gnorm unorm scale")


@hot
def _norm(v):
    return norm(v, 0, v.shape[0])


@hot
def sample_update(theta, widths, offs, act, lossk, X, Y, rule, lmax, row, ws1, rows1, out):
    """Clipped per-sample update u(theta; z_row) into ``out``; returns (c, clipped, ||g||).

    For a rule that clips losses (ALRC) the per-example loss cap ``lmax`` scales the gradient by
    min(1, lmax / L). This is the integrand of the mean field H (Ramaswamy eq. 21).
    """
    rows1[0] = row
    if clips_losses(rule):
        forward(theta, widths, offs, act, X, rows1, 1, ws1)
        losses_and_dout(widths, lossk, Y, rows1, 1, ws1)
        ncl = alrc_weights(rule, ws1.lossv, 1, lmax, ws1.wts)[0]
        w = ws1.wts[0]
        backward(theta, widths, offs, act, 1, ws1, out, True)
        if ncl > 0:
            return 1.0 / w, True, _norm(out) / w
        return 1.0, False, _norm(out)
    block_loss_grad(theta, widths, offs, act, lossk, X, Y, rows1, 1, ws1, out, 1.0, True)
    gn = _norm(out)
    c, clipped = apply(rule, out, theta, widths, offs, out)
    return c, clipped, gn


@hot
def _sample_weights(theta, widths, offs, act, rule, lmax, nb, ws, scale):
    """Per-sample weights w_b * scale into ws.wts for the last forward pass (scalar rules and
    rules that clip losses: the clipped per-sample gradient is w_b g_b); returns the number of
    clipped samples.
    A sample with a non-finite gradient norm gets weight NaN, so the weighted sum (H, or the
    per-sample-clipped update) is NaN, as clipping that gradient vector would give."""
    if clips_losses(rule):
        ncl = alrc_weights(rule, ws.lossv, nb, lmax, ws.wts)[0]
        for b in range(nb):
            ws.wts[b] = ws.wts[b] * scale
        return ncl
    if rule.kind == NONE:
        for b in range(nb):
            ws.wts[b] = scale
        return 0
    ncl = 0
    thn = factor_theta_norm(rule, theta)
    sample_norms(theta, widths, offs, act, nb, ws, ws.wts)
    for b in range(nb):
        gn = ws.wts[b]
        w, c, clipped = scale_factor(rule, gn, thn)
        if not (gn < math.inf):
            w = math.nan        # a non-finite per-sample gradient: w * g is not finite either
        ws.wts[b] = w * scale
        if clipped:
            ncl += 1
    return ncl


@hot
def mean_field(theta, widths, offs, act, lossk, X, Y, rule, lmax, wsE, rowsE, ws1, rows1, tmp, H):
    """H(theta) = mean over the data set of the clipped per-sample update (exact).

    Scalar rules and rules that clip losses run as weighted block backprop (per-sample norms from the rank-1
    identity, then one backward pass with weights w_j / N); the per-layer and element-wise
    rules clip each per-sample gradient vector.
    """
    N = X.shape[0]
    H[:] = 0.0
    if is_scalar_rule(rule) or clips_losses(rule):
        nbw = wsE.lossv.shape[0]
        for s in range(0, N, nbw):
            nb = min(nbw, N - s)
            for b in range(nb):
                rowsE[b] = s + b
            forward(theta, widths, offs, act, X, rowsE, nb, wsE)
            losses_and_dout(widths, lossk, Y, rowsE, nb, wsE)
            _sample_weights(theta, widths, offs, act, rule, lmax, nb, wsE, 1.0 / N)
            backward(theta, widths, offs, act, nb, wsE, H)
        return
    for j in range(N):
        sample_update(theta, widths, offs, act, lossk, X, Y, rule, lmax, j, ws1, rows1, tmp)
        for i in range(H.shape[0]):
            H[i] += tmp[i]
    for i in range(H.shape[0]):
        H[i] /= N


@hot
def _weighted_update(theta, widths, offs, act, B, ws, g, u, ncl, acc, r):
    """u = sum_b ws.wts[b] grad l_b for the last forward pass (weights set by the caller) and g =
    the plain minibatch mean (a second backward pass only when ncl > 0 samples were reweighted);
    counts the ncl clip decisions out of B; returns (||g||, ||u||)."""
    backward(theta, widths, offs, act, B, ws, u, True)
    if ncl > 0:
        for b in range(B):
            ws.wts[b] = 1.0 / B
        backward(theta, widths, offs, act, B, ws, g, True)
    else:
        for i in range(theta.shape[0]):
            g[i] = u[i]
    acc[r, A_NCLIP] += ncl
    acc[r, A_NDEC] += B
    return _norm(g), _norm(u)


@hot
def minibatch_update(theta, net, data, rule, B, per_sample, lmax, rows, ws, ws1, rows1, g, u, tmp, acc, r):
    """The clipped update of the minibatch ``rows[:B]`` (each sample clipped when ``per_sample``)
    and its raw mean gradient ``g``: an
    :data:`Update` (with ``scale > 0`` the update is scale * g and ``u`` is not written). Counts
    clip decisions into acc[r, A_NCLIP] and acc[r, A_NDEC]. For ALRC, m1 and m2 are this step's
    inputs to the running moments mu1, mu2 (:func:`dynclip.clipping.alrc_weights`).
    """
    widths, offs, act = net.widths, net.offs, net.act
    X, Y, lossk = data.X, data.Y, data.lossk
    P = theta.shape[0]
    if clips_losses(rule):
        forward(theta, widths, offs, act, X, rows, B, ws)
        losses_and_dout(widths, lossk, Y, rows, B, ws)
        ncl, m1, m2 = alrc_weights(rule, ws.lossv, B, lmax, ws.wts)
        for b in range(B):
            ws.wts[b] = ws.wts[b] / B
        gn, un = _weighted_update(theta, widths, offs, act, B, ws, g, u, ncl, acc, r)
        c = clip_factor(gn, un) if ncl > 0 else 1.0
        return Update(c, m1, m2, gn, un, 0.0)
    if per_sample and is_scalar_rule(rule):
        forward(theta, widths, offs, act, X, rows, B, ws)
        losses_and_dout(widths, lossk, Y, rows, B, ws)
        ncl = _sample_weights(theta, widths, offs, act, rule, lmax, B, ws, 1.0 / B)
        gn, un = _weighted_update(theta, widths, offs, act, B, ws, g, u, ncl, acc, r)
        if ncl == 0:
            return Update(1.0, 0.0, 0.0, gn, un, 0.0)
        return Update(clip_factor(gn, un), 0.0, 0.0, gn, un, 0.0)
    if per_sample:
        g[:] = 0.0
        u[:] = 0.0
        for b in range(B):
            rows1[0] = rows[b]
            block_loss_grad(theta, widths, offs, act, lossk, X, Y, rows1, 1, ws1, tmp, 1.0, True)
            for i in range(P):
                g[i] += tmp[i] / B
            c, clipped = apply(rule, tmp, theta, widths, offs, tmp)
            for i in range(P):
                u[i] += tmp[i] / B
            acc[r, A_NDEC] += 1
            if clipped:
                acc[r, A_NCLIP] += 1
        un = _norm(u)
        gn = _norm(g)
        if un == gn:
            return Update(1.0, 0.0, 0.0, gn, un, 0.0)
        return Update(clip_factor(gn, un), 0.0, 0.0, gn, un, 0.0)
    block_loss_grad(theta, widths, offs, act, lossk, X, Y, rows, B, ws, g, 1.0 / B, True)
    gn = _norm(g)
    acc[r, A_NDEC] += 1
    if is_scalar_rule(rule):
        w, c, clipped = scale_factor(rule, gn, factor_theta_norm(rule, theta))
        if clipped:
            acc[r, A_NCLIP] += 1
        if w >= TINY:       # else the overflow branch of apply_gn
            return Update(c, 0.0, 0.0, gn, gn * w, w)
    c, clipped = apply_gn(rule, g, gn, theta, widths, offs, u)
    if clipped:
        if not is_scalar_rule(rule):
            acc[r, A_NCLIP] += 1
        return Update(c, 0.0, 0.0, gn, _norm(u), 0.0)
    return Update(c, 0.0, 0.0, gn, gn, 0.0)


@hot
def _record(j, r, th, th0, net, data, setup, st, scr):
    """Record j of replica r: full-data loss, mean ||g|| and c since the last record, displacement,
    sum a ||u||, ||xi||, the distance to the reference flow, theta."""
    acc, rec, rec_theta = st.acc, st.rec, st.rec_theta
    rec[r, R_LOSS, j] = full_loss(th, net.widths, net.offs, net.act, data.lossk, data.X, data.Y, scr.wsE, scr.rowsE)
    if acc[r, A_WN] > 0:
        rec[r, R_GNORM, j] = acc[r, A_WG] / acc[r, A_WN]
        rec[r, R_CFAC, j] = acc[r, A_WC] / acc[r, A_WN]
    acc[r, A_WG] = 0.0
    acc[r, A_WC] = 0.0
    acc[r, A_WN] = 0.0
    rec[r, R_DISP, j] = dist(th, th0)
    rec[r, R_S, j] = acc[r, A_S]
    if setup.track:
        rec[r, R_NOISE, j] = _norm(st.xi[r])
    ref = setup.ref
    if ref.shape[0] > 0:
        s = 0.0
        for i in range(th.shape[0]):
            s += (th[i] - ref[j, i]) ** 2
        rec[r, R_REF, j] = math.sqrt(s)
    if rec_theta.shape[2] > 0:
        for i in range(th.shape[0]):
            rec_theta[r, j, i] = th[i]


@njit
def _replica(r, ch, net, data, setup, st):
    """Steps ch.k0 .. ch.k1-1 of replica r: its working arrays, its theta in aligned copies, the steps,
    and the final record at the end of the run."""
    N = data.X.shape[0]
    P = st.theta.shape[1]
    widths, B, track = net.widths, setup.B, setup.track
    nE = min(EVAL_BLOCK, N)
    scr = Scratch(make_workspace(widths, B), make_workspace(widths, 1), make_workspace(widths, nE),
                  np.zeros(nE, dtype=np.int64), np.zeros(B, dtype=np.int64), np.zeros(1, dtype=np.int64),
                  _aligned(P), _aligned(P), _aligned(P), np.zeros(P) if track else np.zeros(0),
                  np.zeros(P) if track else np.zeros(0))
    th = _aligned(P)
    th0 = _aligned(P)
    th[:] = st.theta[r]
    th0[:] = st.theta0[r]
    j = _steps(r, ch, net, data, setup, st, th, th0, st.opt_m[r], st.opt_v[r], scr)
    st.theta[r, :] = th
    if ch.k1 == ch.n_total and j < ch.rec_steps.shape[0] and ch.rec_steps[j] == ch.k1 and st.status[r, S_RUNNING] == 1:
        _record(j, r, th, th0, net, data, setup, st, scr)


@njit
def _aligned(n):
    """A zeroed float64 array of length n whose data starts on a 64-byte boundary (a cache line:
    8-lane loads and stores then never straddle two lines)."""
    buf = np.zeros(n + 8)
    a = (-(buf.ctypes.data // 8)) % 8
    return buf[a:a + n]


@hot
def _project(th, proj):
    """th <- Pi(th): onto the ball ||th|| <= proj (eq. 9; nothing for proj = inf)."""
    if proj < math.inf:
        tn = _norm(th)
        if tn > proj:
            f = proj / tn
            for i in range(th.shape[0]):
                th[i] *= f


@hot
def _steps(r, ch, net, data, setup, st, th, th0, om, ov, scr):
    """Steps ch.k0 .. ch.k1-1 of replica r on its (aligned) state th; returns the next record index.

    ``setup.opt`` is the optimiser (:mod:`dynclip.optimizers`); ``om``, ``ov`` are replica r's rows of
    its state and ``st.opt_t[r]`` its step count. Plain SGD (kind 0) without weight decay is the fused
    step below. The noise xi uses the clipped update u: the weight-decay term of the step, mu theta,
    is also the one of the mean field H + mu theta, so u - H is the noise with or without it.
    """
    widths, offs, act = net.widths, net.offs, net.act
    X, Y, lossk, idx = data.X, data.Y, data.lossk, data.idx
    rule, opt, B, proj, track = setup.rule, setup.opt, setup.B, setup.proj, setup.track
    rng, mu, xi, acc, status = st.rng, st.mu, st.xi, st.acc, st.status
    g, u, H, rows = scr.g, scr.u, scr.H, scr.rows
    N = X.shape[0]
    P = th.shape[0]
    K = ch.rec_steps.shape[0]
    use_idx = idx.shape[0] > 0
    j = ch.j0
    for k in range(ch.k0, ch.k1):
        if status[r, S_RUNNING] == 0:
            return j
        if j < K and ch.rec_steps[j] == k:
            _record(j, r, th, th0, net, data, setup, st, scr)
            j += 1
        for b in range(B):
            if use_idx:
                rows[b] = idx[r, k, b]
            else:
                rows[b] = randint(rng, r, N)
        lmax = math.inf
        if clips_losses(rule):
            lmax = alrc_lmax(rule, mu[r, 0], mu[r, 1])
        if track:
            mean_field(th, widths, offs, act, lossk, X, Y, rule, lmax, scr.wsE, scr.rowsE, scr.ws1, scr.rows1,
                       scr.tmp2, H)
        # (the working arrays one by one: a Scratch is ~35 arrays, passed by value at every call)
        up = minibatch_update(th, net, data, rule, B, setup.per_sample, lmax, rows, scr.ws, scr.ws1, scr.rows1, g, u,
                              scr.tmp, acc, r)
        v = u               # the update is w v: the clipped u, or g scaled by a scalar rule's w
        w = up.scale
        if w > 0.0:
            v = g
        else:
            w = 1.0
        a = ch.a_tab[k - ch.k0]
        if opt.kind != 0 or opt.weight_decay != 0.0:
            optimizer_step(opt, th, v, w, a, om, ov, st.opt_t, r)
            _project(th, proj)
            d = dist(th, th0)
        elif proj < math.inf:
            for i in range(P):
                th[i] -= a * (w * v[i])
            _project(th, proj)
            d = dist(th, th0)
        else:
            d = step_dist(th, v, a, w, th0)
        if track:
            m2 = 0.0
            for i in range(P):
                dm = w * v[i] - H[i]
                xi[r, i] += a * dm
                m2 += dm * dm
            acc[r, A_M2] += a * a * m2
            nn = _norm(xi[r])
            if nn > acc[r, A_MAXNOISE] or nn != nn:
                acc[r, A_MAXNOISE] = nn
        if is_stateful(rule):
            mu[r, 0], mu[r, 1] = alrc_moments(rule, mu[r, 0], mu[r, 1], up.m1, up.m2)
        gn = up.gnorm
        acc[r, A_S] += a * up.unorm
        acc[r, A_WG] += gn
        acc[r, A_WC] += up.c
        acc[r, A_WN] += 1.0
        if d > acc[r, A_MAXDISP]:
            acc[r, A_MAXDISP] = d
        # beyond the radius, or non-finite (NaN fails both); a non-finite gradient norm stops the
        # replica too, even if its clipped update happened to be finite
        if not (d <= setup.blowup and d < math.inf and gn < math.inf):
            status[r, S_RUNNING] = 0
            status[r, S_STOP_STEP] = k + 1
            z = 0.0
            for i in range(P):
                z += th[i] * 0.0                    # NaN iff some entry is inf or NaN
            if z != z:
                acc[r, A_MAXDISP] = math.inf
            if z != z or not (gn < math.inf):
                status[r, S_NONFINITE] = 1
            return j
    return j


@njit
def run_chunk(r0, r1, ch, net, data, setup, st):
    """Run the steps of chunk ``ch`` for replicas r0 .. r1-1 (called through dynclip._jit.run_rows).
    See dynclip.engine.simulate."""
    for r in range(r0, r1):
        _replica(r, ch, net, data, setup, st)
    # the step reached is part of the state, written by the kernel itself: a Ctrl-C that lands
    # right after this call returns still sees a consistent (state, step) pair
    for r in range(r0, r1):
        st.status[r, S_STEP] = ch.k1
