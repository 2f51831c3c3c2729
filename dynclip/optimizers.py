"""Optimisers as data: plain SGD, heavy-ball / Nesterov momentum and Adam, with torch's semantics.

Each factory returns an :class:`Optimizer` (an immutable NamedTuple of numbers), passed as
``dynclip.simulate(..., optimizer=...)``. Clipping comes first, exactly as without an
optimiser: the step k computes the clipped update ``u_k`` (any rule, ``clip_per``, ALRC),
then the optimiser turns it into a step with learning rate ``a(k)``, as
``torch.nn.utils.clip_grad_norm_`` followed by ``optimizer.step()`` does in torch:

- ``sgd()``: ``theta -= a u`` (the default; the engine's own SA step).
- ``momentum(beta, nesterov)`` (``torch.optim.SGD(momentum=beta, nesterov=...)``, no
  dampening): ``buf = u`` at the first step, then ``buf = beta buf + u``;
  ``d = u + beta buf`` (Nesterov) or ``d = buf``; ``theta -= a d``.
- ``adam(beta1, beta2, eps)`` (``torch.optim.Adam``, amsgrad off): ``t += 1``,
  ``m = beta1 m + (1 - beta1) u``, ``v = beta2 v + (1 - beta2) u^2``,
  ``theta -= a / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.

Every factory takes ``weight_decay=mu >= 0`` (default 0) with torch's meaning (the L2 form of
``torch.optim.SGD`` and ``torch.optim.Adam``, not AdamW): ``u`` above is replaced by
``u + mu theta``, added *after* clipping and before the momentum buffer or Adam's moments. For
SGD the step is ``theta -= a (u + mu theta)``, whose mean field is ``H(theta) + mu theta``
(``dynclip.meanfield.H(..., weight_decay=mu)``): clipped SGD on the loss ``F + (mu/2)||theta||^2``
with the decay left unclipped.

A projection (``project_radius``) acts after the optimiser step. The optimiser state
(``buf``, or ``m``, ``v`` and ``t``) is per replica and part of a run's checkpoints.

The engine's diagnostics keep their meaning for the clipped update ``u``; with momentum or
Adam, or weight decay, the step is no longer ``a u``, so the sure displacement bound
``||theta_k - theta_0|| <= sum a ||u||`` is a statement about SGD without weight decay only. The
mean field and the ODE (:mod:`dynclip.meanfield`, :mod:`dynclip.ode`, with their own
``weight_decay``) describe SGD only.

Cost per step on the benchmark network (P = 1249, one thread): momentum ~0.1 us, Adam ~0.6 us
(a square root and two divisions per parameter) on top of an SGD step of ~0.75 us at batch
size 1 and ~10 us at batch size 32. SGD with weight decay takes the optimiser path (~0.15 us more
than plain SGD at batch size 1); ``sgd()`` without it keeps the engine's fused step.
"""
from enum import IntEnum
from typing import NamedTuple
import math

from ._jit import hot
from .checks import check_positive, check_nonneg, check_fraction, check_bool, check_int


class OptKind(IntEnum):
    sgd = 0
    momentum = 1
    adam = 2


class Optimizer(NamedTuple):
    """An optimiser as plain data. Build it with :func:`sgd`, :func:`momentum` or :func:`adam`."""
    kind: int
    beta: float = 0.0       # momentum
    nesterov: bool = False  # momentum
    beta1: float = 0.0      # adam
    beta2: float = 0.0      # adam
    eps: float = 0.0        # adam
    weight_decay: float = 0.0   # every kind: u + weight_decay * theta feeds the step

    @property
    def name(self):
        return OptKind(self.kind).name

    def describe(self):
        k = OptKind(self.kind)
        wd = f"weight_decay={self.weight_decay:g}" if self.weight_decay else ""
        if k == OptKind.sgd:
            return f"sgd({wd})"
        wd = ", " + wd if wd else ""
        if k == OptKind.momentum:
            return f"momentum(beta={self.beta:g}, nesterov={self.nesterov}{wd})"
        return f"adam(beta1={self.beta1:g}, beta2={self.beta2:g}, eps={self.eps:g}{wd})"

    def as_dict(self):
        return dict(self._asdict())

    @classmethod
    def from_dict(cls, d):
        """The optimiser of ``as_dict()`` (as read back from a result's config), validated."""
        return check_optimizer(cls(**d))


def check_weight_decay(v):
    """``weight_decay`` as a float: a finite number >= 0 (ValueError naming it otherwise)."""
    return check_nonneg("weight_decay", v)


def sgd(weight_decay=0.0):
    """Plain SGD, ``torch.optim.SGD(lr=a(k), weight_decay=weight_decay)``: ``theta -= a(k) (u_k + mu theta)``.

    ``weight_decay = mu``, a finite number >= 0, is added after clipping (the default 0: the
    engine's own step ``theta -= a(k) u_k``).
    """
    return Optimizer(int(OptKind.sgd), weight_decay=check_weight_decay(weight_decay))


def momentum(beta=0.9, nesterov=False, weight_decay=0.0):
    """Momentum as ``torch.optim.SGD(lr=a(k), momentum=beta, nesterov=nesterov, weight_decay=weight_decay)``
    (no dampening).

    ``0 <= beta < 1``; Nesterov needs ``beta > 0``. ``beta = 0`` is plain SGD. ``weight_decay``
    (a finite number >= 0) is added to the clipped update before the momentum buffer.
    """
    b = check_fraction("beta", beta)
    nesterov = check_bool("nesterov", nesterov)
    if nesterov and b == 0.0:
        raise ValueError("nesterov=True needs beta > 0 (beta must be in (0, 1)); got beta=0")
    return Optimizer(int(OptKind.momentum), beta=b, nesterov=nesterov, weight_decay=check_weight_decay(weight_decay))


def adam(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """Adam as ``torch.optim.Adam(lr=a(k), betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)``
    (amsgrad off).

    ``0 <= beta1, beta2 < 1``; ``eps`` a finite number > 0. ``weight_decay`` (a finite number >= 0)
    is torch's L2 form: added to the clipped update before the moments (not AdamW's decoupled decay).
    """
    b1, b2 = check_fraction("beta1", beta1), check_fraction("beta2", beta2)
    e = check_positive("eps", eps)
    return Optimizer(int(OptKind.adam), beta1=b1, beta2=b2, eps=e, weight_decay=check_weight_decay(weight_decay))


_REBUILD = {
    OptKind.sgd: lambda o: sgd(o.weight_decay),
    OptKind.momentum: lambda o: momentum(o.beta, o.nesterov, o.weight_decay),
    OptKind.adam: lambda o: adam(o.beta1, o.beta2, o.eps, o.weight_decay),
}


def check_optimizer(optimizer):
    """The optimiser as its factory builds it (None: :func:`sgd`); ValueError naming ``optimizer``
    for anything else. Fields its kind does not use are reset to their defaults."""
    if optimizer is None:
        return sgd()
    if not isinstance(optimizer, Optimizer):
        raise ValueError("optimizer must be None or an Optimizer from dynclip.optimizers (sgd, momentum, "
                         f"adam); got {type(optimizer).__name__}")
    try:
        kind = check_int("kind", optimizer.kind, 0, len(OptKind) - 1)
        return _REBUILD[OptKind(kind)](optimizer)
    except (TypeError, ValueError) as e:
        raise ValueError(f"optimizer is not a valid Optimizer ({e}); build it with the factories of "
                         "dynclip.optimizers") from None


def state_shapes(optimizer, R, P):
    """Shapes of the per-replica state arrays (m, v): the momentum buffer or Adam's moments."""
    kind = OptKind(optimizer.kind)
    return (R, P if kind != OptKind.sgd else 0), (R, P if kind == OptKind.adam else 0)


# ----------------------------------------------------------------------------------------
# jitted
# ----------------------------------------------------------------------------------------
@hot
def optimizer_step(opt, th, v, w, a, m, s, t, r):
    """One optimiser step on th with the clipped update u = w v and learning rate a.

    ``m`` (momentum buffer, or Adam's first moment) and ``s`` (Adam's second moment) are this
    replica's state rows; ``t[r]`` counts the optimiser steps taken so far. The step is fed
    ``u + weight_decay * th`` (torch's weight decay, after clipping; th is finite here: the engine
    stops a replica once it is not, and with weight_decay 0 the term adds an exact zero).
    Plain SGD without weight decay is the engine's own fused step and never comes here.
    """
    P = th.shape[0]
    wd = opt.weight_decay
    t[r] += 1
    if opt.kind == 0:
        for i in range(P):
            th[i] -= a * (w * v[i] + wd * th[i])
        return
    if opt.kind == 1:
        beta = opt.beta
        if t[r] == 1:
            for i in range(P):
                m[i] = w * v[i] + wd * th[i]
        else:
            for i in range(P):
                m[i] = beta * m[i] + (w * v[i] + wd * th[i])
        if opt.nesterov:
            for i in range(P):
                th[i] -= a * ((w * v[i] + wd * th[i]) + beta * m[i])
        else:
            for i in range(P):
                th[i] -= a * m[i]
        return
    b1 = opt.beta1
    b2 = opt.beta2
    n = float(t[r])
    step = a / (1.0 - math.pow(b1, n))
    bc2 = math.sqrt(1.0 - math.pow(b2, n))
    eps = opt.eps
    for i in range(P):
        u = w * v[i] + wd * th[i]
        m[i] = b1 * m[i] + (1.0 - b1) * u
        s[i] = b2 * s[i] + (1.0 - b2) * (u * u)
        th[i] -= step * (m[i] / (math.sqrt(s[i]) / bc2 + eps))
