"""Concentration bounds for the martingale noise of clipped SGD.

Notation
--------
Clipped SGD with clipping threshold ``lam`` (:math:`\\lambda`) and step sizes
:math:`a(t)` is written as

.. math::

    \\theta_{t+1} = \\theta_t - a(t)\\,\\frac{g_t}{c_t},
    \\qquad \\Bigl\\|\\frac{g_t}{c_t}\\Bigr\\| \\le \\lambda ,

and its noise part is split off as
:math:`g_t/c_t = H(\\theta_t) + M(t+1)` with
:math:`H(\\theta_t) = \\mathbb E[g_t/c_t \\mid \\mathcal F_t]` and the
martingale difference :math:`M(t+1)`.  The accumulated noise is

.. math::

    \\xi_t = \\sum_{s<t} a(s)\\,M(s+1),

and ``sum_a2`` (:math:`\\Sigma`, called :math:`\\gamma` in the paper) is
:math:`\\sum_t a(t)^2` over the horizon considered.  Since
:math:`\\|H\\| \\le \\lambda` and :math:`\\|g/c\\| \\le \\lambda`, we have
:math:`\\|M\\| \\le 2\\lambda`, and every coordinate of :math:`M` lies in the
predictable interval :math:`[-\\lambda - H_i, \\lambda - H_i]` of length
:math:`2\\lambda`.

Every bound function below returns an upper bound on
:math:`P(\\sup_{t \\le T} \\|\\xi_t\\| \\ge r)` (or on
:math:`P(\\sup_t |X_t| \\ge r)` for a scalar martingale).  The raw
expression is returned; it can exceed 1.  Use :func:`clip_prob` to cap it.

All bound functions are vectorised: ``r`` (and the other numeric arguments)
may be scalars or arrays that broadcast together; a Python ``float`` is
returned when every input is a scalar, an ``ndarray`` otherwise.

References
----------
.. [Ram23] A. Ramaswamy, "Gradient Clipping in Deep Learning: A Dynamical
   Systems Perspective", Proc. 12th ICPRAM, vol. 1 (2023), 107-114,
   doi:10.5220/0011678000003411.  Eqs. (14)-(15) contain the Azuma-type
   bound reproduced (and criticised) in :func:`paper_azuma`.
.. [Hoe63] W. Hoeffding, "Probability inequalities for sums of bounded
   random variables", J. Amer. Statist. Assoc. 58 (1963), 13-30.
.. [Azu67] K. Azuma, "Weighted sums of certain dependent random
   variables", Tohoku Math. J. 19 (1967), 357-367.
.. [McD89] C. McDiarmid, "On the method of bounded differences", Surveys in
   Combinatorics, LMS Lecture Note Series 141 (1989), 148-188 (martingale
   version of Hoeffding's lemma with predictable ranges).
.. [Pin94] I. Pinelis, "Optimum bounds for the distributions of martingales
   in Banach spaces", Ann. Probab. 22(4) (1994), 1679-1706.  Theorem 3.5
   (Hoeffding/Azuma form) and Theorem 3.4 (Bennett form), both with
   :math:`D = 1` for a Hilbert space.
.. [CP34] C. J. Clopper and E. S. Pearson, "The use of confidence or
   fiducial limits illustrated in the case of the binomial", Biometrika
   26(4) (1934), 404-413.
"""

from __future__ import annotations

import numpy as np

from .checks import check_broadcast, real_array, nonneg_array, positive_array, positive_int_array, describe_values

__all__ = [
    "clip_prob",
    "paper_azuma",
    "azuma",
    "hoeffding_range",
    "pinelis",
    "coordinate_union",
    "pinelis_bennett",
    "sure_displacement",
    "exponent",
    "EXPONENT_KINDS",
    "paper_plugin_exponents",
    "clopper_pearson",
]

#: Kinds accepted by :func:`exponent`.
EXPONENT_KINDS = ("paper", "azuma", "pinelis", "pinelis_bennett")


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------
def _is_scalar(x):
    return np.ndim(x) == 0


def _out(value, *inputs):
    """Return a Python float if every input was a scalar, else an ndarray."""
    if all(_is_scalar(x) for x in inputs):
        return float(value)
    return np.asarray(value, dtype=float)


# ---------------------------------------------------------------------------
# bounds
# ---------------------------------------------------------------------------
def clip_prob(p):
    """Cap a probability bound at 1.

    Parameters
    ----------
    p : float or array_like
        Raw value of a tail bound (may exceed 1).

    Returns
    -------
    float or ndarray
        ``minimum(p, 1)`` with the same shape as ``p``.

    Raises
    ------
    ValueError
        If ``p`` is negative or NaN.
    """
    arr = real_array("p", p)
    if np.any(arr < 0):
        raise ValueError(f"p must be >= 0, got {describe_values(p)}")
    return _out(np.minimum(arr, 1.0), p)


def paper_azuma(r, lam, sum_a2):
    """Azuma-type bound as printed in Ramaswamy (2023), eqs. (14)-(15).

    .. math::

        2 \\exp\\!\\left(-\\frac{2 r^2}{\\lambda^2 \\Sigma}\\right)

    .. warning::

       **This bound is wrong** and is provided only to reproduce and test
       the paper's numbers.  The paper assumes increments
       :math:`|\\Delta_t| \\le a(t)\\lambda` and then plugs
       :math:`a(t)\\lambda` into Hoeffding's *range* formula
       :math:`2\\exp(-2r^2/\\sum_t \\ell_t^2)` ([Hoe63]_), where
       :math:`\\ell_t` is the length of the interval containing the
       increment.  But :math:`|\\Delta_t| \\le a(t)\\lambda` only places
       :math:`\\Delta_t` in an interval of length :math:`\\ell_t = 2a(t)\\lambda`,
       so the exponent is 4 times too large; the correct statement is
       :func:`azuma`.  (The paper additionally applies the inequality to a
       submartingale -- the norm of the vector noise -- rather than a
       martingale.)

       Counterexample: the Rademacher martingale
       :math:`X_T = \\sum_{t<T} a_t \\lambda \\varepsilon_t` satisfies the
       paper's hypothesis exactly, has variance
       :math:`\\sigma^2 = \\lambda^2 \\Sigma`, and is close to Gaussian when
       no single step dominates, so
       :math:`P(|X_T| \\ge 2\\sigma) \\approx 0.0455`, whereas the formula
       gives :math:`2e^{-8} \\approx 6.7 \\times 10^{-4}`.

    Parameters
    ----------
    r : float or array_like
        Deviation level, finite and ``>= 0``.
    lam : float or array_like
        Clipping threshold :math:`\\lambda`, ``> 0``.
    sum_a2 : float or array_like
        :math:`\\Sigma = \\sum_t a(t)^2`, ``> 0``.

    Returns
    -------
    float or ndarray
        The (unclipped) expression above.  Equals ``azuma(r, lam,
        sum_a2)**4 / 8``.

    Notes
    -----
    Source: [Ram23]_, eqs. (14)-(15).
    """
    return _out(2.0 * np.exp(-exponent("paper", r, lam, sum_a2)), r, lam, sum_a2)


def azuma(r, lam, sum_a2):
    """Azuma-Hoeffding bound for a scalar martingale with bounded increments.

    .. math::

        P\\Bigl(\\max_{t \\le T} |X_t| \\ge r\\Bigr)
        \\le 2 \\exp\\!\\left(-\\frac{r^2}{2 \\lambda^2 \\Sigma}\\right)

    for a real martingale :math:`X_0 = 0` with
    :math:`|X_{t+1} - X_t| \\le \\lambda a(t)` ([Azu67]_, [Hoe63]_).  The
    maximal form follows from Doob's maximal inequality applied to the
    submartingale :math:`e^{sX_t}`.  Equivalently: each increment lies in a
    predictable interval of length :math:`2\\lambda a(t)`, and
    :func:`hoeffding_range` with ``range_sq_sum = 4 lam**2 sum_a2`` gives
    the same number.  For clipped SGD in one dimension,
    :math:`M = g/c - H` lies in :math:`[-\\lambda - H, \\lambda - H]`, an
    interval of length :math:`2\\lambda`, so this bound applies to
    :math:`\\xi_t` directly.

    Parameters
    ----------
    r : float or array_like
        Deviation level, finite and ``>= 0``.
    lam : float or array_like
        Increment scale :math:`\\lambda`, ``> 0``.
    sum_a2 : float or array_like
        :math:`\\Sigma = \\sum_t a(t)^2`, ``> 0``.

    Returns
    -------
    float or ndarray
        The (unclipped) bound.
    """
    return _out(2.0 * np.exp(-exponent("azuma", r, lam, sum_a2)), r, lam, sum_a2)


def hoeffding_range(r, range_sq_sum):
    """Hoeffding-Azuma bound for increments in predictable intervals.

    .. math::

        P\\Bigl(\\max_{t \\le T} |X_t| \\ge r\\Bigr)
        \\le 2 \\exp\\!\\left(-\\frac{2 r^2}{\\sum_t \\ell_t^2}\\right)

    for a real martingale whose increment :math:`X_{t+1} - X_t` lies, given
    :math:`\\mathcal F_t`, in an interval :math:`[A_t, A_t + \\ell_t]` with
    :math:`A_t` predictable ([Hoe63]_; martingale form [McD89]_).

    Parameters
    ----------
    r : float or array_like
        Deviation level, finite and ``>= 0``.
    range_sq_sum : float or array_like
        :math:`\\sum_t \\ell_t^2`, ``> 0``.

    Returns
    -------
    float or ndarray
        The (unclipped) bound.
    """
    r_ = nonneg_array("r", r)
    s = positive_array("range_sq_sum", range_sq_sum)
    check_broadcast(r=r_, range_sq_sum=s)
    with np.errstate(all="ignore"):
        e = _quadratic(2.0 * r_**2 / s, s, 2.0, r_, 1.0, s)
    return _out(2.0 * np.exp(-e), r, range_sq_sum)


def pinelis(r, lam, sum_a2):
    """Dimension-free Azuma bound for Hilbert-space martingales (Pinelis).

    .. math::

        P\\Bigl(\\sup_{t \\le T} \\|\\xi_t\\| \\ge r\\Bigr)
        \\le 2 \\exp\\!\\left(-\\frac{r^2}{8 \\lambda^2 \\Sigma}\\right)

    [Pin94]_, Theorem 3.5 with :math:`D = 1` (Hilbert space) states
    :math:`P(\\sup_j \\|f_j\\| \\ge r) \\le 2\\exp(-r^2/(2 b_*^2))` with
    :math:`b_*^2 = \\|\\sum_j \\|d_j\\|_\\infty^2\\|`.  For clipped SGD,
    :math:`\\|d_t\\| = a(t)\\|M(t+1)\\| \\le a(t)(\\|g/c\\| + \\|H\\|)
    \\le 2\\lambda a(t)`, so :math:`b_*^2 \\le 4\\lambda^2\\Sigma`.  The bound
    does not depend on the dimension.

    Parameters
    ----------
    r : float or array_like
        Deviation level, finite and ``>= 0``.
    lam : float or array_like
        Clipping threshold :math:`\\lambda`, ``> 0``.
    sum_a2 : float or array_like
        :math:`\\Sigma = \\sum_t a(t)^2`, ``> 0``.

    Returns
    -------
    float or ndarray
        The (unclipped) bound.
    """
    return _out(2.0 * np.exp(-exponent("pinelis", r, lam, sum_a2)), r, lam, sum_a2)


def coordinate_union(r, d, lam, sum_a2):
    """Union bound over coordinates, each bounded by Hoeffding-Azuma.

    .. math::

        P\\Bigl(\\sup_{t \\le T} \\|\\xi_t\\| \\ge r\\Bigr)
        \\le 2 d \\exp\\!\\left(-\\frac{r^2}{2 d \\lambda^2 \\Sigma}\\right)

    If :math:`\\|\\xi\\| \\ge r` then some coordinate has
    :math:`|\\xi_i| \\ge r/\\sqrt d`.  Each coordinate of
    :math:`a(t) M(t+1)` lies in the predictable interval
    :math:`a(t)[-\\lambda - H_i, \\lambda - H_i]` of length
    :math:`2\\lambda a(t)` (because :math:`|(g/c)_i| \\le \\lambda`), so
    :func:`hoeffding_range` gives :math:`2\\exp(-r^2/(2 d \\lambda^2\\Sigma))`
    per coordinate ([Hoe63]_, [McD89]_); multiply by :math:`d`.  With
    ``d = 1`` this equals :func:`azuma`.

    Parameters
    ----------
    r : float or array_like
        Deviation level, finite and ``>= 0``.
    d : int or array_like of int
        Dimension, integer ``>= 1``.
    lam : float or array_like
        Clipping threshold :math:`\\lambda`, ``> 0``.
    sum_a2 : float or array_like
        :math:`\\Sigma = \\sum_t a(t)^2`, ``> 0``.

    Returns
    -------
    float or ndarray
        The (unclipped) bound.
    """
    r_ = nonneg_array("r", r)
    d_ = positive_int_array("d", d)
    lam_ = positive_array("lam", lam)
    s = positive_array("sum_a2", sum_a2)
    check_broadcast(r=r_, d=d_, lam=lam_, sum_a2=s)
    with np.errstate(all="ignore"):
        den = 2.0 * d_ * lam_**2 * s
        e = _quadratic(r_**2 / den, den, 0.5 / d_, r_, lam_, s)
        val = 2.0 * (d_ * np.exp(-e))      # (2 d first would overflow for d > 9e307: inf * 0 = NaN)
    return _out(val, r, d, lam, sum_a2)


def pinelis_bennett(r, lam, sum_a2, a_max):
    """Bennett-type bound for Hilbert-space martingales (Pinelis).

    Raw formula ([Pin94]_, Theorem 3.4 with :math:`D = 1`): if
    :math:`\\|d_j\\| \\le b` almost surely and
    :math:`\\sum_j \\mathbb E[\\|d_j\\|^2 \\mid \\mathcal F_{j-1}] \\le B^2`,
    then

    .. math::

        P\\Bigl(\\sup_j \\|f_j\\| \\ge r\\Bigr)
        \\le 2 \\exp\\!\\left(\\frac{r}{b}
        - \\Bigl(\\frac{r}{b} + \\frac{B^2}{b^2}\\Bigr)
        \\ln\\Bigl(1 + \\frac{r b}{B^2}\\Bigr)\\right).

    For clipped SGD we use

    * :math:`b = 2\\lambda a_{\\max}`, since
      :math:`\\|a(t) M(t+1)\\| \\le 2\\lambda a(t)`;
    * :math:`B^2 = \\lambda^2 \\Sigma`, since
      :math:`\\mathbb E[\\|M\\|^2 \\mid \\mathcal F] =
      \\mathbb E[\\|g/c\\|^2 \\mid \\mathcal F] - \\|H\\|^2 \\le \\lambda^2`
      (a conditional variance is at most the conditional second moment).

    (This reading -- :math:`B^2 = \\lambda^2\\Sigma`, not
    :math:`(2\\lambda)^2\\Sigma` -- is the one that reproduces the plug-in
    exponent 48.5 at :math:`r = 1024, \\lambda = 30, \\Sigma = \\pi^2/6,
    a_{\\max} = 1`; see :func:`paper_plugin_exponents`.)

    Parameters
    ----------
    r : float or array_like
        Deviation level, finite and ``>= 0``.
    lam : float or array_like
        Clipping threshold :math:`\\lambda`, ``> 0``.
    sum_a2 : float or array_like
        :math:`\\Sigma = \\sum_t a(t)^2`, ``> 0``.
    a_max : float or array_like
        :math:`\\max_t a(t)`, ``> 0``.

    Returns
    -------
    float or ndarray
        The (unclipped) bound.
    """
    e = exponent("pinelis_bennett", r, lam, sum_a2, a_max=a_max)
    return _out(2.0 * np.exp(-e), r, lam, sum_a2, a_max)


_TINY = np.finfo(float).tiny


def _quadratic(fast, den, c, r, lam, s):
    """The exponent c r^2 / (lam^2 s): ``fast`` as the caller computed it with the denominator
    ``den``, or, where a square or a product in it leaves the normal float range (0/0, inf/inf,
    subnormal), from logarithms (0 at r = 0)."""
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        r2 = r**2
        ok = (np.isfinite(fast) & (r2 < np.inf) & ((r2 >= _TINY) | (r == 0)) & (lam**2 >= _TINY)
              & (den >= _TINY) & (den < np.inf))
        if np.all(ok):
            return fast
        safe = np.exp(np.log(c) + 2.0 * (np.log(r) - np.log(lam)) - np.log(s))    # exp(-inf) = 0 at r = 0
        return np.where(ok, fast, safe)


#: below this x = r b / B^2 the Bennett exponent is summed as a series (the closed form cancels)
_BENNETT_SERIES = 1e-3


def _h_over_x2(x):
    """h(x) / x^2 = sum_{j>=0} (-1)^j x^j / ((j+1)(j+2)) (terms to x^8: exact to rounding for
    |x| <= 1e-3), with h(x) = (1+x) log1p(x) - x."""
    acc = np.zeros_like(x)
    for j in range(8, -1, -1):
        acc = (-1.0) ** j / ((j + 1) * (j + 2)) + x * acc
    return acc


def _bennett_exponent(r, lam, s, am):
    """``(r/b + B2/b**2) * log1p(r*b/B2) - r/b = (B2/b**2) h(r b / B2)``, b = 2 lam a_max, B2 = lam^2 s,
    h(x) = (1+x) log1p(x) - x (>= 0, increasing in r).

    The closed form where its ratios stay in the normal float range and x = r b / B2 >= 1e-3;
    otherwise r^2/B2 * h(x)/x^2 as a series for small x, and from logarithms elsewhere
    (no 0/0, inf - inf or inf * 0), 0 at r = 0.
    """
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        b = 2.0 * lam * am
        B2 = lam**2 * s
        u = r / b
        v = B2 / b**2
        fast = (u + v) * np.log1p(u / v) - u
        inner = [b, B2, b**2, v, u / v]
        ok = np.isfinite(fast) & ((u >= _TINY) | (r == 0)) & (u < np.inf) & (u / v >= _BENNETT_SERIES)
        for q in inner:
            ok &= (q >= _TINY) & (q < np.inf)
        ok |= (r == 0) & np.isfinite(fast)
        if np.all(ok):
            return fast
        lr = np.log(r)
        lb = np.log(2.0) + np.log(lam) + np.log(am)
        lB2 = 2.0 * np.log(lam) + np.log(s)
        lx = lr + lb - lB2                                  # log x
        x = np.exp(lx)
        small = lx < np.log(_BENNETT_SERIES)
        series = np.exp(2.0 * lr - lB2) * _h_over_x2(np.where(small, x, 0.0))
        L = np.where(lx > 700.0, lx, np.log1p(x))            # log1p(x) = log x + O(1/x)
        k = (1.0 + np.exp(-lx)) * L - 1.0                    # h(x) / x
        large = np.exp(lr - lb + np.log(k))                  # u h(x) / x
        safe = np.where(r == 0, 0.0, np.where(small, series, large))
        return np.maximum(np.where(ok, fast, safe), 0.0)


def sure_displacement(lam, a):
    """Sure (deterministic) bound on the displacement under classic clipping.

    Since :math:`\\theta_s = \\theta_0 - \\sum_{t<s} a(t) g_t/c_t` with
    :math:`\\|g_t/c_t\\| \\le \\lambda`, the triangle inequality gives,
    with probability one,

    .. math::

        \\|\\theta_s - \\theta_0\\| \\le \\lambda \\sum_{t<s} a(t).

    This is a statement about clipped SGD (the default optimiser of
    :func:`dynclip.simulate`): momentum and Adam steps are not :math:`a(t) g_t/c_t`.

    Parameters
    ----------
    lam : float
        Clipping threshold :math:`\\lambda`, ``> 0``.
    a : array_like
        1-D sequence of step sizes :math:`a(0), a(1), \\dots`, each finite
        and ``>= 0``.

    Returns
    -------
    ndarray
        ``lam * cumsum(a)``, of length ``len(a)``; element ``s - 1`` is the
        bound on :math:`\\|\\theta_s - \\theta_0\\|`.
    """
    if not _is_scalar(lam):
        raise ValueError(f"lam must be a scalar > 0, got array of shape {np.shape(lam)}")
    lam_ = float(positive_array("lam", lam))
    a_ = real_array("a", a)
    if a_.ndim != 1:
        raise ValueError(f"a must be a 1-D array of step sizes, got ndim={a_.ndim}")
    if np.any(~np.isfinite(a_) | (a_ < 0)):
        raise ValueError("a must contain only finite values >= 0")
    return lam_ * np.cumsum(a_)


def exponent(kind, r, lam, sum_a2, a_max=None):
    """Exponent :math:`E` of a bound written as :math:`2\\exp(-E)`.

    Parameters
    ----------
    kind : {"paper", "azuma", "pinelis", "pinelis_bennett"}
        Which bound:

        * ``"paper"``: :math:`2r^2/(\\lambda^2\\Sigma)` (:func:`paper_azuma`,
          incorrect, see there);
        * ``"azuma"``: :math:`r^2/(2\\lambda^2\\Sigma)` (:func:`azuma`);
        * ``"pinelis"``: :math:`r^2/(8\\lambda^2\\Sigma)` (:func:`pinelis`);
        * ``"pinelis_bennett"``:
          :math:`(r/b + B^2/b^2)\\ln(1 + rb/B^2) - r/b` with
          :math:`b = 2\\lambda a_{\\max}`, :math:`B^2 = \\lambda^2\\Sigma`
          (:func:`pinelis_bennett`).
    r : float or array_like
        Deviation level, finite and ``>= 0``.
    lam : float or array_like
        Clipping threshold :math:`\\lambda`, ``> 0``.
    sum_a2 : float or array_like
        :math:`\\Sigma = \\sum_t a(t)^2` (the paper's :math:`\\gamma`), ``> 0``.
    a_max : float or array_like, optional
        :math:`\\max_t a(t)`, ``> 0``; required for ``"pinelis_bennett"``
        and ignored otherwise.

    Returns
    -------
    float or ndarray
        The exponent :math:`E \\ge 0`.
    """
    if not isinstance(kind, str) or kind not in EXPONENT_KINDS:
        raise ValueError(f"kind must be one of {EXPONENT_KINDS}, got {describe_values(kind)}")
    r_ = nonneg_array("r", r)
    lam_ = positive_array("lam", lam)
    s = positive_array("sum_a2", sum_a2)
    if kind != "pinelis_bennett":
        check_broadcast(r=r_, lam=lam_, sum_a2=s)
        with np.errstate(all="ignore"):
            if kind == "paper":
                den = lam_**2 * s
                e = _quadratic(2.0 * r_**2 / den, den, 2.0, r_, lam_, s)
            elif kind == "azuma":
                den = 2.0 * lam_**2 * s
                e = _quadratic(r_**2 / den, den, 0.5, r_, lam_, s)
            else:
                den = 8.0 * lam_**2 * s
                e = _quadratic(r_**2 / den, den, 0.125, r_, lam_, s)
        return _out(e, r, lam, sum_a2)
    if a_max is None:
        raise ValueError("a_max must be given (> 0) for kind 'pinelis_bennett', got None")
    am = positive_array("a_max", a_max)
    check_broadcast(r=r_, lam=lam_, sum_a2=s, a_max=am)
    return _out(_bennett_exponent(r_, lam_, s, am), r, lam, sum_a2, a_max)


def paper_plugin_exponents(rho=1024, lam=30, gamma=np.pi**2 / 6, a_max=1.0):
    """Exponents of the four bounds at the paper's plug-in values.

    With the defaults (:math:`\\rho = 2^{10}`, :math:`\\lambda = 30`,
    :math:`\\gamma = \\sum_{t \\ge 1} t^{-2} = \\pi^2/6`, :math:`a(t) = 1/t`
    so :math:`a_{\\max} = 1`) the values are approximately::

        paper            1416.57   (= 2 rho^2 / (gamma lam^2), printed 1416.6)
        azuma             354.14
        pinelis            88.536
        pinelis_bennett    48.467

    Note that the Bennett value is 48.47 to four significant figures
    (48.5 to three).

    Parameters
    ----------
    rho : float, default 1024
        Deviation level.
    lam : float, default 30
        Clipping threshold.
    gamma : float, default pi**2/6
        :math:`\\sum_t a(t)^2`.
    a_max : float, default 1.0
        :math:`\\max_t a(t)`.

    Returns
    -------
    dict
        ``{"paper": ..., "azuma": ..., "pinelis": ..., "pinelis_bennett": ...}``
        mapping each kind of :func:`exponent` to its value (float).
    """
    check_broadcast(rho=nonneg_array("rho", rho), lam=positive_array("lam", lam), gamma=positive_array("gamma", gamma),
               a_max=positive_array("a_max", a_max))
    return {kind: exponent(kind, rho, lam, gamma, a_max=a_max) for kind in EXPONENT_KINDS}


def clopper_pearson(k, n, level=0.95):
    """Exact (Clopper-Pearson) two-sided confidence interval for a binomial p.

    .. math::

        p_{\\text{low}} = B^{-1}\\bigl(\\tfrac{\\alpha}{2}; k, n-k+1\\bigr),
        \\qquad
        p_{\\text{high}} = B^{-1}\\bigl(1-\\tfrac{\\alpha}{2}; k+1, n-k\\bigr),

    with :math:`\\alpha = 1 - \\text{level}`, :math:`B^{-1}` the beta
    quantile function, :math:`p_{\\text{low}} = 0` when :math:`k = 0` and
    :math:`p_{\\text{high}} = 1` when :math:`k = n` ([CP34]_).  Agrees with
    ``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``.

    Parameters
    ----------
    k : int or array_like of int
        Number of successes, ``0 <= k <= n``.
    n : int or array_like of int
        Number of trials, ``>= 1``; broadcasts with ``k``.
    level : float, default 0.95
        Confidence level, ``0 < level < 1``.

    Returns
    -------
    low, high : float or ndarray
        Lower and upper confidence limits (floats if ``k`` and ``n`` are
        scalars, arrays of the broadcast shape otherwise).
    """
    if isinstance(level, (bool, np.bool_)) or np.ndim(level) != 0:
        raise ValueError(f"level must be a real number with 0 < level < 1, got {level!r}")
    try:
        level_ = float(level)
    except (TypeError, ValueError):
        raise ValueError(f"level must be a real number with 0 < level < 1, got {level!r}") from None
    if not (0.0 < level_ < 1.0):
        raise ValueError(f"level must satisfy 0 < level < 1, got {level!r}")
    n_ = positive_int_array("n", n)
    k_ = real_array("k", k)
    if np.any(~np.isfinite(k_) | (k_ != np.round(k_))):
        raise ValueError(f"k must be integer-valued, got {describe_values(k)}")
    check_broadcast(k=k_, n=n_)
    k_, n_ = np.broadcast_arrays(k_, n_)
    if np.any((k_ < 0) | (k_ > n_)):
        raise ValueError("k must satisfy 0 <= k <= n")
    alpha = (1.0 - level_) / 2.0
    zero = k_ == 0
    full = k_ == n_
    # Substitute harmless shape parameters where the limit is fixed (0 or 1).
    from scipy import stats     # on first use: keeps `import dynclip` fast
    low = stats.beta.ppf(alpha, np.where(zero, 1.0, k_), n_ - k_ + 1.0)
    high = stats.beta.isf(alpha, k_ + 1.0, np.where(full, 1.0, n_ - k_))
    low = np.where(zero, 0.0, low)
    high = np.where(full, 1.0, high)
    return _out(low, k, n), _out(high, k, n)
