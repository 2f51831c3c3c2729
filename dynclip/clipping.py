"""Clipping rules as data, and the one jitted :func:`apply` that executes them.

Each factory returns a :class:`ClipRule` (an immutable NamedTuple of numbers), so rules can
be passed into compiled kernels and stored in result files. The engine, the mean field H
and the diagnostics all call the same :func:`apply`.

The update is ``u = g / c`` in the paper's notation (Ramaswamy 2023, eq. 10), computed as
``g * (1 / c)``: one division per clip instead of one per entry (on common x86 cores a
division costs as much as ~8 multiplications), within 1 ulp of ``g / c`` per entry.
:func:`apply` returns the effective factor ``c = ||g|| / ||u||`` (1 for an unchanged
gradient) and whether the rule changed the gradient ("clipped").

Non-finite gradients propagate, as in torch and optax: a NaN entry makes ||g|| NaN, an
infinite entry (and no NaN) makes it inf, and every rule that clips (all but ``none`` and
``alrc``, which leave g as it is) then returns a non-finite update, ``clipped`` True and c NaN
or inf -- never "unchanged, c = 1". Norm rules clip the whole vector (classic, adaptive,
normalized), each layer (layerwise; with ``numerator="global"`` the numerator ||g|| makes it
every layer) or each unit (unitwise) whose norm is non-finite:
a NaN norm makes every entry of that block NaN; an inf norm makes the finite entries 0 and the
infinite ones NaN (``g * 0``, what g / inf, torch's ``g * clamp(lam / (inf + 1e-6), max=1)``
and optax's ``g * lam / inf`` all give). ``value`` clamps +-inf to +-v and keeps a NaN where
it is. Large finite entries (2e200) are not non-finite: norms are computed without overflow
and clipped exactly.
"""
from enum import IntEnum
from typing import NamedTuple
import math

import numpy as np

from ._jit import hot
from ._norms import norm, maxabs, absmax_step, scaled_sumsq
from .checks import (check_net, check_real, check_choice, check_int, as_float_array, check_no_unknown,
                     check_positive as _positive)


class ClipKind(IntEnum):
    none = 0
    classic = 1
    adaptive = 2
    layerwise = 3
    unitwise = 4
    value = 5
    normalized = 6
    alrc = 7


class Convention(IntEnum):
    paper = 0   # c = max(||g|| / lam, 1); unchanged iff ||g|| <= lam
    torch = 1   # factor min(lam / (||g|| + 1e-6), 1): scales slightly even at ||g|| = lam
    optax = 2   # unchanged iff ||g|| < lam, else g * lam / ||g||


TORCH_EPS = 1e-6


class ClipRule(NamedTuple):
    """A clipping rule as plain data. Build it with the factories of this module."""
    kind: int
    lam: float = math.inf
    eps: float = 0.0
    convention: int = 0
    numerator: int = 0      # layerwise: 0 = layer gradient, 1 = whole gradient
    beta: float = 0.0       # normalized: g / (||g|| + beta)
    n_sigma: float = 3.0    # alrc
    beta1: float = 0.999
    beta2: float = 0.999
    mu1: float = 25.0
    mu2: float = 900.0
    variant: int = 0        # alrc: 0 = paper (moments from the raw loss), 1 = authors' code

    @property
    def name(self):
        return ClipKind(self.kind).name

    def describe(self):
        k = ClipKind(self.kind)
        if k == ClipKind.none:
            return "none"
        if k == ClipKind.classic:
            return f"classic(lam={self.lam:g}, convention={Convention(self.convention).name!r})"
        if k == ClipKind.adaptive:
            return f"adaptive(lam={self.lam:g}, eps={self.eps:g})"
        if k == ClipKind.layerwise:
            return f"layerwise(lam={self.lam:g}, eps={self.eps:g}, numerator={('layer', 'global')[self.numerator]!r})"
        if k == ClipKind.unitwise:
            return f"unitwise(lam={self.lam:g}, eps={self.eps:g})"
        if k == ClipKind.value:
            return f"value(v={self.lam:g})"
        if k == ClipKind.normalized:
            return f"normalized(beta={self.beta:g})"
        return (f"alrc(n_sigma={self.n_sigma:g}, beta1={self.beta1:g}, beta2={self.beta2:g}, "
                f"mu1={self.mu1:g}, mu2={self.mu2:g}, variant={('paper', 'code')[self.variant]!r})")

    def as_dict(self):
        return dict(self._asdict())

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: (int(v) if isinstance(cls._field_defaults.get(k, 0), int) and k in
                          ("kind", "convention", "numerator", "variant") else float(v))
                      for k, v in d.items()})


def none():
    """No clipping: u = g."""
    return ClipRule(int(ClipKind.none))


def classic(lam=None, convention="paper", **unknown):
    """Classic norm clipping (Ramaswamy eq. 11): ``g / max(||g|| / lam, 1)``.

    ``convention`` picks the tie-break users know: ``"paper"`` (unchanged iff ||g|| <= lam),
    ``"torch"`` (``torch.nn.utils.clip_grad_norm_``: factor ``min(lam / (||g|| + 1e-6), 1)``,
    so it scales slightly even at ||g|| = lam), ``"optax"`` (``clip_by_global_norm``:
    unchanged iff ||g|| < lam, otherwise ``g * lam / ||g||``). ``lam=inf`` never clips a
    finite gradient.

    A non-finite gradient gives the same result in all three conventions, the one of torch's
    and optax's formulas: ||g|| = NaN (some g_i NaN) makes every u_i NaN, with c = NaN;
    ||g|| = inf (some g_i = +-inf, no NaN) makes c = inf, u_i = 0 for finite g_i and NaN for
    infinite g_i (with ``lam=inf``, inf / inf makes every u_i NaN). Both count as clipped.
    """
    check_no_unknown("classic", unknown)
    if lam is None:
        raise TypeError("classic() missing the clipping threshold lam (e.g. clipping.classic(1.0))")
    lam = _positive("lam", lam, allow_inf=True)
    convention = check_choice("convention", convention, tuple(Convention.__members__))
    return ClipRule(int(ClipKind.classic), lam=lam, convention=int(Convention[convention]))


def adaptive(lam, eps=1e-3):
    """Adaptive clipping (Ramaswamy eq. 17): ``g / max(||g|| / (lam max(||theta||, eps)), 1)``.

    ``theta`` is the whole flat parameter vector (biases included). ``eps`` keeps the threshold
    positive at ``theta = 0`` (without it the first step from zero would be clipped to nothing);
    the default 1e-3, as in the paper's studies S8/S9 and in AGC, matters only while ``||theta|| < eps``.
    """
    return ClipRule(int(ClipKind.adaptive), lam=_positive("lam", lam), eps=_positive("eps", eps))


def layerwise(lam, eps=1e-3, numerator="layer"):
    """Layer-wise adaptive clipping (Ramaswamy eq. 18).

    For each layer l (W_l and b_l together): ``g_l / max(||n|| / (lam max(||theta_l||, eps)), 1)``
    with ``n = g_l`` (``numerator="layer"``) or the whole gradient (``"global"``); the
    extracted paper text is ambiguous between the two. ``eps`` (default 1e-3) keeps the threshold
    positive for a layer at zero, as in :func:`adaptive`.
    """
    numerator = check_choice("numerator", numerator, ("layer", "global"))
    return ClipRule(int(ClipKind.layerwise), lam=_positive("lam", lam), eps=_positive("eps", eps),
                    numerator=0 if numerator == "layer" else 1)


def unitwise(lam, eps=1e-3):
    """Unit-wise adaptive gradient clipping, AGC (Brock et al. 2021, NFNets).

    Each output unit (a row of W_l together with its bias entry) is clipped to norm
    ``lam * max(||theta_unit||, eps)``.
    """
    return ClipRule(int(ClipKind.unitwise), lam=_positive("lam", lam), eps=_positive("eps", eps))


def value(v):
    """Element-wise clamp of the gradient to ``[-v, v]`` (torch ``clip_grad_value_``, optax ``clip``)."""
    return ClipRule(int(ClipKind.value), lam=_positive("v", v))


def normalized(beta):
    """Normalized gradient (Zhang et al. 2020): ``g / (||g|| + beta)``, beta >= 0."""
    b = check_real("beta", beta, "a finite number >= 0", lambda x: 0 <= x < math.inf)
    return ClipRule(int(ClipKind.normalized), beta=b)


def alrc(n_sigma=3.0, beta1=0.999, beta2=0.999, mu1=25.0, mu2=900.0, variant="paper"):
    """Adaptive learning rate clipping (Ede & Beanland), a per-example *loss* clipping.

    Each example's loss L is capped at ``L_max = mu1 + n_sigma * sqrt(max(mu2 - mu1^2, 0))``:
    its gradient is scaled by ``min(1, L_max / L)`` (a NaN loss counts as clipped, weight NaN).
    The running moments are per-replica state, updated after each step of a minibatch of B
    examples with losses L_1..L_B:
    ``mu1 <- beta1 mu1 + (1 - beta1) m1``, ``mu2 <- beta2 mu2 + (1 - beta2) m2``, where

    * ``variant="paper"``: Algorithm 1 of the paper (moments from the unclipped loss), which is
      written for one loss per step, applied to the minibatch-mean loss: ``m1 = mean_b L_b``,
      ``m2 = m1^2``. For B > 1, sigma then estimates the spread of a minibatch *mean*
      (about the per-example spread / sqrt(B)), so individual examples are clipped more often
      as B grows.
    * ``variant="code"``: the authors' public code (``alrc.py``): each example's loss is capped,
      ``C_b = min(L_b, L_max)``, and ``m1 = mean_b C_b``, ``m2 = mean_b C_b^2`` (the mean of
      the squares, not the square of the mean: sigma estimates the per-example spread of the
      capped loss at every B); 1e-8 inside the square root.

    The two variants' moment updates differ in the cap, and for B > 1 also in m2. The defaults
    ``mu1=25, mu2=900`` are the code's starting values; the paper asks for starting values
    above the true ones, with mu1^2 < mu2. The moments are running means of losses, which are
    >= 0 for every loss of dynclip, so ``mu1`` and ``mu2`` must be finite and >= 0 (then
    L_max >= 0). ``n_sigma=inf`` never clips.
    """
    n = _positive("n_sigma", n_sigma, allow_inf=True)
    b1, b2 = (check_real(name, b, "a number in [0, 1)", lambda x: 0.0 <= x < 1.0)
              for name, b in (("beta1", beta1), ("beta2", beta2)))
    m1, m2 = (check_real(name, m, "a finite number >= 0", lambda x: 0.0 <= x < math.inf)
              for name, m in (("mu1", mu1), ("mu2", mu2)))
    variant = check_choice("variant", variant, ("paper", "code"))
    return ClipRule(int(ClipKind.alrc), n_sigma=n, beta1=b1, beta2=b2,
                    mu1=m1, mu2=m2, variant=0 if variant == "paper" else 1)


_REBUILD = {
    ClipKind.none: lambda r: none(),
    ClipKind.classic: lambda r: classic(r.lam, Convention(check_int("convention", r.convention, 0, 2)).name),
    ClipKind.adaptive: lambda r: adaptive(r.lam, r.eps),
    ClipKind.layerwise: lambda r: layerwise(r.lam, r.eps,
                                            ("layer", "global")[check_int("numerator", r.numerator, 0, 1)]),
    ClipKind.unitwise: lambda r: unitwise(r.lam, r.eps),
    ClipKind.value: lambda r: value(r.lam),
    ClipKind.normalized: lambda r: normalized(r.beta),
    ClipKind.alrc: lambda r: alrc(r.n_sigma, r.beta1, r.beta2, r.mu1, r.mu2,
                                  ("paper", "code")[check_int("variant", r.variant, 0, 1)]),
}


def check_rule(rule):
    """The rule as its factory builds it; ValueError naming ``rule`` for anything else.

    A ClipRule built by hand is checked like the factory's arguments (an unknown kind or a NaN
    lam is refused) and returned with the factory's types; fields its kind does not use are
    reset to their defaults.
    """
    if not isinstance(rule, ClipRule):
        raise ValueError("rule must be a ClipRule from dynclip.clipping (none, classic, adaptive, "
                         f"layerwise, unitwise, value, normalized, alrc); got {type(rule).__name__}")
    try:
        kind = check_int("kind", rule.kind, 0, len(ClipKind) - 1)
        return _REBUILD[ClipKind(kind)](rule)
    except (TypeError, ValueError) as e:
        raise ValueError(f"rule is not a valid ClipRule ({e}); build it with the factories of "
                         "dynclip.clipping") from None


# ----------------------------------------------------------------------------------------
# jitted
# ----------------------------------------------------------------------------------------
@hot
def _norm(v, lo, hi):
    return norm(v, lo, hi)


@hot
def _scale(g, out, lo, hi, f):
    """out[lo:hi] = g[lo:hi] * f (f = 1 / c: one division per clip, not one per entry)."""
    if lo < 0:
        return
    for i in range(hi - lo):      # (a loop over [lo, hi) would not vectorise)
        out[lo + i] = g[lo + i] * f


@hot
def _copy(g, out):
    for i in range(g.shape[0]):
        out[i] = g[i]


#: the smallest normal float64: a factor below it has lost precision (subnormal) or is 0
TINY = 2.2250738585072014e-308


@hot
def _to_norm(g, out, lo, hi, nlo, nhi, target):
    """out[lo:hi] = g[lo:hi] * target / ||g[nlo:nhi]|| with g first divided by its largest entry.

    The overflow branch of clipping: taken only where the fast factor c = ||g|| / lam overflowed
    to inf (or lam / ||g|| underflowed below the normal range), where g / c would be 0. Returns
    False and writes nothing when g[nlo:nhi] has a non-finite entry or is 0.
    """
    m = maxabs(g, nlo, nhi)
    if not (m < math.inf) or m == 0.0:
        return False
    f = target / math.sqrt(scaled_sumsq(g, nlo, nhi, m))
    for i in range(lo, hi):
        out[i] = g[i] / m * f
    return True


@hot
def _unit_mt(v, r0, ni, bi):
    """(m, t) of a unit (row v[r0:r0+ni] and bias v[bi]): m = max |v_i| (NaN if any), t = sum (v_i / m)^2."""
    m = absmax_step(maxabs(v, r0, r0 + ni), v[bi])
    if m == 0.0 or not (m < math.inf):
        return m, 0.0
    t = scaled_sumsq(v, r0, r0 + ni, m)
    q = v[bi] / m
    return m, t + q * q


@hot
def _unit_norm_rescaled(v, r0, ni, bi):
    """||unit|| rescaled by its largest entry: where the fast sum of squares overflowed or underflowed (like norm())."""
    m, t = _unit_mt(v, r0, ni, bi)
    if m == 0.0 or not (m < math.inf):
        return m                        # 0, inf or NaN
    return m * math.sqrt(t)


@hot
def is_scalar_rule(rule):
    """True for rules whose update is a scalar multiple of g (none, classic, adaptive, normalized)."""
    k = rule.kind
    return k == 0 or k == 1 or k == 2 or k == 6


@hot
def scale_factor(rule, gn, thn):
    """For a scalar rule: ``(w, c, clipped)`` with u = w g, w = 1/c, given ||g|| and ||theta||.

    The single definition of the classic (eq. 11, three conventions), adaptive (eq. 17) and
    normalized factors; :func:`apply` and the batched per-sample paths both use it. A NaN
    ``gn`` (or threshold) gives ``(NaN, NaN, True)``: each test is written so that NaN fails
    the "unchanged" branch.
    """
    k = rule.kind
    if k == 0:
        return 1.0, 1.0, False
    if k == 6:
        c = gn + rule.beta
        if c == 0.0:
            return 1.0, 1.0, False
        return 1.0 / c, c, c != 1.0
    lam = rule.lam
    if k == 2:
        lam = rule.lam * max(thn, rule.eps)
    if rule.convention == 1:
        f = lam / (gn + 1e-6)
        if f >= 1.0:
            return 1.0, 1.0, False
        return f, 1.0 / f, True
    if rule.convention == 2:
        if gn < lam:
            return 1.0, 1.0, False
        f = lam / gn
        return f, 1.0 / f, True
    c = gn / lam
    if c <= 1.0:
        return 1.0, 1.0, False
    return 1.0 / c, c, True


@hot
def _clipped_norm(rule, gn, thn):
    """For a scalar rule that clips: the norm of the update u, for the overflow branch of :func:`apply`."""
    if rule.kind == 6:
        return 1.0 / (1.0 + rule.beta / gn)         # ||g|| / (||g|| + beta)
    lam = rule.lam
    if rule.kind == 2:
        lam = rule.lam * max(thn, rule.eps)
    if rule.convention == 1:
        return lam / (1.0 + 1e-6 / gn)              # ||g|| lam / (||g|| + 1e-6)
    return lam


@hot
def clip_factor(gn, un):
    """c = ||g|| / ||u|| of a clipped update: inf when u = 0, NaN when either norm is NaN."""
    if un == 0.0:
        return math.inf
    return gn / un


@hot
def apply(rule, g, theta, widths, offs, out):
    """Write the clipped update ``u`` of gradient ``g`` at ``theta`` into ``out``.

    ``out`` may be ``g`` itself. Returns ``(c, clipped)`` with ``c = ||g|| / ||u||``
    (1.0 when unchanged) and ``clipped`` True when the rule changed the gradient.
    ALRC clips losses, not gradients: here it is the identity (see the engine).
    A non-finite gradient is clipped to a non-finite update (see the module docstring).
    """
    return apply_gn(rule, g, _norm(g, 0, g.shape[0]), theta, widths, offs, out)


@hot
def apply_gn(rule, g, gn, theta, widths, offs, out):
    """:func:`apply` given ``gn = ||g||`` (callers that need the norm anyway compute it once)."""
    P = g.shape[0]
    k = rule.kind
    if k == 0 or k == 7:
        if not (out is g):
            _copy(g, out)
        return 1.0, False
    if k == 1 or k == 2 or k == 6:
        thn = _norm(theta, 0, P) if k == 2 else 0.0
        w, c, clipped = scale_factor(rule, gn, thn)
        if clipped:
            # u = g * w, w = 1 / c (a factor below the normal range -- c beyond 4e307, or
            # inf -- would lose precision: then g is rescaled to the update's norm instead)
            if not (w < TINY and _to_norm(g, out, 0, P, 0, P, _clipped_norm(rule, gn, thn))):
                _scale(g, out, 0, P, w)
            return c, True
        if not (out is g):
            _copy(g, out)
        return 1.0, False
    clipped = False
    if k == 3:
        L = widths.shape[0] - 1
        for l in range(L):
            lo = offs[l]
            hi = offs[l + 1]
            num = gn if rule.numerator == 1 else _norm(g, lo, hi)
            lam = rule.lam * max(_norm(theta, lo, hi), rule.eps)
            c = num / lam
            if not (c <= 1.0):          # (a NaN norm clips: every entry of the layer NaN)
                clipped = True
                nlo, nhi = (0, P) if rule.numerator == 1 else (lo, hi)
                f = 1.0 / c
                if not (f < TINY and _to_norm(g, out, lo, hi, nlo, nhi, lam)):
                    _scale(g, out, lo, hi, f)
            elif not (out is g):
                for i in range(lo, hi):
                    out[i] = g[i]
    elif k == 4:
        L = widths.shape[0] - 1
        for l in range(L):
            ni = widths[l]
            no = widths[l + 1]
            wo = offs[l]
            bo = offs[l] + no * ni
            for o in range(no):
                sg = g[bo + o] * g[bo + o]
                st = theta[bo + o] * theta[bo + o]
                for i in range(ni):
                    sg += g[wo + o * ni + i] ** 2
                    st += theta[wo + o * ni + i] ** 2
                r0 = wo + o * ni
                tn = math.sqrt(st) if st < math.inf and st > 1e-280 else _unit_norm_rescaled(theta, r0, ni, bo + o)
                gn_u = math.sqrt(sg) if sg < math.inf and sg > 1e-280 else _unit_norm_rescaled(g, r0, ni, bo + o)
                lam = rule.lam * max(tn, rule.eps)
                c = gn_u / lam
                if c <= 1.0:
                    c = 1.0
                else:                   # (also NaN: every entry of the unit NaN)
                    clipped = True
                f = 1.0 / c
                if f < TINY:       # ||g_unit|| / lam beyond 4e307: scale to norm lam
                    m, t = _unit_mt(g, r0, ni, bo + o)
                    if m < math.inf and m > 0.0:
                        f = lam / math.sqrt(t)
                        for i in range(ni):
                            out[wo + o * ni + i] = g[wo + o * ni + i] / m * f
                        out[bo + o] = g[bo + o] / m * f
                        continue
                _scale(g, out, r0, r0 + ni, f)
                out[bo + o] = g[bo + o] * f
    else:  # value
        v = rule.lam
        for i in range(P):
            x = g[i]
            if x > v:
                x = v
                clipped = True
            elif x < -v:
                x = -v
                clipped = True
            elif x != x:                # kept, but a NaN gradient is not "unchanged"
                clipped = True
            out[i] = x
    if not clipped:
        return 1.0, False
    return clip_factor(gn, _norm(out, 0, P)), True


@hot
def alrc_weight(L, lmax):
    """ALRC's weight min(1, L_max / L) of one example's gradient and whether it clips
    (a NaN loss clips, weight NaN: the authors' ``loss / stop_gradient(loss / L_max)``)."""
    if L > lmax or L != L:
        return lmax / L, True
    return 1.0, False


@hot
def alrc_lmax(rule, mu1, mu2):
    """The ALRC loss cap L_max = mu1 + n sigma, sigma = sqrt(max(mu2 - mu1^2, 0)) (+1e-8 for the code variant)."""
    if rule.n_sigma == math.inf:    # n = inf never clips (inf * 0 would give NaN)
        return math.inf
    var = max(mu2 - mu1 * mu1, 0.0)
    if rule.variant == 1:
        var += 1e-8
    return mu1 + rule.n_sigma * math.sqrt(var)


def clip(rule, g, theta=None, net=None):
    """Apply ``rule`` to one gradient vector (NumPy convenience; returns ``(u, c)``).

    ``theta`` is needed by adaptive, layerwise and unitwise rules, ``net`` (an MLP) by
    layerwise and unitwise (for the layer structure); the other rules ignore ``net``.
    """
    rule = check_rule(rule)
    g = as_float_array(g, "g", "a 1-D float array")
    if g.ndim != 1:
        raise ValueError(f"g must be a 1-D array; got shape {g.shape}")
    if rule.kind in (ClipKind.layerwise, ClipKind.unitwise):
        if net is None:
            raise ValueError(f"net is required for the {rule.name} rule (its layer structure)")
        check_net(net)
        widths, offs = net.widths_array(), net.offsets()
        if g.shape[0] != net.n_params:
            raise ValueError(f"g must have length net.n_params = {net.n_params}; got {g.shape[0]}")
    else:
        widths = np.array([g.shape[0], 1], dtype=np.int64)
        offs = np.array([0, g.shape[0]], dtype=np.int64)
    if theta is None:
        if rule.kind in (ClipKind.adaptive, ClipKind.layerwise, ClipKind.unitwise):
            raise ValueError(f"theta is required for the {rule.name} rule")
        theta = np.zeros_like(g)
    theta = as_float_array(theta, "theta", "a 1-D float array")
    if theta.shape != g.shape:
        raise ValueError(f"theta must have the same shape as g {g.shape}; got {theta.shape}")
    out = np.empty_like(g)
    c, _ = apply(rule, g, theta, widths, offs, out)
    return out, float(c)
