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

import numpy as np

from ._jit import njit, hot
from .clipping import (apply, apply_gn, alrc_lmax, alrc_moments, alrc_weights, clip_factor, clips_losses,
                       factor_theta_norm, is_scalar_rule, is_stateful, scale_factor, NONE, TINY)
from .optimizers import optimizer_step
from ._norms import dist, step_dist, norm
from .model import (make_workspace, block_loss_grad, forward, losses_and_dout, backward, sample_norms, full_loss,
                    EVAL_BLOCK)
from .rng import randint

# accumulator columns (acc[r, :])
A_S, A_MAXDISP, A_MAXNOISE, A_WG, A_WC, A_WN, A_NCLIP, A_NDEC, A_M2 = range(9)
N_ACC = 9
# record rows (rec[r, :, j])
R_LOSS, R_GNORM, R_CFAC, R_DISP, R_S, R_NOISE, R_REF = range(7)
N_REC = 7


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
def minibatch_update(theta, widths, offs, act, lossk, X, Y, rule, lmax, per_sample, rows, B,
                     ws, ws1, rows1, g, u, tmp, acc, r):
    """The clipped minibatch update and the raw minibatch gradient g.

    Returns (c, m1, m2, ||g||, ||update||, w); counts clip decisions into acc[r, A_NCLIP] and
    acc[r, A_NDEC]. With w > 0 the update is w g (a scalar rule: no update vector is written,
    the step applies w); with w = 0 it is written into u. For ALRC, m1 and m2 are this step's
    inputs to the running moments mu1, mu2 (:func:`dynclip.clipping.alrc_weights`); 0 for the
    other rules.
    """
    P = theta.shape[0]
    if clips_losses(rule):
        forward(theta, widths, offs, act, X, rows, B, ws)
        losses_and_dout(widths, lossk, Y, rows, B, ws)
        ncl, m1, m2 = alrc_weights(rule, ws.lossv, B, lmax, ws.wts)
        for b in range(B):
            ws.wts[b] = ws.wts[b] / B
        gn, un = _weighted_update(theta, widths, offs, act, B, ws, g, u, ncl, acc, r)
        c = clip_factor(gn, un) if ncl > 0 else 1.0
        return c, m1, m2, gn, un, 0.0
    if per_sample and is_scalar_rule(rule):
        forward(theta, widths, offs, act, X, rows, B, ws)
        losses_and_dout(widths, lossk, Y, rows, B, ws)
        ncl = _sample_weights(theta, widths, offs, act, rule, lmax, B, ws, 1.0 / B)
        gn, un = _weighted_update(theta, widths, offs, act, B, ws, g, u, ncl, acc, r)
        if ncl == 0:
            return 1.0, 0.0, 0.0, gn, un, 0.0
        return clip_factor(gn, un), 0.0, 0.0, gn, un, 0.0
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
            return 1.0, 0.0, 0.0, gn, un, 0.0
        return clip_factor(gn, un), 0.0, 0.0, gn, un, 0.0
    block_loss_grad(theta, widths, offs, act, lossk, X, Y, rows, B, ws, g, 1.0 / B, True)
    gn = _norm(g)
    acc[r, A_NDEC] += 1
    if is_scalar_rule(rule):
        w, c, clipped = scale_factor(rule, gn, factor_theta_norm(rule, theta))
        if clipped:
            acc[r, A_NCLIP] += 1
        if w >= TINY:       # else the overflow branch of apply_gn
            return c, 0.0, 0.0, gn, gn * w, w
    c, clipped = apply_gn(rule, g, gn, theta, widths, offs, u)
    if clipped:
        if not is_scalar_rule(rule):
            acc[r, A_NCLIP] += 1
        return c, 0.0, 0.0, gn, _norm(u), 0.0
    return c, 0.0, 0.0, gn, gn, 0.0


@hot
def _record(j, r, th, th0, widths, offs, act, lossk, X, Y, wsE, rowsE, acc, rec, rec_theta,
            xi, track, ref, use_ref):
    rec[r, R_LOSS, j] = full_loss(th, widths, offs, act, lossk, X, Y, wsE, rowsE)
    if acc[r, A_WN] > 0:
        rec[r, R_GNORM, j] = acc[r, A_WG] / acc[r, A_WN]
        rec[r, R_CFAC, j] = acc[r, A_WC] / acc[r, A_WN]
    acc[r, A_WG] = 0.0
    acc[r, A_WC] = 0.0
    acc[r, A_WN] = 0.0
    rec[r, R_DISP, j] = dist(th, th0)
    rec[r, R_S, j] = acc[r, A_S]
    if track:
        rec[r, R_NOISE, j] = _norm(xi[r])
    if use_ref:
        s = 0.0
        for i in range(th.shape[0]):
            s += (th[i] - ref[j, i]) ** 2
        rec[r, R_REF, j] = math.sqrt(s)
    if rec_theta.shape[2] > 0:
        for i in range(th.shape[0]):
            rec_theta[r, j, i] = th[i]


@njit
def _replica(r, k0, k1, n_total, a_tab, rec_steps, j0, widths, offs, act, lossk, X, Y, rule, B,
             per_sample, idx, proj, blowup, track, ref, theta, theta0, rng, mu, xi, acc, status,
             rec, rec_theta, opt, om, ov, ot):
    N = X.shape[0]
    P = theta.shape[1]
    K = rec_steps.shape[0]
    ws = make_workspace(widths, B)
    ws1 = make_workspace(widths, 1)
    nE = min(EVAL_BLOCK, N)
    wsE = make_workspace(widths, nE)
    rowsE = np.zeros(nE, dtype=np.int64)
    rows = np.zeros(B, dtype=np.int64)
    rows1 = np.zeros(1, dtype=np.int64)
    g = _aligned(P)
    u = _aligned(P)
    tmp = _aligned(P)
    H = np.zeros(P) if track else np.zeros(0)
    tmp2 = np.zeros(P) if track else np.zeros(0)
    th = _aligned(P)
    th0 = _aligned(P)
    th[:] = theta[r]
    th0[:] = theta0[r]
    j = _steps(r, k0, k1, n_total, a_tab, rec_steps, j0, widths, offs, act, lossk, X, Y, rule, B,
               per_sample, idx, proj, blowup, track, ref, th, th0, rng, mu, xi, acc, status,
               rec, rec_theta, ws, ws1, wsE, rowsE, rows, rows1, g, u, tmp, H, tmp2, opt, om[r], ov[r], ot)
    theta[r, :] = th
    if k1 == n_total and j < K and rec_steps[j] == k1 and status[r, 0] == 1:
        _record(j, r, th, th0, widths, offs, act, lossk, X, Y, wsE, rowsE, acc, rec, rec_theta,
                xi, track, ref, ref.shape[0] > 0)


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
def _steps(r, k0, k1, n_total, a_tab, rec_steps, j0, widths, offs, act, lossk, X, Y, rule, B,
           per_sample, idx, proj, blowup, track, ref, th, th0, rng, mu, xi, acc, status,
           rec, rec_theta, ws, ws1, wsE, rowsE, rows, rows1, g, u, tmp, H, tmp2, opt, om, ov, ot):
    """Steps k0 .. k1-1 of replica r on its (aligned) state th; returns the next record index.

    ``opt`` is the optimiser (:mod:`dynclip.optimizers`); ``om``, ``ov`` are replica r's rows of its
    state and ``ot[r]`` its step count. Plain SGD (kind 0) without weight decay is the fused step
    below. The noise xi uses the clipped update u: the weight-decay term of the step, mu theta,
    is also the one of the mean field H + mu theta, so u - H is the noise with or without it.
    """
    N = X.shape[0]
    P = th.shape[0]
    K = rec_steps.shape[0]
    use_idx = idx.shape[0] > 0
    use_ref = ref.shape[0] > 0
    j = j0
    for k in range(k0, k1):
        if status[r, 0] == 0:
            return j
        if j < K and rec_steps[j] == k:
            _record(j, r, th, th0, widths, offs, act, lossk, X, Y, wsE, rowsE, acc, rec, rec_theta,
                    xi, track, ref, use_ref)
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
            mean_field(th, widths, offs, act, lossk, X, Y, rule, lmax, wsE, rowsE, ws1, rows1, tmp2, H)
        c, q1, q2, gn, un, w = minibatch_update(th, widths, offs, act, lossk, X, Y, rule, lmax, per_sample,
                                                rows, B, ws, ws1, rows1, g, u, tmp, acc, r)
        v = u               # the update is w v: the clipped u, or g scaled by a scalar rule's w
        if w > 0.0:
            v = g
        else:
            w = 1.0
        a = a_tab[k - k0]
        if opt.kind != 0 or opt.weight_decay != 0.0:
            optimizer_step(opt, th, v, w, a, om, ov, ot, r)
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
            mu[r, 0], mu[r, 1] = alrc_moments(rule, mu[r, 0], mu[r, 1], q1, q2)
        acc[r, A_S] += a * un
        acc[r, A_WG] += gn
        acc[r, A_WC] += c
        acc[r, A_WN] += 1.0
        if d > acc[r, A_MAXDISP]:
            acc[r, A_MAXDISP] = d
        # beyond the radius, or non-finite (NaN fails both); a non-finite gradient norm stops the
        # replica too, even if its clipped update happened to be finite
        if not (d <= blowup and d < math.inf and gn < math.inf):
            status[r, 0] = 0
            status[r, 1] = k + 1
            z = 0.0
            for i in range(P):
                z += th[i] * 0.0                    # NaN iff some entry is inf or NaN
            if z != z:
                acc[r, A_MAXDISP] = math.inf
            if z != z or not (gn < math.inf):
                status[r, 2] = 1
            return j
    return j


@njit
def run_chunk(r0, r1, k0, k1, n_total, a_tab, rec_steps, j0, widths, offs, act, lossk, X, Y, rule, B,
              per_sample, idx, proj, blowup, track, ref, theta, theta0, rng, mu, xi, acc, status,
              rec, rec_theta, opt, om, ov, ot):
    """Run steps k0 .. k1-1 for replicas r0 .. r1-1 (called through dynclip._jit.run_rows).
    See dynclip.engine.simulate."""
    for r in range(r0, r1):
        _replica(r, k0, k1, n_total, a_tab, rec_steps, j0, widths, offs, act, lossk, X, Y, rule, B,
                 per_sample, idx, proj, blowup, track, ref, theta, theta0, rng, mu, xi, acc, status,
                 rec, rec_theta, opt, om, ov, ot)
    # the step reached is part of the state, written by the kernel itself: a Ctrl-C that lands
    # right after this call returns still sees a consistent (state, step) pair
    for r in range(r0, r1):
        status[r, 3] = k1
