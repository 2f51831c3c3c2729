"""Step sizes a(k) as data.

``constant(a)``: a(k) = a; ``inverse(a0, t0=1)``: a(k) = a0 / (k + t0);
``power(a0, t0, kappa)``: a(k) = a0 / (k + t0)**kappa, for steps k = 0, 1, 2, ...
The ODE time of step k is t_k = sum_{j<k} a(j) (:func:`ode_time`).
"""
from enum import IntEnum
from typing import NamedTuple
import math

import numpy as np

from .checks import check_int, check_positive


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
        return self._power(k)

    def __call__(self, k):
        k = np.asarray(k, dtype=np.float64)
        if self.kind == ScheduleKind.constant:
            return np.full(k.shape, self.a0)[()]
        return self._power(k)[()]

    def _power(self, k):
        """a0 / (k + t0)**kappa; where (k + t0)**kappa leaves the normal float range (overflow to inf,
        or underflow) although a(k) does not, from logarithms instead."""
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            den = (k + self.t0) ** self.kappa
            a = self.a0 / den
        bad = ~((den >= _TINY) & (den < np.inf))
        if np.any(bad):
            a = np.where(bad, np.exp(math.log(self.a0) - self.kappa * np.log(k + self.t0)), a)
        return a

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


_TINY = np.finfo(np.float64).tiny


def _first_step(a0, t0, kappa, names):
    """Refuse a power schedule whose first step a(0) = a0 / t0**kappa overflows (checked in logs)."""
    if math.log(a0) - kappa * math.log(t0) >= math.log(np.finfo(np.float64).max):
        raise ValueError(f"{names} must give a finite first step a(0) = a0 / t0**kappa; got "
                         f"a0={a0!r}, t0={t0!r}, kappa={kappa!r}")


def constant(a):
    """Constant step a(k) = a (violates A2)."""
    return Schedule(int(ScheduleKind.constant), check_positive("a", a))


def inverse(a0, t0=1.0):
    """a(k) = a0 / (k + t0): satisfies A2. a0 and t0 are finite and > 0, with a(0) = a0 / t0 finite."""
    a0, t0 = check_positive("a0", a0), check_positive("t0", t0)
    _first_step(a0, t0, 1.0, "a0 and t0")
    return Schedule(int(ScheduleKind.power), a0, t0, 1.0)


def power(a0, t0, kappa):
    """a(k) = a0 / (k + t0)**kappa; satisfies A2 iff 1/2 < kappa <= 1.

    a0, t0 and kappa are finite and > 0, with a(0) = a0 / t0**kappa finite.
    """
    a0, t0, kappa = check_positive("a0", a0), check_positive("t0", t0), check_positive("kappa", kappa)
    _first_step(a0, t0, kappa, "a0, t0 and kappa")
    return Schedule(int(ScheduleKind.power), a0, t0, kappa)


def check_schedule(schedule):
    """The schedule as its factory builds it; ValueError naming ``schedule`` for anything else
    (a Schedule built by hand is checked like the factory's arguments)."""
    if not isinstance(schedule, Schedule):
        raise ValueError("schedule must be a Schedule from dynclip.schedules (constant, inverse, "
                         f"power); got {type(schedule).__name__}")
    try:
        kind = check_int("kind", schedule.kind, 0, len(ScheduleKind) - 1)
        if kind == ScheduleKind.constant:
            return constant(schedule.a0)
        return power(schedule.a0, schedule.t0, schedule.kappa)
    except (TypeError, ValueError) as e:
        raise ValueError(f"schedule is not a valid Schedule ({e}); build it with the factories of "
                         "dynclip.schedules") from None


def ode_time(schedule, n_steps):
    """ODE times t_k = sum_{j<k} a(j) for k = 0 .. n_steps (length n_steps + 1); n_steps >= 0."""
    a = check_schedule(schedule).values(0, check_int("n_steps", n_steps, lo=0))
    return np.concatenate(([0.0], np.cumsum(a)))


def sums(schedule, n_steps):
    """``(A, Sigma2)``: sum of a and of a^2 over steps 0 .. n_steps-1; n_steps >= 0."""
    a = check_schedule(schedule).values(0, check_int("n_steps", n_steps, lo=0))
    return float(a.sum()), float((a * a).sum())
