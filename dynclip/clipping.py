"""Clipping rules as data, each with its maths in one place, and the jitted :func:`apply` that runs them.

Each factory returns a :class:`ClipRule` (an immutable NamedTuple of numbers), so rules can
be passed into compiled kernels and stored in result files. The engine, the mean field H,
the toys and the diagnostics all call the compiled functions of this module.

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

Layout. The module has one section per rule: its kind number, its factory, its maths as small
compiled functions and a :func:`_register` call that gives its description, its check of a
hand-built rule and its :class:`Capabilities` (the flags the engine, the mean field and the
kernels test instead of kind numbers). The last section holds the dispatch: :func:`scale_factor`
and :func:`apply`. The small per-rule functions are ``@hot_inline`` (inlined by Numba into their
few callers): compiled separately, each would add to the one-off compile time of the kernels.

How to add a rule. (1) Write a section like the others: ``MYRULE = <next free number>``, the
factory (arguments checked, ValueError naming the argument), the maths as ``@hot_inline`` functions and
``_register(MYRULE, "myrule", rebuild=..., describe=..., <capabilities>)``. A *scalar* rule
(u = w g with w from ||g||, and from ||theta|| if ``theta_norm=True``) provides ``myrule_factor(...)
-> (w, c, clipped)`` and the norm of a clipped update (for the overflow branch); it then runs
everywhere by weighted back-propagation. Any other rule provides ``myrule_apply(rule, g, gn, theta,
widths, offs, out) -> clipped``. (2) Add its one line to the dispatch section: in
:func:`scale_factor` and :func:`_clipped_norm` (scalar rules) or in :func:`apply_gn` (the others); a
scalar rule missing there gives NaN updates, so runs with it stop at once instead of silently not
clipping. (3) Give ``tests/reference.py`` its naive NumPy twin and add the rule to ``RULES`` in
``tests/test_clipping.py`` and ``tests/test_engine.py`` (twin, non-finite and capability checks, the
NumPy replay of a run). The engine, the mean field and the kernels read the capabilities; one
optional place names rules: :func:`dynclip.rare.bound_lambda`, the sure bound on ||u|| behind the
noise bounds (a rule it does not know gets "no sure bound known").
"""
from enum import IntEnum
from typing import NamedTuple
import math

import numpy as np

from ._jit import hot, hot_inline
from ._norms import norm, maxabs, absmax_step, scaled_sumsq
from .checks import (check_net, check_real, check_choice, check_int, as_float_array, check_no_unknown,
                     check_positive as _positive)


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

    @property
    def caps(self):
        """The rule's :class:`Capabilities`."""
        return capabilities(self)

    def describe(self):
        return _SPECS[self.kind].describe(self)

    def as_dict(self):
        return dict(self._asdict())

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: (int(v) if isinstance(cls._field_defaults.get(k, 0), int) and k in
                          ("kind", "convention", "numerator", "variant") else float(v))
                      for k, v in d.items()})


class Capabilities(NamedTuple):
    """What the engine, the mean field and the kernels need to know about a rule (one row per kind)."""
    scalar: bool = False          # u = w g, one factor w from ||g|| (and ||theta||): :func:`scale_factor`
    theta_norm: bool = False      # a scalar rule whose factor needs ||theta|| (the whole vector)
    uses_theta: bool = False      # needs theta (:func:`clip` refuses theta=None)
    uses_layers: bool = False     # needs the layer structure of an MLP (:func:`clip` needs ``net``)
    flat: bool = True             # meaningful on a flat vector as one layer (dynclip.toys)
    clips_losses: bool = False    # clips each example's loss, not a gradient: the identity in apply(),
    #                               its own per-example weights in the kernels, clip_per="batch" only
    stateful: bool = False        # has per-replica running state (the moments mu1, mu2 of ALRC)
    exact_H_batch: bool = False   # H of minibatch clipping at B > 1 is the per-sample mean (exact)


class _Spec(NamedTuple):
    name: str
    rebuild: object
    describe: object
    caps: Capabilities


_SPECS = {}


def _register(kind, name, *, rebuild, describe, **caps):
    """Record a rule kind: its name, ``rebuild(rule)`` (the factory called on a rule's fields, for
    :func:`check_rule`), ``describe(rule)`` and its capabilities (keyword flags of :class:`Capabilities`)."""
    assert kind not in _SPECS and kind == len(_SPECS), f"kind {kind} of {name!r} must be the next free number"
    _SPECS[kind] = _Spec(name, rebuild, describe, Capabilities(**caps))


# ----------------------------------------------------------------------------------------
# shared jitted helpers
# ----------------------------------------------------------------------------------------
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
def clip_factor(gn, un):
    """c = ||g|| / ||u|| of a clipped update: inf when u = 0, NaN when either norm is NaN."""
    if un == 0.0:
        return math.inf
    return gn / un


# ========================================================================================
# none
# ========================================================================================
NONE = 0


def none():
    """No clipping: u = g."""
    return ClipRule(NONE)


_register(NONE, "none", rebuild=lambda r: none(), describe=lambda r: "none", scalar=True, exact_H_batch=True)


# ========================================================================================
# classic: Ramaswamy eq. (11), c = max(||g|| / lam, 1)
# ========================================================================================
CLASSIC = 1


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
    return ClipRule(CLASSIC, lam=lam, convention=int(Convention[convention]))


@hot_inline
def classic_factor(gn, lam, convention):
    """Eq. (11) for a gradient of norm ``gn``: ``(w, c, clipped)`` with u = w g, w = 1 / c.

    The single definition of classic clipping (and, with threshold ``lam max(||theta||, eps)``,
    of adaptive clipping), for the three conventions (0 paper, 1 torch, 2 optax). A NaN ``gn``
    (or threshold) gives ``(NaN, NaN, True)``: each test is written so that NaN fails the
    "unchanged" branch. Usable from any compiled loop on plain floats.
    """
    if convention == 1:
        f = lam / (gn + 1e-6)
        if f >= 1.0:
            return 1.0, 1.0, False
        return f, 1.0 / f, True
    if convention == 2:
        if gn < lam:
            return 1.0, 1.0, False
        f = lam / gn
        return f, 1.0 / f, True
    c = gn / lam
    if c <= 1.0:
        return 1.0, 1.0, False
    return 1.0 / c, c, True


@hot_inline
def classic_norm(gn, lam, convention):
    """||u|| of a clipped update (the overflow branch of :func:`apply`)."""
    if convention == 1:
        return lam / (1.0 + 1e-6 / gn)              # ||g|| lam / (||g|| + 1e-6)
    return lam


_register(CLASSIC, "classic", scalar=True,
          rebuild=lambda r: classic(r.lam, Convention(check_int("convention", r.convention, 0, 2)).name),
          describe=lambda r: f"classic(lam={r.lam:g}, convention={Convention(r.convention).name!r})")


# ========================================================================================
# adaptive: Ramaswamy eq. (17), eq. (11) with threshold lam max(||theta||, eps)
# ========================================================================================
ADAPTIVE = 2


def adaptive(lam, eps=1e-3):
    """Adaptive clipping (Ramaswamy eq. 17): ``g / max(||g|| / (lam max(||theta||, eps)), 1)``.

    ``theta`` is the whole flat parameter vector (biases included). ``eps`` keeps the threshold
    positive at ``theta = 0`` (without it the first step from zero would be clipped to nothing);
    the default 1e-3, as in the paper's studies S8/S9 and in AGC, matters only while ``||theta|| < eps``.
    """
    return ClipRule(ADAPTIVE, lam=_positive("lam", lam), eps=_positive("eps", eps))


@hot_inline
def adaptive_threshold(lam, eps, thn):
    """The threshold ``lam max(||theta||, eps)`` of eq. (17) (also per layer, eq. 18, and per unit, AGC)."""
    return lam * max(thn, eps)


_register(ADAPTIVE, "adaptive", scalar=True, theta_norm=True, uses_theta=True,
          rebuild=lambda r: adaptive(r.lam, r.eps),
          describe=lambda r: f"adaptive(lam={r.lam:g}, eps={r.eps:g})")


# ========================================================================================
# layerwise: Ramaswamy eq. (18)
# ========================================================================================
LAYERWISE = 3


def layerwise(lam, eps=1e-3, numerator="layer"):
    """Layer-wise adaptive clipping (Ramaswamy eq. 18).

    For each layer l (W_l and b_l together): ``g_l / max(||n|| / (lam max(||theta_l||, eps)), 1)``
    with ``n = g_l`` (``numerator="layer"``) or the whole gradient (``"global"``); the
    extracted paper text is ambiguous between the two. ``eps`` (default 1e-3) keeps the threshold
    positive for a layer at zero, as in :func:`adaptive`.
    """
    numerator = check_choice("numerator", numerator, ("layer", "global"))
    return ClipRule(LAYERWISE, lam=_positive("lam", lam), eps=_positive("eps", eps),
                    numerator=0 if numerator == "layer" else 1)


@hot_inline
def layerwise_apply(rule, g, gn, theta, widths, offs, out):
    """Eq. (18) into ``out`` (may be ``g``); returns whether some layer was clipped."""
    P = g.shape[0]
    clipped = False
    for l in range(widths.shape[0] - 1):
        lo = offs[l]
        hi = offs[l + 1]
        num = gn if rule.numerator == 1 else norm(g, lo, hi)
        lam = adaptive_threshold(rule.lam, rule.eps, norm(theta, lo, hi))
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
    return clipped


_register(LAYERWISE, "layerwise", uses_theta=True, uses_layers=True,
          rebuild=lambda r: layerwise(r.lam, r.eps, ("layer", "global")[check_int("numerator", r.numerator, 0, 1)]),
          describe=lambda r: f"layerwise(lam={r.lam:g}, eps={r.eps:g}, numerator={('layer', 'global')[r.numerator]!r})")


# ========================================================================================
# unitwise: AGC (Brock et al. 2021)
# ========================================================================================
UNITWISE = 4


def unitwise(lam, eps=1e-3):
    """Unit-wise adaptive gradient clipping, AGC (Brock et al. 2021, NFNets).

    Each output unit (a row of W_l together with its bias entry) is clipped to norm
    ``lam * max(||theta_unit||, eps)``.
    """
    return ClipRule(UNITWISE, lam=_positive("lam", lam), eps=_positive("eps", eps))


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


@hot_inline
def unitwise_apply(rule, g, gn, theta, widths, offs, out):
    """AGC into ``out`` (may be ``g``); returns whether some unit was clipped."""
    clipped = False
    for l in range(widths.shape[0] - 1):
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
            lam = adaptive_threshold(rule.lam, rule.eps, tn)
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
    return clipped


_register(UNITWISE, "unitwise", uses_theta=True, uses_layers=True, flat=False,
          rebuild=lambda r: unitwise(r.lam, r.eps),
          describe=lambda r: f"unitwise(lam={r.lam:g}, eps={r.eps:g})")


# ========================================================================================
# value: element-wise clamp
# ========================================================================================
VALUE = 5


def value(v):
    """Element-wise clamp of the gradient to ``[-v, v]`` (torch ``clip_grad_value_``, optax ``clip``)."""
    return ClipRule(VALUE, lam=_positive("v", v))


@hot_inline
def value_apply(rule, g, gn, theta, widths, offs, out):
    """The clamp into ``out`` (may be ``g``); returns whether an entry changed (or is NaN)."""
    v = rule.lam
    clipped = False
    for i in range(g.shape[0]):
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
    return clipped


_register(VALUE, "value", rebuild=lambda r: value(r.lam), describe=lambda r: f"value(v={r.lam:g})")


# ========================================================================================
# normalized: Zhang et al. 2020, g / (||g|| + beta)
# ========================================================================================
NORMALIZED = 6


def normalized(beta):
    """Normalized gradient (Zhang et al. 2020): ``g / (||g|| + beta)``, beta >= 0."""
    b = check_real("beta", beta, "a finite number >= 0", lambda x: 0 <= x < math.inf)
    return ClipRule(NORMALIZED, beta=b)


@hot_inline
def normalized_factor(gn, beta):
    """``(w, c, clipped)`` of the normalized gradient, c = ||g|| + beta (u = g unchanged when c is 0)."""
    c = gn + beta
    if c == 0.0:
        return 1.0, 1.0, False
    return 1.0 / c, c, c != 1.0


@hot_inline
def normalized_norm(gn, beta):
    """||u|| = ||g|| / (||g|| + beta) of the update (the overflow branch of :func:`apply`)."""
    return 1.0 / (1.0 + beta / gn)


_register(NORMALIZED, "normalized", scalar=True, rebuild=lambda r: normalized(r.beta),
          describe=lambda r: f"normalized(beta={r.beta:g})")


# ========================================================================================
# alrc: adaptive learning rate clipping (Ede & Beanland), per-example loss clipping
# ========================================================================================
ALRC = 7


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
    return ClipRule(ALRC, n_sigma=n, beta1=b1, beta2=b2, mu1=m1, mu2=m2, variant=0 if variant == "paper" else 1)


@hot
def alrc_lmax(rule, mu1, mu2):
    """The ALRC loss cap L_max = mu1 + n sigma, sigma = sqrt(max(mu2 - mu1^2, 0)) (+1e-8 for the code variant)."""
    if rule.n_sigma == math.inf:    # n = inf never clips (inf * 0 would give NaN)
        return math.inf
    var = max(mu2 - mu1 * mu1, 0.0)
    if rule.variant == 1:
        var += 1e-8
    return mu1 + rule.n_sigma * math.sqrt(var)


@hot
def alrc_weight(L, lmax):
    """ALRC's weight min(1, L_max / L) of one example's gradient and whether it clips
    (a NaN loss clips, weight NaN: the authors' ``loss / stop_gradient(loss / L_max)``)."""
    if L > lmax or L != L:
        return lmax / L, True
    return 1.0, False


@hot        # (not inlined: inlined into minibatch_update it cost ~2 % at B = 32, a code-layout effect)
def alrc_weights(rule, losses, n, lmax, wts):
    """The weights of n examples with losses ``losses[:n]`` into ``wts[:n]``.

    Returns ``(number clipped, m1, m2)``, m1 and m2 this step's inputs to the running moments:
    the mean loss and its square (variant paper), or the means of the capped losses and of their
    squares (variant code).
    """
    lm = 0.0
    lc = 0.0
    lc2 = 0.0
    ncl = 0
    for b in range(n):
        L = losses[b]
        lm += L
        w, clipped = alrc_weight(L, lmax)
        wts[b] = w
        if clipped:
            ncl += 1
        lcap = lmax if L > lmax else L      # the capped loss (a NaN stays NaN)
        lc += lcap
        lc2 += lcap * lcap
    if rule.variant == 1:
        return ncl, lc / n, lc2 / n
    return ncl, lm / n, (lm / n) * (lm / n)


@hot_inline
def alrc_moments(rule, mu1, mu2, m1, m2):
    """The running moments after a step with inputs m1, m2 (from :func:`alrc_weights`)."""
    return rule.beta1 * mu1 + (1.0 - rule.beta1) * m1, rule.beta2 * mu2 + (1.0 - rule.beta2) * m2


_register(ALRC, "alrc", clips_losses=True, stateful=True, exact_H_batch=True, flat=False,
          rebuild=lambda r: alrc(r.n_sigma, r.beta1, r.beta2, r.mu1, r.mu2,
                                 ("paper", "code")[check_int("variant", r.variant, 0, 1)]),
          describe=lambda r: (f"alrc(n_sigma={r.n_sigma:g}, beta1={r.beta1:g}, beta2={r.beta2:g}, "
                              f"mu1={r.mu1:g}, mu2={r.mu2:g}, variant={('paper', 'code')[r.variant]!r})"))


# ========================================================================================
# the table of kinds, and dispatch
# ========================================================================================
ClipKind = IntEnum("ClipKind", [(s.name, k) for k, s in sorted(_SPECS.items())], module=__name__)
ClipKind.__doc__ = "The rule kinds (ClipRule.kind), one per section of dynclip.clipping."


def capabilities(rule):
    """The :class:`Capabilities` of a rule (or of a kind number)."""
    return _SPECS[int(getattr(rule, "kind", rule))].caps


def exact_H(rule, batch_size, clip_per):
    """Whether the mean field H of ``rule`` at this minibatch set-up is exactly computable (an average
    over the N samples): batch size 1, per-sample clipping, or a rule that clips a minibatch as
    per-example weights (``capabilities(rule).exact_H_batch``). Otherwise clipping the minibatch mean
    makes H an average over all N**B minibatches."""
    return batch_size == 1 or clip_per == "sample" or capabilities(rule).exact_H_batch


def check_exact_H(rule, batch_size, clip_per, what, alternative=""):
    """ValueError naming ``what`` when :func:`exact_H` is false (and for a rule that clips losses with
    ``clip_per="sample"``), saying which set-ups are exact."""
    if not exact_H(rule, batch_size, clip_per):
        exact = "/".join(k.name for k in ClipKind if capabilities(k).exact_H_batch)
        raise ValueError(f"{what} needs an exactly computable mean field H: use batch_size=1, "
                         f"clip_per='sample', or rule {exact}{alternative}")
    if capabilities(rule).clips_losses and clip_per == "sample":
        raise ValueError(f"clip_per must be 'batch' for {rule.name} (it clips each example's loss already)")


def _mask(flag):
    return sum(1 << k for k, s in _SPECS.items() if getattr(s.caps, flag))


# the capabilities as bit masks over kinds, compile-time constants of the kernels below
_SCALAR = _mask("scalar")
_THETA_NORM = _mask("theta_norm")
_CLIPS_LOSSES = _mask("clips_losses")
_STATEFUL = _mask("stateful")


def check_rule(rule):
    """The rule as its factory builds it; ValueError naming ``rule`` for anything else.

    A ClipRule built by hand is checked like the factory's arguments (an unknown kind or a NaN
    lam is refused) and returned with the factory's types; fields its kind does not use are
    reset to their defaults.
    """
    if not isinstance(rule, ClipRule):
        names = ", ".join(s.name for s in _SPECS.values())
        raise ValueError(f"rule must be a ClipRule from dynclip.clipping ({names}); got {type(rule).__name__}")
    try:
        kind = check_int("kind", rule.kind, 0, len(_SPECS) - 1)
        return _SPECS[kind].rebuild(rule)
    except (TypeError, ValueError) as e:
        raise ValueError(f"rule is not a valid ClipRule ({e}); build it with the factories of "
                         "dynclip.clipping") from None


@hot
def is_scalar_rule(rule):
    """True for rules whose update is a scalar multiple of g (see :func:`scale_factor`)."""
    return (_SCALAR >> rule.kind) & 1 == 1


@hot_inline
def clips_losses(rule):
    """True for rules that clip each example's loss (ALRC): the kernels weight per-example gradients."""
    return (_CLIPS_LOSSES >> rule.kind) & 1 == 1


@hot_inline
def is_stateful(rule):
    """True for rules with per-replica running state (ALRC's moments)."""
    return (_STATEFUL >> rule.kind) & 1 == 1


@hot_inline
def factor_theta_norm(rule, theta):
    """||theta|| when the rule's scalar factor needs it, else 0 (the ``thn`` of :func:`scale_factor`)."""
    if (_THETA_NORM >> rule.kind) & 1 == 1:
        return norm(theta, 0, theta.shape[0])
    return 0.0


@hot
def scale_factor(rule, gn, thn):
    """For a scalar rule: ``(w, c, clipped)`` with u = w g, w = 1/c, given ||g|| and ||theta||.

    :func:`apply` and the batched per-sample paths both use it. A NaN ``gn`` (or threshold)
    gives ``(NaN, NaN, True)``.
    """
    k = rule.kind
    if k == CLASSIC:
        return classic_factor(gn, rule.lam, rule.convention)
    if k == ADAPTIVE:
        return classic_factor(gn, adaptive_threshold(rule.lam, rule.eps, thn), rule.convention)
    if k == NORMALIZED:
        return normalized_factor(gn, rule.beta)
    if k == NONE:
        return 1.0, 1.0, False
    # a scalar rule missing above: NaN, so every run with it stops as non-finite at its first
    # step (and the tests that run each rule fail) instead of silently not clipping
    return math.nan, math.nan, True


@hot
def _clipped_norm(rule, gn, thn):
    """For a scalar rule that clips: the norm of the update u, for the overflow branch of :func:`apply`."""
    k = rule.kind
    if k == NORMALIZED:
        return normalized_norm(gn, rule.beta)
    if k == ADAPTIVE:
        return classic_norm(gn, adaptive_threshold(rule.lam, rule.eps, thn), rule.convention)
    if k == CLASSIC:
        return classic_norm(gn, rule.lam, rule.convention)
    return math.nan                 # a scalar rule missing above (see scale_factor)


@hot
def apply(rule, g, theta, widths, offs, out):
    """Write the clipped update ``u`` of gradient ``g`` at ``theta`` into ``out``.

    ``out`` may be ``g`` itself. Returns ``(c, clipped)`` with ``c = ||g|| / ||u||``
    (1.0 when unchanged) and ``clipped`` True when the rule changed the gradient.
    ALRC clips losses, not gradients: here it is the identity (see the engine).
    A non-finite gradient is clipped to a non-finite update (see the module docstring).
    """
    return apply_gn(rule, g, norm(g, 0, g.shape[0]), theta, widths, offs, out)


@hot
def apply_gn(rule, g, gn, theta, widths, offs, out):
    """:func:`apply` given ``gn = ||g||`` (callers that need the norm anyway compute it once)."""
    P = g.shape[0]
    k = rule.kind
    if is_scalar_rule(rule):
        thn = factor_theta_norm(rule, theta)
        w, c, clipped = scale_factor(rule, gn, thn)
        if clipped:
            # u = g * w, w = 1 / c (a factor below the normal range -- c beyond 4e307, or
            # inf -- would lose precision, and one that overflows -- a subnormal c, as
            # normalized(0) gives for a tiny g -- is inf: then g is rescaled to the update's norm)
            if not ((w < TINY or w == math.inf) and _to_norm(g, out, 0, P, 0, P, _clipped_norm(rule, gn, thn))):
                _scale(g, out, 0, P, w)
            return c, True
        if not (out is g):
            _copy(g, out)
        return 1.0, False
    if k == LAYERWISE:
        clipped = layerwise_apply(rule, g, gn, theta, widths, offs, out)
    elif k == UNITWISE:
        clipped = unitwise_apply(rule, g, gn, theta, widths, offs, out)
    elif k == VALUE:
        clipped = value_apply(rule, g, gn, theta, widths, offs, out)
    else:                           # a rule that clips losses (the kernels' business): the identity here
        if not (out is g):
            _copy(g, out)
        return 1.0, False
    if not clipped:
        return 1.0, False
    return clip_factor(gn, norm(out, 0, P)), True


def clip(rule, g, theta=None, net=None):
    """Apply ``rule`` to one gradient vector (NumPy convenience; returns ``(u, c)``).

    ``theta`` is needed by adaptive, layerwise and unitwise rules, ``net`` (an MLP) by
    layerwise and unitwise (for the layer structure); the other rules ignore ``net``.
    """
    rule = check_rule(rule)
    caps = capabilities(rule)
    g = as_float_array(g, "g", "a 1-D float array")
    if g.ndim != 1:
        raise ValueError(f"g must be a 1-D array; got shape {g.shape}")
    if caps.uses_layers:
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
        if caps.uses_theta:
            raise ValueError(f"theta is required for the {rule.name} rule")
        theta = np.zeros_like(g)
    theta = as_float_array(theta, "theta", "a 1-D float array")
    if theta.shape != g.shape:
        raise ValueError(f"theta must have the same shape as g {g.shape}; got {theta.shape}")
    out = np.empty_like(g)
    c, _ = apply(rule, g, theta, widths, offs, out)
    return out, float(c)
