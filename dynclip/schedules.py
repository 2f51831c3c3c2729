"""Step sizes a(k) as data.

``constant(a)``: a(k) = a; ``inverse(a0, t0=1)``: a(k) = a0 / (k + t0);
``power(a0, t0, kappa)``: a(k) = a0 / (k + t0)**kappa, for steps k = 0, 1, 2, ...
The ODE time of step k is t_k = sum_{j<k} a(j) (:func:`ode_time`).
"""
from enum import IntEnum
from typing import NamedTuple
import math

import numpy as np


class ScheduleKind(IntEnum):
    constant = 0
    power = 1   # inverse is power with kappa = 1


class Schedule(NamedTuple):
    kind: int
    a0: float
    t0: float = 1.0
    kappa: float = 1.0

    def values(self, start, stop):
        """a(k) for k = start .. stop-1 as a float64 array (the engine's step table)."""
        k = np.arange(start, stop, dtype=np.float64)
        if self.kind == ScheduleKind.constant:
            return np.full(k.shape, self.a0)
        if self.kappa == 1.0:
            return self.a0 / (k + self.t0)
        return self.a0 / (k + self.t0) ** self.kappa

    def __call__(self, k):
        k = np.asarray(k, dtype=np.float64)
        if self.kind == ScheduleKind.constant:
            return np.full(k.shape, self.a0)[()]
        return (self.a0 / (k + self.t0) ** self.kappa)[()]

    @property
    def satisfies_a2(self):
        """True iff sum a = inf and sum a^2 < inf (assumption A2): power schedules with 1/2 < kappa <= 1."""
        return self.kind == ScheduleKind.power and 0.5 < self.kappa <= 1.0

    def describe(self):
        if self.kind == ScheduleKind.constant:
            return f"constant({self.a0:g})"
        if self.kappa == 1.0:
            return f"inverse(a0={self.a0:g}, t0={self.t0:g})"
        return f"power(a0={self.a0:g}, t0={self.t0:g}, kappa={self.kappa:g})"

    def as_dict(self):
        return dict(self._asdict())

    @classmethod
    def from_dict(cls, d):
        return cls(int(d["kind"]), float(d["a0"]), float(d["t0"]), float(d["kappa"]))


def _pos(name, v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0; got {v!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number > 0; got {v!r}")
    return v


def constant(a):
    """Constant step a(k) = a (violates A2)."""
    return Schedule(int(ScheduleKind.constant), _pos("a", a))


def inverse(a0, t0=1.0):
    """a(k) = a0 / (k + t0): satisfies A2."""
    return Schedule(int(ScheduleKind.power), _pos("a0", a0), _pos("t0", t0), 1.0)


def power(a0, t0, kappa):
    """a(k) = a0 / (k + t0)**kappa; satisfies A2 iff 1/2 < kappa <= 1."""
    return Schedule(int(ScheduleKind.power), _pos("a0", a0), _pos("t0", t0), _pos("kappa", kappa))


def check_schedule(schedule):
    if not isinstance(schedule, Schedule):
        raise ValueError("schedule must be a Schedule from dynclip.schedules (constant, inverse, "
                         f"power); got {type(schedule).__name__}")
    return schedule


def ode_time(schedule, n_steps):
    """ODE times t_k = sum_{j<k} a(j) for k = 0 .. n_steps (length n_steps + 1)."""
    a = check_schedule(schedule).values(0, int(n_steps))
    return np.concatenate(([0.0], np.cumsum(a)))


def sums(schedule, n_steps):
    """``(A, Sigma2)``: sum of a and of a^2 over steps 0 .. n_steps-1."""
    a = check_schedule(schedule).values(0, int(n_steps))
    return float(a.sum()), float((a * a).sum())
