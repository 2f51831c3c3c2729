"""Full-batch (clipped) gradient descent on an MLP loss, for many replicas at once.

:func:`run` iterates ``theta_{k+1} = theta_k - (a w_k) g_k - (a mu) theta_k`` with ``g_k = grad F(theta_k)``
the exact full-data gradient (:func:`dynclip.meanfield.grad_F`, all replicas in one parallel call),
``w_k g_k`` its clipped version by a rule of :mod:`dynclip.clipping` (``w_k`` from
:func:`~dynclip.clipping.scale_factor` for a scalar rule -- classic, adaptive, normalized, none --,
:func:`~dynclip.clipping.apply` for the others) and ``mu`` the weight decay, added after clipping as
``optimizers.sgd(weight_decay=mu)`` does. This is clipped GD as in Zhang et al. (2020): the rule is
applied once to the full gradient, not to per-sample gradients (the engine, :func:`dynclip.simulate`,
samples minibatches with replacement and so never runs full-batch GD).

:func:`field` is the same update direction as a vector field, clip(grad F(theta)) + mu theta: its zeros
are the fixed points of full-batch clipped GD (for every step size) and the equilibria of its flow
theta' = -field(theta) (clipping with batch size N, where every sample shares one clipping factor;
:func:`dynclip.ode.integrate` with ``full_batch=True``).
"""
from dataclasses import dataclass, field as _dc_field
import math

import numba
import numpy as np

from ._jit import njit
from . import meanfield as mf
from .clipping import apply_gn, capabilities, check_rule, scale_factor
from .checks import as_float_array, check_data, check_int, check_net, check_real, check_theta
from .optimizers import check_weight_decay

__all__ = ["run", "GDResult", "field"]


@njit
def _scalar_factors(rule, gn, thn, out):
    """w = 1 / c of a scalar rule for each row (clipping.scale_factor: the one definition)."""
    for i in range(gn.shape[0]):
        out[i] = scale_factor(rule, gn[i], thn[i])[0]


@njit
def _apply_rows(rule, G, TH, gn, widths, offs, out):
    """The clipped update u of each row of G (clipping.apply_gn), for the rules that are not scalar."""
    for i in range(G.shape[0]):
        apply_gn(rule, G[i], gn[i], TH[i], widths, offs, out[i])


def check_gradient_rule(rule):
    """The rule (checked); ValueError naming ``rule`` for a rule that clips losses (alrc)."""
    return _rules(check_rule(rule), 1)[0]


def _rules(rule, R):
    """One checked ClipRule per replica, from a rule or a sequence of R rules."""
    if isinstance(rule, (list, tuple)) and not hasattr(rule, "_fields"):
        if len(rule) != R:
            raise ValueError(f"rule must be a ClipRule or a sequence of one ClipRule per replica ({R}); "
                             f"got a sequence of {len(rule)}")
        rules = [check_rule(r) for r in rule]
    else:
        rules = [check_rule(rule)] * R
    for r in rules:
        if capabilities(r).clips_losses:
            raise ValueError(f"rule {r.name!r} clips per-example losses, not a gradient: full-batch GD "
                             "clips the full gradient (use a gradient-clipping rule)")
    return rules


def _distinct(rules):
    """(the distinct rules in the order of first appearance, the index of each row's rule among them)."""
    uniq = list(dict.fromkeys(rules))
    pos = {r: j for j, r in enumerate(uniq)}
    return uniq, np.array([pos[r] for r in rules], dtype=np.int64)


def _clipped(net, uniq, rid, G, TH):
    """(scalar, w, u) for the rows of G (gradients) at TH, row i clipped by uniq[rid[i]]: rows of scalar
    rules (``scalar`` True) get the factor w (u = w g; gn by NumPy's norm), the others the update u
    (clipping.apply_gn)."""
    R = G.shape[0]
    scalar = np.zeros(R, bool)
    w = np.full(R, np.nan)
    u = np.full_like(G, np.nan)
    gn = np.linalg.norm(G, axis=1)
    widths, offs = net.widths_array(), net.offsets()
    for j, r in enumerate(uniq):
        ix = np.flatnonzero(rid == j)
        if ix.size == 0:
            continue
        caps = capabilities(r)
        if caps.scalar:
            thn = np.linalg.norm(TH[ix], axis=1) if caps.theta_norm else np.zeros(ix.size)
            out = np.empty(ix.size)
            _scalar_factors(r, gn[ix], thn, out)
            w[ix] = out
            scalar[ix] = True
        else:
            out = np.empty((ix.size, G.shape[1]))
            _apply_rows(r, np.ascontiguousarray(G[ix]), np.ascontiguousarray(TH[ix]), gn[ix], widths, offs, out)
            u[ix] = out
    return scalar, w, u


class _Threads:
    """Numba threads set to ``n`` (at most the current number) for the duration of a with block."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = numba.get_num_threads()
        if self.n is not None:
            numba.set_num_threads(max(1, min(self.n, self.old)))

    def __exit__(self, *exc):
        numba.set_num_threads(self.old)


@dataclass(frozen=True, eq=False)
class GDResult:
    """Outcome of :func:`run` for R replicas.

    Attributes
    ----------
    target_step : (R,) the first k with F(theta_k) <= target (the number of steps taken), -1 if never
        (or no target)
    diverged_step : (R,) the first k with F(theta_k) or grad F(theta_k) non-finite, or
        F(theta_k) > blowup_factor * F(theta_0); -1 if never
    stopped_step : (R,) the step at which a replica was stopped because another replica of its race
        reached the target first; -1 if never
    step : (K,) the record steps 0, record_every, 2 record_every, ... (<= n_steps)
    loss : (R, K) F(theta) at the record steps (NaN after a replica stopped)
    pair_from, pair_to : (R, n_pairs, P) theta_k and theta_{k+1} at k = 0, pair_every, 2 pair_every, ...
        < n_steps (NaN after a replica stopped); shape (R, 0, P) without ``pair_every``
    theta_final : (R, P) the last iterate of each replica (where it stopped)
    config : dict of the arguments (``rules``: the distinct rules, ``rule_index``: each replica's among them)
    """
    target_step: np.ndarray
    diverged_step: np.ndarray
    stopped_step: np.ndarray
    step: np.ndarray
    loss: np.ndarray
    pair_from: np.ndarray
    pair_to: np.ndarray
    theta_final: np.ndarray
    config: dict = _dc_field(default_factory=dict)


def _per_replica(name, v, R, what, ok):
    a = as_float_array(v, name, what)
    if a.ndim == 0:
        a = np.full(R, float(a))
    if a.shape != (R,):
        raise ValueError(f"{name} must be a number or an array of shape ({R},); got shape {a.shape}")
    if not np.all(ok(a)):
        raise ValueError(f"{name} must be {what}; got {a[~ok(a)][0]!r}")
    return a


def run(net, X, Y, rule, lr, n_steps, theta0, *, loss="mse", weight_decay=0.0, target=None, blowup_factor=1e3,
        race=None, record_every=1, pair_every=0, threads=None):
    """Full-batch (clipped) gradient descent from each row of ``theta0``.

    ``theta_{k+1} = theta_k - (a w_k) g_k - (a mu) theta_k`` (scalar rules; ``- a (u_k + mu theta_k)``
    with u_k from :func:`dynclip.clipping.apply` for the others), g_k = grad F(theta_k) on all of
    (X, Y), w_k g_k the clipped gradient, a the replica's step size and mu the weight decay.

    Parameters
    ----------
    net, X, Y, loss : as for :func:`dynclip.simulate`
    rule : ClipRule, or a sequence of one ClipRule per replica
        A gradient-clipping rule of :mod:`dynclip.clipping` (``none()`` for plain GD); not alrc.
    lr : float > 0 or array (R,) of them
        The constant step size a of each replica.
    n_steps : int >= 1
        The most steps per replica.
    theta0 : array (R, P) or (P,)
        The starting points (one replica per row).
    weight_decay : float >= 0, default 0
        mu, added after clipping (``optimizers.sgd(weight_decay=mu)``); F is then F_mu = F + (mu/2)||theta||^2.
    target : float, optional
        A replica stops at the first k with F(theta_k) <= target (``target_step``).
    blowup_factor : float > 1 (inf: never), default 1e3
        A replica stops as diverged at the first k with F(theta_k) > blowup_factor * F(theta_0), or with
        F or its gradient non-finite.
    race : int array (R,), optional
        Replicas with the same label >= 0 race each other: once one of them reaches the target, the
        others of that label stop (``stopped_step``; -1 labels race nobody). For a learning-rate
        search: the slower step sizes cannot be the fastest.
    record_every : int >= 1, default 1
        F is recorded at the steps 0, record_every, 2 record_every, ... <= n_steps.
    pair_every : int >= 0, default 0
        With pair_every > 0, the pairs (theta_k, theta_{k+1}) at k = 0, pair_every, ... < n_steps are
        kept (the input of :func:`dynclip.smoothness.local_smoothness`).
    threads : int >= 1, optional
        Numba threads during the call (at most the current number; default: as they are). The result
        does not depend on it; one thread is faster when each step is small and the cores are busy.

    Returns
    -------
    GDResult
    """
    check_net(net)
    X2, Y2, _ = check_data(net, X, Y, loss)
    P = net.n_params
    th = as_float_array(theta0, "theta0", f"a float array of shape (R, {P}) or ({P},)")
    if th.ndim == 1:
        th = th[None, :]
    if th.ndim != 2 or th.shape[0] < 1:
        raise ValueError(f"theta0 must have shape (R, {P}) or ({P},); got {np.shape(theta0)}")
    th = check_theta(net, th, "theta0", rows=th.shape[0]).reshape(-1, P).copy()
    R = th.shape[0]
    uniq, rid = _distinct(_rules(rule, R))
    a = _per_replica("lr", lr, R, "a finite number > 0", lambda x: (x > 0) & np.isfinite(x))
    n_steps = check_int("n_steps", n_steps)
    mu = check_weight_decay(weight_decay)
    if target is not None:
        target = check_real("target", target, "a number (or None)", lambda x: not math.isnan(x))
    blowup = check_real("blowup_factor", blowup_factor, "a number > 1 (inf: never)", lambda x: x > 1)
    if race is None:
        race = np.full(R, -1, dtype=np.int64)
    else:
        rc = np.asarray(race)
        if rc.shape != (R,) or rc.dtype.kind not in "iu":
            raise ValueError(f"race must be an integer array of shape ({R},) (labels; -1: no race); got "
                             f"{rc.dtype} of shape {rc.shape}")
        race = rc.astype(np.int64)
    every = check_int("record_every", record_every)
    pair_every = check_int("pair_every", pair_every, 0)
    if threads is not None:
        threads = check_int("threads", threads)

    stopped = np.full(R, -1, dtype=np.int64)
    hit = np.full(R, -1, dtype=np.int64)
    div = np.full(R, -1, dtype=np.int64)
    active = np.ones(R, bool)
    n_rec = n_steps // every + 1
    curve = np.full((R, n_rec), np.nan)
    n_pairs = (n_steps + pair_every - 1) // pair_every if pair_every else 0
    base = np.full((R, n_pairs, P), np.nan)
    nxt = np.full((R, n_pairs, P), np.nan)
    F0 = None
    with _Threads(threads), np.errstate(all="ignore"):
        for k in range(n_steps + 1):
            idx = np.nonzero(active)[0]
            if idx.size == 0:
                break
            l, g = mf.grad_F(net, X2, Y2, th[idx], loss, return_loss=True)
            if mu:
                l = l + 0.5 * mu * np.sum(th[idx] ** 2, axis=1)      # F_mu; the decay is not clipped
            if F0 is None:
                F0 = l.copy()
            if k % every == 0:
                curve[idx, k // every] = l
            bad = ~np.isfinite(l) | (l > blowup * F0[idx]) | ~np.all(np.isfinite(g), axis=1)
            div[idx[bad]] = k
            done = ~bad & (l <= target) if target is not None else np.zeros(idx.size, bool)
            hit[idx[done]] = k
            active[idx[bad | done]] = False
            for lab in np.unique(race[idx[done]]):
                if lab >= 0:
                    lose = active & (race == lab)
                    stopped[lose] = k
                    active[lose] = False
            keep_now = active[idx]
            if k == n_steps:
                break
            idx, g = idx[keep_now], g[keep_now]
            if idx.size == 0:
                break
            sc, w, u = _clipped(net, uniq, rid[idx], g, th[idx])
            ai = a[idx]
            new = np.empty_like(g)
            new[sc] = th[idx[sc]] - (ai[sc] * w[sc])[:, None] * g[sc]
            new[~sc] = th[idx[~sc]] - ai[~sc, None] * u[~sc]
            if mu:
                new -= (ai * mu)[:, None] * th[idx]
            if pair_every and k % pair_every == 0:
                base[idx, k // pair_every] = th[idx]
                nxt[idx, k // pair_every] = new
            th[idx] = new
    config = dict(rules=[r.as_dict() for r in uniq], rule_index=rid.tolist(), n_steps=n_steps, R=R, loss=str(loss),
                  weight_decay=mu, target=target, blowup_factor=blowup, record_every=every, pair_every=pair_every)
    return GDResult(target_step=hit, diverged_step=div, stopped_step=stopped,
                    step=np.arange(n_rec, dtype=np.int64) * every, loss=curve, pair_from=base, pair_to=nxt,
                    theta_final=th, config=config)


def field(net, X, Y, rule, theta, *, loss="mse", weight_decay=0.0):
    """The direction of full-batch clipped GD, clip(grad F(theta)) + mu theta, at one point or many.

    The rule clips the full gradient once (every sample shares the factor); ``theta_{k+1} = theta_k -
    a field(theta_k)`` is :func:`run`'s step and theta' = -field(theta) its flow. Where the rule leaves
    the gradient unchanged (classic clipping with ||grad F|| < lam) the field is grad F_mu.

    Parameters
    ----------
    net, X, Y, rule, loss, weight_decay : as for :func:`run` (one rule)
    theta : array (P,) or (M, P)

    Returns
    -------
    ndarray (P,) or (M, P)
    """
    check_net(net)
    X2, Y2, _ = check_data(net, X, Y, loss)
    P = net.n_params
    th = as_float_array(theta, "theta", f"a float array of shape ({P},) or (M, {P})")
    single = th.ndim == 1
    th = np.ascontiguousarray(check_theta(net, th, "theta", rows=None if single else th.shape[0]).reshape(-1, P))
    mu = check_weight_decay(weight_decay)
    rule = check_gradient_rule(rule)
    u = field_rows(net, X2, Y2, loss, rule, th, mu)
    return u[0] if single else u


def field_rows(net, X2, Y2, loss, rule, th, mu):
    """:func:`field` at the rows of ``th`` (M, P) for checked arguments (the right-hand side of
    :func:`dynclip.ode.integrate` with ``full_batch=True``)."""
    g = mf.grad_F(net, X2, Y2, th, loss)
    sc, w, u = _clipped(net, [rule], np.zeros(th.shape[0], dtype=np.int64), g, th)
    u[sc] = g[sc] * w[sc, None]
    if mu:
        u = u + mu * th
    return u
