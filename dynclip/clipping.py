"""Clipping rules as data, and the one jitted :func:`apply` that executes them.

Each factory returns a :class:`ClipRule` (an immutable NamedTuple of numbers), so rules can
be passed into compiled kernels and stored in result files. The engine, the mean field H
and the diagnostics all call the same :func:`apply`.

The update is ``u = g / c`` in the paper's notation (Ramaswamy 2023, eq. 10).
:func:`apply` returns the effective factor ``c = ||g|| / ||u||`` (1 for an unchanged
gradient) and whether the rule changed the gradient ("clipped").
"""
from enum import IntEnum
from typing import NamedTuple
import math

import numpy as np

from ._jit import njit, hot
from .model import norm


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


def _positive(name, v, allow_inf=False):
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0; got {v!r}") from None
    if not (v > 0) or (math.isinf(v) and not allow_inf) or math.isnan(v):
        raise ValueError(f"{name} must be > 0{' (inf allowed)' if allow_inf else ' and finite'}; got {v!r}")
    return v


def none():
    """No clipping: u = g."""
    return ClipRule(int(ClipKind.none))


def classic(lam, convention="paper"):
    """Classic norm clipping (Ramaswamy eq. 11): ``g / max(||g|| / lam, 1)``.

    ``convention`` picks the tie-break users know: ``"paper"`` (unchanged iff ||g|| <= lam),
    ``"torch"`` (``torch.nn.utils.clip_grad_norm_``: factor ``min(lam / (||g|| + 1e-6), 1)``,
    so it scales slightly even at ||g|| = lam), ``"optax"`` (``clip_by_global_norm``:
    unchanged iff ||g|| < lam, otherwise ``g * lam / ||g||``). ``lam=inf`` never clips.
    """
    lam = _positive("lam", lam, allow_inf=True)
    if convention not in Convention.__members__:
        raise ValueError(f"convention must be one of 'paper', 'torch', 'optax'; got {convention!r}")
    return ClipRule(int(ClipKind.classic), lam=lam, convention=int(Convention[convention]))


def adaptive(lam, eps):
    """Adaptive clipping (Ramaswamy eq. 17): ``g / max(||g|| / (lam max(||theta||, eps)), 1)``.

    ``theta`` is the whole flat parameter vector (biases included).
    """
    return ClipRule(int(ClipKind.adaptive), lam=_positive("lam", lam), eps=_positive("eps", eps))


def layerwise(lam, eps, numerator="layer"):
    """Layer-wise adaptive clipping (Ramaswamy eq. 18).

    For each layer l (W_l and b_l together): ``g_l / max(||n|| / (lam max(||theta_l||, eps)), 1)``
    with ``n = g_l`` (``numerator="layer"``) or the whole gradient (``"global"``); the
    extracted paper text is ambiguous between the two.
    """
    if numerator not in ("layer", "global"):
        raise ValueError(f"numerator must be 'layer' or 'global'; got {numerator!r}")
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
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"beta must be a number >= 0; got {beta!r}") from None
    if not (b >= 0) or math.isinf(b):
        raise ValueError(f"beta must be finite and >= 0; got {beta!r}")
    return ClipRule(int(ClipKind.normalized), beta=b)


def alrc(n_sigma=3.0, beta1=0.999, beta2=0.999, mu1=25.0, mu2=900.0, variant="paper"):
    """Adaptive learning rate clipping (Ede & Beanland), a per-example *loss* clipping.

    Each example's loss L is capped at ``L_max = mu1 + n_sigma * sqrt(max(mu2 - mu1^2, 0))``:
    its gradient is scaled by ``min(1, L_max / L)``. The running moments are per-replica
    state, updated after each step with the minibatch-mean loss:
    ``mu1 <- beta1 mu1 + (1 - beta1) L``, ``mu2 <- beta2 mu2 + (1 - beta2) L^2``.

    ``variant="paper"`` is Algorithm 1 of the paper (moments from the unclipped loss).
    ``variant="code"`` follows the authors' public code: moments from the *clipped* loss
    ``min(L, L_max)`` per example, and 1e-8 inside the square root. The defaults
    ``mu1=25, mu2=900`` are the code's starting values; the paper asks for starting values
    above the true ones, with mu1^2 < mu2. ``n_sigma=inf`` never clips.
    """
    n = _positive("n_sigma", n_sigma, allow_inf=True)
    for name, b in (("beta1", beta1), ("beta2", beta2)):
        if not (0.0 <= float(b) < 1.0):
            raise ValueError(f"{name} must be in [0, 1); got {b!r}")
    m1 = float(mu1)
    m2 = float(mu2)
    if not (math.isfinite(m1) and math.isfinite(m2) and m2 >= 0):
        raise ValueError(f"mu1 and mu2 must be finite with mu2 >= 0; got mu1={mu1!r}, mu2={mu2!r}")
    if variant not in ("paper", "code"):
        raise ValueError(f"variant must be 'paper' or 'code'; got {variant!r}")
    return ClipRule(int(ClipKind.alrc), n_sigma=n, beta1=float(beta1), beta2=float(beta2),
                    mu1=m1, mu2=m2, variant=0 if variant == "paper" else 1)


def check_rule(rule):
    if not isinstance(rule, ClipRule):
        raise ValueError("rule must be a ClipRule from dynclip.clipping (none, classic, adaptive, "
                         f"layerwise, unitwise, value, normalized, alrc); got {type(rule).__name__}")
    return rule


# ----------------------------------------------------------------------------------------
# jitted
# ----------------------------------------------------------------------------------------
@hot
def _norm(v, lo, hi):
    return norm(v, lo, hi)


@hot
def _scale(g, out, lo, hi, c):
    if lo < 0:
        return
    for i in range(lo, hi):
        out[i] = g[i] / c


@hot
def _copy(g, out):
    for i in range(g.shape[0]):
        out[i] = g[i]


@hot
def is_scalar_rule(rule):
    """True for rules whose update is a scalar multiple of g (none, classic, adaptive, normalized)."""
    k = rule.kind
    return k == 0 or k == 1 or k == 2 or k == 6


@hot
def scale_factor(rule, gn, thn):
    """For a scalar rule: ``(w, c, clipped)`` with u = w g, w = 1/c, given ||g|| and ||theta||.

    The single definition of the classic (eq. 11, three conventions), adaptive (eq. 17) and
    normalized factors; :func:`apply` and the batched per-sample paths both use it.
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
        f = min(lam / (gn + 1e-6), 1.0)
        return f, 1.0 / f, f < 1.0
    if rule.convention == 2:
        if gn < lam:
            return 1.0, 1.0, False
        f = lam / gn
        return f, 1.0 / f, True
    c = max(gn / lam, 1.0)
    if c > 1.0:
        return 1.0 / c, c, True
    return 1.0, 1.0, False


@hot
def apply(rule, g, theta, widths, offs, out):
    """Write the clipped update ``u`` of gradient ``g`` at ``theta`` into ``out``.

    ``out`` may be ``g`` itself. Returns ``(c, clipped)`` with ``c = ||g|| / ||u||``
    (1.0 when unchanged) and ``clipped`` True when the rule changed the gradient.
    ALRC clips losses, not gradients: here it is the identity (see the engine).
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
            if k == 6 or rule.convention == 0:
                _scale(g, out, 0, P, c)      # g / c, the paper's form
            else:
                for i in range(P):
                    out[i] = g[i] * w        # g * factor, as torch and optax write it
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
            c = max(num / (rule.lam * max(_norm(theta, lo, hi), rule.eps)), 1.0)
            if c > 1.0:
                clipped = True
                _scale(g, out, lo, hi, c)
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
                c = max(math.sqrt(sg) / (rule.lam * max(math.sqrt(st), rule.eps)), 1.0)
                if c > 1.0:
                    clipped = True
                for i in range(ni):
                    out[wo + o * ni + i] = g[wo + o * ni + i] / c
                out[bo + o] = g[bo + o] / c
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
            out[i] = x
    if not clipped:
        return 1.0, False
    un = _norm(out, 0, P)
    return (gn / un if un > 0.0 else math.inf), True


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

    ``theta`` is needed by adaptive, layerwise and unitwise rules, ``net`` by layerwise and
    unitwise (for the layer structure).
    """
    check_rule(rule)
    g = np.ascontiguousarray(g, dtype=np.float64)
    if g.ndim != 1:
        raise ValueError(f"g must be a 1-D array; got shape {g.shape}")
    if rule.kind in (ClipKind.layerwise, ClipKind.unitwise):
        if net is None:
            raise ValueError(f"net is required for the {rule.name} rule (its layer structure)")
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
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if theta.shape != g.shape:
        raise ValueError(f"theta must have the same shape as g {g.shape}; got {theta.shape}")
    out = np.empty_like(g)
    c, _ = apply(rule, g, theta, widths, offs, out)
    return out, float(c)
