"""Toy objectives that are not MLP losses, and a compiled gradient-descent runner for them.

The objectives of THEORY's 1-D examples (S1 (iv), S8, S10) as data, an IntEnum code plus
a parameter, like the clipping rules and schedules:

====================  ================================  ===============================
factory               f(theta)                          gradient
====================  ================================  ===============================
``quartic_norm()``    ||theta||^4 / 4                   ||theta||^2 theta
``x4()``              sum_i theta_i^4                   4 theta_i^3
``cosh()``            sum_i cosh(theta_i)               sinh(theta_i)
``logistic()``        sum_i log(1 + exp(-theta_i))      -1 / (1 + exp(theta_i))
``neg_quadratic(k)``  -k ||theta||^2 / 2                -k theta
====================  ================================  ===============================

:func:`run` applies (clipped) gradient descent ``theta_{t+1} = theta_t - a(t) u_t`` with
``u_t`` from the same jitted :func:`dynclip.clipping.apply` as the engine and the step
table of a :mod:`dynclip.schedules` schedule, for M starting points (in parallel, :func:`dynclip._jit.run_rows`).
:func:`iterations` counts the steps of deterministic (clipped) GD with a constant step until
||grad f|| <= tol, for many configurations (rule, step) and starts in one compiled call (the
iteration-complexity comparisons of Zhang et al., S10), optionally as the worst case over the starts.

Floating point. In ``dtype="float32"`` mode the iterate is stored in float32 and f and
its gradient are computed in float32 arithmetic, so they overflow where float32
overflows (for ``quartic_norm``: f at ||theta|| > 4.3e9 since ||theta||^4 is formed
first, the gradient at ||theta||^3 > 3.4e38). The clipping arithmetic (norms, the factor
c) runs in float64: the iterate and the gradient are widened to float64 (exactly) and passed
to :func:`~dynclip.clipping.apply`, the engine's own clipping, whose norms do not overflow for
finite vectors (``||g|| > 1.3e154`` is clipped exactly); the new iterate is rounded to float32.
"""
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple
import math

import numpy as np

from ._jit import njit, run_rows
from .clipping import (ADAPTIVE, TINY, ClipRule, apply, apply_gn, capabilities, check_rule, factor_theta_norm,
                       is_scalar_rule, scale_factor)
from ._norms import norm, rescaled_norm
from .checks import check_int, check_nonneg, check_positive
from .rng import next_u64, replica_seeds
from .schedules import check_schedule

__all__ = ["ObjectiveKind", "Objective", "quartic_norm", "x4", "cosh", "logistic", "neg_quadratic",
           "value_and_grad", "run", "ToyResult", "iterations", "DIVERGED", "CENSORED"]

DTYPES = ("float64", "float32")


class ObjectiveKind(IntEnum):
    quartic_norm = 0
    x4 = 1
    cosh = 2
    logistic = 3
    neg_quadratic = 4


class Objective(NamedTuple):
    """A toy objective as plain data. Build it with the factories of this module."""
    kind: int
    k: float = 1.0      # neg_quadratic: curvature

    @property
    def name(self):
        return ObjectiveKind(self.kind).name

    def describe(self):
        k = ObjectiveKind(self.kind)
        if k == ObjectiveKind.quartic_norm:
            return "||theta||^4/4"
        if k == ObjectiveKind.x4:
            return "sum theta_i^4"
        if k == ObjectiveKind.cosh:
            return "sum cosh(theta_i)"
        if k == ObjectiveKind.logistic:
            return "sum log(1+exp(-theta_i))"
        return f"-{self.k:g} ||theta||^2/2"

    def as_dict(self):
        return dict(self._asdict())


def quartic_norm():
    """f = ||theta||^4 / 4, gradient ||theta||^2 theta (THEORY §2.6: the superlinear restoring gradient)."""
    return Objective(int(ObjectiveKind.quartic_norm))


def x4():
    """f = sum_i theta_i^4, gradient 4 theta_i^3 (Zhang et al.'s x^4 example, S10)."""
    return Objective(int(ObjectiveKind.x4))


def cosh():
    """f = sum_i cosh(theta_i), an (L0, L1)-smooth function with (L0, L1) = (1, 1) (S10)."""
    return Objective(int(ObjectiveKind.cosh))


def logistic():
    """f = sum_i log(1 + exp(-theta_i)): logistic loss of one separable point per coordinate (S1 (iv)).

    Computed stably: ``log1p(exp(-|t|)) + max(-t, 0)``.
    """
    return Objective(int(ObjectiveKind.logistic))


def neg_quadratic(k=1.0):
    """f = -k ||theta||^2 / 2, k > 0: outward drift (THEORY §2.6 item 2)."""
    try:
        k = float(k)
    except (TypeError, ValueError):
        raise ValueError(f"k must be a finite number > 0; got {k!r}") from None
    if not (k > 0 and math.isfinite(k)):
        raise ValueError(f"k must be a finite number > 0; got {k!r}")
    return Objective(int(ObjectiveKind.neg_quadratic), k)


def check_objective(objective):
    if not isinstance(objective, Objective):
        raise ValueError("objective must be an Objective from dynclip.toys (quartic_norm, x4, cosh, "
                         f"logistic, neg_quadratic); got {type(objective).__name__}")
    if objective.kind not in tuple(int(v) for v in ObjectiveKind):
        raise ValueError(f"objective.kind must be one of {[int(v) for v in ObjectiveKind]}; got {objective.kind!r}")
    return objective


# ----------------------------------------------------------------------------------------
# jitted
# ----------------------------------------------------------------------------------------
@njit
def value_grad(kind, kpar, theta, g):
    """f(theta) into the return value and its gradient into ``g``, in the dtype of ``theta``.

    ``kpar`` must have the dtype of ``theta`` (every constant enters as that dtype, so float32
    inputs are computed in float32 arithmetic throughout).
    """
    d = theta.shape[0]
    zero = kpar - kpar
    one = zero + 1
    f = zero
    if kind == 0:
        s = zero
        for i in range(d):
            s += theta[i] * theta[i]
        for i in range(d):
            g[i] = s * theta[i]
        q = one / (one + one + one + one)
        return (s * s) * q
    if kind == 1:
        four = one + one + one + one
        for i in range(d):
            t2 = theta[i] * theta[i]
            f += t2 * t2
            g[i] = four * (t2 * theta[i])
        return f
    if kind == 2:
        for i in range(d):
            f += np.cosh(theta[i])
            g[i] = np.sinh(theta[i])
        return f
    if kind == 3:
        for i in range(d):
            t = theta[i]
            if t >= zero:
                e = np.exp(-t)
                f += np.log1p(e)
                g[i] = -e / (one + e)
            else:
                e = np.exp(t)
                f += np.log1p(e) - t
                g[i] = -one / (one + e)
        return f
    s = zero
    for i in range(d):
        s += theta[i] * theta[i]
        g[i] = -kpar * theta[i]
    return -(kpar * s) / (one + one)


@njit
def _vg_many(kind, kpar, theta, f, g):
    for m in range(theta.shape[0]):
        f[m] = value_grad(kind, kpar, theta[m], g[m])


@njit
def safe_norm(v):
    """||v|| without overflow or underflow of the squares (scaled by max |v_i|); inf/NaN propagate."""
    return rescaled_norm(v, 0, v.shape[0])


@njit
def _normal(state, r):
    """A standard normal draw (Box-Muller on two 53-bit uniforms of the splitmix64 stream)."""
    u1 = ((next_u64(state, r) >> np.uint64(11)) + np.uint64(1)) * (1.0 / 9007199254740992.0)
    u2 = (next_u64(state, r) >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


# integer outputs (ints[m, :])
I_NONFINITE, I_LOSS_OVF, I_GRAD_OVF, I_NCLIP, I_TOL, I_CLAIM2, I_RELUPD, I_RADIAL, I_PEAK = range(9)
N_INT = 9


@njit
def _start(m, kind, kpar, rule, widths, offs, a, theta, rec_steps, noise_sd, rng, tol, checks, ctol,
           out_norm, out_f, out_gn, out_peak, out_ints, out_rad, out_theta):
    d = theta.shape[1]
    T = a.shape[0]
    K = rec_steps.shape[0]
    th = theta[m]
    g = np.empty(d, dtype=theta.dtype)
    g64 = np.empty(d)
    th64 = np.empty(d)
    u = np.empty(d)
    gs = np.empty(d)
    nxt = np.empty(d)
    lam_k = rule.lam * max(1.0, rule.eps)
    j = 0
    peak = -1.0
    nclip = 0
    for t in range(T + 1):
        f = value_grad(kind, kpar, th, g)
        for i in range(d):
            th64[i] = th[i]
            g64[i] = g[i]
        tn = safe_norm(th64)
        gn = safe_norm(g64)
        if tn > peak:
            peak = tn
            out_ints[m, I_PEAK] = t
        if j < K and rec_steps[j] == t:
            out_norm[m, j] = tn
            out_f[m, j] = f
            out_gn[m, j] = gn
            if out_theta.shape[1] > 0:
                for i in range(d):
                    out_theta[m, j, i] = th64[i]
            j += 1
        if out_ints[m, I_LOSS_OVF] < 0 and not math.isfinite(f):
            out_ints[m, I_LOSS_OVF] = t
        if out_ints[m, I_GRAD_OVF] < 0 and not math.isfinite(gn):
            out_ints[m, I_GRAD_OVF] = t
        if out_ints[m, I_TOL] < 0 and gn <= tol:
            out_ints[m, I_TOL] = t
        if not (math.isfinite(tn) and math.isfinite(gn)):
            out_ints[m, I_NONFINITE] = t
            break
        if t == T:
            break
        gc = gn
        if noise_sd > 0.0:
            for i in range(d):
                g[i] += noise_sd * _normal(rng, m)
                g64[i] = g[i]
            gc = safe_norm(g64)
        c, clipped = apply(rule, g64, th64, widths, offs, u)
        if clipped:
            nclip += 1
        at = a[t]
        for i in range(d):
            nxt[i] = th64[i] - at * u[i]
            th[i] = nxt[i]          # rounds to the iterate's dtype
            nxt[i] = th[i]
        if checks:
            un = safe_norm(u)
            ref = max(tn, rule.eps)
            if not (un <= lam_k * (1.0 + tn) * (1.0 + ctol)):
                out_ints[m, I_CLAIM2] += 1
            for i in range(d):
                gs[i] = nxt[i] - th64[i]
            dn = safe_norm(gs)
            if not (dn <= at * rule.lam * ref * (1.0 + ctol) + ctol * tn):
                out_ints[m, I_RELUPD] += 1
            if clipped and tn >= rule.eps and gc > 0.0:
                cs = 0.0
                for i in range(d):
                    cs += (th64[i] / tn) * (g64[i] / gc)
                al = at * rule.lam
                rn = safe_norm(nxt) / tn
                err = abs(rn * rn - (1.0 - 2.0 * al * cs + al * al)) / ((1.0 + al) * (1.0 + al))
                if not (err <= ctol):
                    out_ints[m, I_RADIAL] += 1
                if err > out_rad[m] or err != err:
                    out_rad[m] = err
    out_peak[m] = peak
    out_ints[m, I_NCLIP] = nclip


@njit
def _run_rows(lo, hi, kind, kpar, rule, widths, offs, a, theta, rec_steps, noise_sd, rng, tol, checks, ctol,
              out_norm, out_f, out_gn, out_peak, out_ints, out_rad, out_theta):
    for m in range(lo, hi):
        _start(m, kind, kpar, rule, widths, offs, a, theta, rec_steps, noise_sd, rng, tol, checks, ctol,
               out_norm, out_f, out_gn, out_peak, out_ints, out_rad, out_theta)


# below this many coordinate-steps a parallel launch (thread wake-up, ~ms on a busy machine) costs more
# than it saves; each start is independent, so the result does not depend on the split
_PARALLEL_WORK = 2e5


# ----------------------------------------------------------------------------------------
# public
# ----------------------------------------------------------------------------------------
def _dtype(dtype):
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'float64' or 'float32'; got {dtype!r}")
    return np.dtype(dtype)


def _theta(theta, dt, name="theta"):
    th = np.asarray(theta)
    if th.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real array; got dtype {th.dtype}")
    if th.ndim == 1:
        th = th[None, :]
    if th.ndim != 2 or th.shape[0] < 1 or th.shape[1] < 1:
        raise ValueError(f"{name} must have shape (M, d) or (d,) with M, d >= 1; got {np.shape(theta)}")
    if not np.all(np.isfinite(th)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(th, dtype=dt).copy()
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} overflows {dt.name}")
    return out


def value_and_grad(objective, theta, dtype="float64"):
    """f(theta) and its gradient.

    Parameters
    ----------
    objective : Objective
    theta : array (d,) or (M, d)
    dtype : {"float64", "float32"}
        Arithmetic precision (float32 overflows where float32 does).

    Returns
    -------
    f : float (for (d,) input) or ndarray (M,);  grad : ndarray of theta's shape, in ``dtype``
    """
    objective = check_objective(objective)
    dt = _dtype(dtype)
    one = np.ndim(theta) == 1
    th = _theta(theta, dt)
    f = np.empty(th.shape[0], dtype=dt)
    g = np.empty_like(th)
    with np.errstate(all="ignore"):
        _vg_many(int(objective.kind), dt.type(objective.k), th, f, g)
    if one:
        return f[0].item(), g[0]
    return f, g


@dataclass(frozen=True, eq=False)
class ToyResult:
    """Outcome of :func:`run` for M starting points, K records.

    Records are taken at steps 0, record_every, 2 record_every, ... and n_steps
    (``step[j]`` updates applied before record j); records after a start stopped are NaN.

    Attributes
    ----------
    theta_final : (M, d) the last iterate (float64 copy; the non-finite one for stopped starts)
    step : (K,) record steps
    norm, f, grad_norm : (M, K) ||theta||, f(theta) and ||grad f(theta)|| (noise-free) at the records
    peak_norm : (M,) max ||theta_k|| over all steps taken;  peak_step : (M,) the first step reaching it
    nonfinite_step : (M,) first k with theta_k or grad f(theta_k) non-finite, where the start
        stopped (-1 if never)
    loss_overflow_step, grad_overflow_step : (M,) first k with f(theta_k), resp. grad f(theta_k),
        non-finite (-1 if never); the iteration goes on while only f is non-finite
    n_clipped : (M,) steps at which the rule changed the gradient
    theta : (M, K, d) the iterates at the records (float64; NaN after a start stopped), when
        ``record_theta`` (else None)
    tol_step : (M,) first k with ||grad f(theta_k)|| <= tol (-1 if never), when ``tol`` was given
    claim2_violations, relative_update_violations, radial_violations : (M,) when ``checks``:
        steps violating ||u|| <= lam max(1, eps) (1 + ||theta||) (Claim 2), ||theta_{k+1} - theta_k||
        <= a lam max(||theta_k||, eps) (relative-update bound), and, on clipped steps with
        ||theta_k|| >= eps, the radial identity ||theta_{k+1}||^2 = ||theta_k||^2 (1 - 2 a lam cos phi
        + a^2 lam^2), with relative tolerance ``check_tol``
    radial_max_error : (M,) the largest radial-identity error, relative to ||theta_k||^2 (1 + a lam)^2
        (the size of the terms of ||theta - a u||^2)
    config : dict
    """
    theta_final: np.ndarray
    step: np.ndarray
    norm: np.ndarray
    f: np.ndarray
    grad_norm: np.ndarray
    peak_norm: np.ndarray
    peak_step: np.ndarray
    nonfinite_step: np.ndarray
    loss_overflow_step: np.ndarray
    grad_overflow_step: np.ndarray
    n_clipped: np.ndarray
    tol_step: np.ndarray = None
    claim2_violations: np.ndarray = None
    relative_update_violations: np.ndarray = None
    radial_violations: np.ndarray = None
    radial_max_error: np.ndarray = None
    theta: np.ndarray = None
    config: dict = field(default_factory=dict)

    @property
    def nonfinite(self):
        """(M,) bool: the start stopped on a non-finite iterate or gradient."""
        return self.nonfinite_step >= 0


def run(objective, rule, schedule, theta0, n_steps, *, noise_sd=0.0, seed=0, dtype="float64",
        record_every=None, tol=None, checks=False, check_tol=1e-12, record_theta=False):
    """Gradient descent ``theta_{k+1} = theta_k - a(k) u_k`` on a toy objective, from M starts.

    ``u_k`` is the clipped gradient from :func:`dynclip.clipping.apply` (called with
    ``widths=[d, 1]``, ``offs=[0, d]``: one "layer", so layerwise equals adaptive).

    Parameters
    ----------
    objective : Objective
    rule : ClipRule
        Any rule of :mod:`dynclip.clipping` except ``unitwise`` (needs a layer structure) and
        ``alrc`` (clips per-example losses).
    schedule : Schedule
        Step k uses a(k).
    theta0 : array (M, d) or (d,)
    n_steps : int >= 1
    noise_sd : float >= 0
        Adds N(0, noise_sd^2) to each gradient coordinate before clipping (per-start
        splitmix64 streams from ``seed``: independent of the thread count).
    seed : int >= 0
    dtype : {"float64", "float32"}
        Precision of the iterate and of f and its gradient (see the module docstring).
    record_every : int, optional
        Record spacing (default ``max(1, n_steps // 100)``).
    tol : float > 0, optional
        Report the first step with ||grad f|| <= tol in ``tol_step`` (iteration counts).
    checks : bool
        Count violations of Claim 2, the relative-update bound and the radial identity
        (adaptive rule only; see :class:`ToyResult`).
    check_tol : float >= 0
        Relative tolerance of those checks.
    record_theta : bool
        Also record the iterates (``ToyResult.theta``).

    Returns
    -------
    ToyResult
    """
    objective = check_objective(objective)
    rule = check_rule(rule)
    if not capabilities(rule).flat:
        raise ValueError(f"rule {rule.name!r} is not supported by dynclip.toys (unitwise needs a layer "
                         "structure, alrc clips per-example losses)")
    schedule = check_schedule(schedule)
    dt = _dtype(dtype)
    th = _theta(theta0, dt, "theta0")
    M, d = th.shape
    T = check_int("n_steps", n_steps, 1)
    nsd = check_nonneg("noise_sd", noise_sd)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    every = max(1, T // 100) if record_every is None else check_int("record_every", record_every, 1)
    if tol is None:
        tl = -math.inf
    else:
        try:
            tl = float(tol)
        except (TypeError, ValueError):
            raise ValueError(f"tol must be a number > 0 or None; got {tol!r}") from None
        if not tl > 0:
            raise ValueError(f"tol must be a number > 0 or None; got {tol!r}")
    if checks and rule.kind != ADAPTIVE:
        raise ValueError(f"checks=True tests the adaptive rule's laws; got rule {rule.name!r}")
    try:
        ctol = float(check_tol)
    except (TypeError, ValueError):
        raise ValueError(f"check_tol must be a number >= 0; got {check_tol!r}") from None
    if not ctol >= 0:
        raise ValueError(f"check_tol must be a number >= 0; got {check_tol!r}")
    steps = np.append(np.arange(0, T, every, dtype=np.int64), np.int64(T))
    K = steps.shape[0]
    a = np.ascontiguousarray(schedule.values(0, T), dtype=np.float64)
    rng, _ = replica_seeds(int(seed), M)
    out_norm = np.full((M, K), np.nan)
    out_f = np.full((M, K), np.nan)
    out_gn = np.full((M, K), np.nan)
    out_peak = np.full(M, np.nan)
    out_ints = np.full((M, N_INT), -1, dtype=np.int64)
    out_ints[:, [I_NCLIP, I_CLAIM2, I_RELUPD, I_RADIAL]] = 0
    out_rad = np.zeros(M)
    if not isinstance(record_theta, (bool, np.bool_)):
        raise ValueError(f"record_theta must be True or False; got {record_theta!r}")
    out_theta = np.full((M, K if record_theta else 0, d), np.nan)
    widths = np.array([d, 1], dtype=np.int64)
    offs = np.array([0, d], dtype=np.int64)
    with np.errstate(all="ignore"):
        run_rows(_run_rows, M, int(objective.kind), dt.type(objective.k), rule, widths, offs, a, th, steps, nsd, rng,
                 tl, bool(checks), ctol, out_norm, out_f, out_gn, out_peak, out_ints, out_rad, out_theta,
                 serial_below=M + 1 if M * T * d < _PARALLEL_WORK else 2)
    config = dict(objective=objective.as_dict(), objective_name=objective.describe(), rule=rule.as_dict(),
                  rule_name=rule.describe(), schedule=schedule.as_dict(), schedule_name=schedule.describe(),
                  n_steps=T, M=M, d=d, noise_sd=nsd, seed=int(seed), dtype=dt.name, record_every=every,
                  tol=None if tol is None else tl, checks=bool(checks), check_tol=ctol, record_theta=bool(record_theta))
    return ToyResult(
        theta_final=th.astype(np.float64), step=steps, norm=out_norm, f=out_f, grad_norm=out_gn,
        peak_norm=out_peak, peak_step=out_ints[:, I_PEAK].copy(), nonfinite_step=out_ints[:, I_NONFINITE].copy(),
        loss_overflow_step=out_ints[:, I_LOSS_OVF].copy(), grad_overflow_step=out_ints[:, I_GRAD_OVF].copy(),
        n_clipped=out_ints[:, I_NCLIP].copy(), tol_step=out_ints[:, I_TOL].copy() if tol is not None else None,
        claim2_violations=out_ints[:, I_CLAIM2].copy() if checks else None,
        relative_update_violations=out_ints[:, I_RELUPD].copy() if checks else None,
        radial_violations=out_ints[:, I_RADIAL].copy() if checks else None,
        radial_max_error=out_rad if checks else None, theta=out_theta if record_theta else None, config=config)


# ----------------------------------------------------------------------------------------
# iteration counts of deterministic (clipped) GD
# ----------------------------------------------------------------------------------------
#: :func:`iterations` codes: the start diverged (non-finite, or ||theta|| beyond ``bound``) /
#: did not reach the tolerance within ``max_steps``
DIVERGED, CENSORED = -1, -2


def _rule_rows(rules):
    """ClipRules as rows of floats (their fields in order), rebuilt by :func:`_rule` in compiled code."""
    return np.array([[float(v) for v in r] for r in rules], dtype=np.float64).reshape(len(rules), len(ClipRule._fields))


@njit
def _rule(r):
    return ClipRule(int(r[0]), r[1], r[2], int(r[3]), int(r[4]), r[5], r[6], r[7], r[8], r[9], r[10], int(r[11]))


@njit
def _count(kind, kpar, rule, widths, offs, a, th0, tol, limit, bound, th, g, u):
    """Steps k until ||grad f(theta_k)|| <= tol from th0 (theta <- theta - a u, u = apply(rule, g));
    DIVERGED when theta or the gradient is non-finite or ||theta|| > bound first, CENSORED after limit."""
    d = th0.shape[0]
    for i in range(d):
        th[i] = th0[i]
    for k in range(limit + 1):
        value_grad(kind, kpar, th, g)
        gn = norm(g, 0, d)               # the norm clipping.apply uses (exactly |g| in 1-D)
        if gn <= tol:
            return k
        if not (norm(th, 0, d) <= bound) or not math.isfinite(gn):
            return DIVERGED
        if k == limit:
            break
        w = 0.0
        if is_scalar_rule(rule):
            w = scale_factor(rule, gn, factor_theta_norm(rule, th))[0]
        if TINY <= w < math.inf:
            # apply_gn's scalar branch, u = g w, without its calls (half the cost of a 1-D step)
            for i in range(d):
                th[i] = th[i] - a * (g[i] * w)
        else:
            apply_gn(rule, g, gn, th, widths, offs, u)
            for i in range(d):
                th[i] = th[i] - a * u[i]
    return CENSORED


@njit
def _iterations(kind, kpar, rows, lr, theta0, tol, max_steps, bound, worst, prune, out):
    d = theta0.shape[1]
    widths = np.array([d, 1], dtype=np.int64)
    offs = np.array([0, d], dtype=np.int64)
    th = np.empty(d)
    g = np.empty(d)
    u = np.empty(d)
    best = max_steps
    for i in range(lr.shape[0]):
        rule = _rule(rows[i])
        lim = best if prune else max_steps
        w = 0
        for s in range(theta0.shape[0]):
            c = _count(kind, kpar, rule, widths, offs, lr[i], theta0[s], tol, lim, bound, th, g, u)
            if worst:
                if c < 0:
                    w = c
                    break
                if c > w:
                    w = c
            else:
                out[i, s] = c
        if worst:
            out[i, 0] = w
            if prune and w >= 0 and w < best:
                best = w


def iterations(objective, rule, lr, theta0, *, tol, max_steps, bound=math.inf, worst_case=False, prune=False):
    """Iteration counts of deterministic (clipped) gradient descent with a constant step, many
    configurations and starts in one compiled call.

    Configuration i runs ``theta_{k+1} = theta_k - lr[i] u_k`` with u_k the gradient clipped by
    ``rule[i]`` (:func:`dynclip.clipping.apply`, as :func:`run` does; ``clipping.none()`` for plain GD)
    from each start, and counts the steps until ||grad f(theta_k)|| <= tol.

    Parameters
    ----------
    objective : Objective
    rule : ClipRule or a sequence of C ClipRules
        As for :func:`run` (not unitwise or alrc); one rule is used by every configuration.
    lr : float > 0 or array (C,) of them
        The constant step of each configuration (one number: every configuration).
        C is the length of ``rule`` or of ``lr`` (they must agree when both are sequences).
    theta0 : array (M, d) or (d,)
        The starts (float64).
    tol : float >= 0
        Stop at the first k with ||grad f(theta_k)|| <= tol (k is the count; 0 if the start qualifies).
    max_steps : int >= 0
        Steps per start at most: a start that has not reached ``tol`` by then is CENSORED (-2).
    bound : float > 0, default inf
        A start whose iterate leaves the ball ||theta|| <= bound, or whose gradient is non-finite,
        before reaching ``tol`` is DIVERGED (-1).
    worst_case : bool
        Return the worst count over the starts for each configuration (C,): the largest count, or the
        code of the first start (in the given order) that fails; the remaining starts are not run.
    prune : bool (worst_case only)
        Minimax search: each configuration's step limit is the smallest worst case of the configurations
        before it, so one that cannot beat it stops early and is CENSORED. The smallest non-negative
        result is then the exact minimax count (a configuration censored for exceeding it is worse).
        Order the starts hardest first, and the configurations likely-best first, for speed.

    Returns
    -------
    ndarray of int64, (C, M) (or (C,) with ``worst_case``): counts >= 0, DIVERGED or CENSORED.
    """
    objective = check_objective(objective)
    th = _theta(theta0, np.dtype(np.float64), "theta0")
    if isinstance(rule, (list, tuple)) and not isinstance(rule, ClipRule):
        rules = [check_rule(r) for r in rule]
        if not rules:
            raise ValueError("rule must be a ClipRule or a non-empty sequence of them; got an empty sequence")
    else:
        rules = [check_rule(rule)]
    for r in rules:
        if not capabilities(r).flat:
            raise ValueError(f"rule {r.name!r} is not supported by dynclip.toys (unitwise needs a layer "
                             "structure, alrc clips per-example losses)")
    a = np.asarray(lr, dtype=np.float64) if not isinstance(lr, (str, bytes)) else None
    if a is None or a.ndim > 1 or a.size == 0 or not np.all((a > 0) & np.isfinite(a)):
        raise ValueError(f"lr must be a finite number > 0 or a 1-D array of them; got {lr!r}")
    C = max(len(rules), a.size)
    if len(rules) not in (1, C) or a.size not in (1, C):
        raise ValueError(f"rule and lr must have the same length when both are sequences; got {len(rules)} "
                         f"rules and {a.size} steps")
    rules = rules * C if len(rules) == 1 else rules
    a = np.ascontiguousarray(np.broadcast_to(a.reshape(-1), (C,)))
    tl = check_nonneg("tol", tol)
    cap = check_int("max_steps", max_steps, 0)
    bd = check_positive("bound", bound, allow_inf=True)
    if prune and not worst_case:
        raise ValueError("prune=True needs worst_case=True (it prunes the minimax search over configurations)")
    out = np.zeros((C, 1 if worst_case else th.shape[0]), dtype=np.int64)
    with np.errstate(all="ignore"):
        _iterations(int(objective.kind), float(objective.k), _rule_rows(rules), a, th, tl, cap, bd,
                    bool(worst_case), bool(prune), out)
    return out[:, 0] if worst_case else out
