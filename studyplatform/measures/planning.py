"""Power and sample size for comparing two credibility rates: pure functions.

Nothing here imports Django, numpy or scipy, so the study admin (which must not import
``analysis``) and ``analysis.stats`` (which imports nothing from ``surveys``) share one
implementation: ``analysis.stats`` re-exports these two functions. The normal
distribution comes from the standard library (``statistics.NormalDist``, whose quantile
function is Wichura's AS 241 algorithm, accurate to about 1e-16, as is scipy's).
"""

from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()


def _check_probability(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")


def power_two_proportions(
    p1: float, p2: float, n1: float, n2: float | None = None, alpha: float = 0.05
) -> float:
    """Power of the two-sided pooled two-proportion z test at level ``alpha`` when the
    true rates are ``p1`` and ``p2`` and the groups have ``n1`` and ``n2`` ratings.

    Formula (the normal approximation of R ``power.prop.test`` with its default
    ``strict = FALSE``, generalised to unequal groups)::

        pbar  = (n1 p1 + n2 p2) / (n1 + n2)
        power = Phi( (|p1 - p2| - z_{1-alpha/2} sqrt(pbar (1-pbar) (1/n1 + 1/n2)))
                     / sqrt(p1 (1-p1) / n1 + p2 (1-p2) / n2) )

    With ``n1 = n2 = n`` this is exactly R's expression. Like R's default it ignores the
    (tiny) chance of rejecting in the wrong direction. ``n2`` defaults to ``n1``.
    Assumptions: independent ratings (with several ratings per participant the effective
    n is smaller), large-sample normal approximation.
    """
    _check_probability("p1", p1)
    _check_probability("p2", p2)
    _check_probability("alpha", alpha)
    n2 = n1 if n2 is None else n2
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"group sizes must be positive, got n1={n1}, n2={n2}")
    pbar = (n1 * p1 + n2 * p2) / (n1 + n2)
    z_alpha = _NORMAL.inv_cdf(1.0 - alpha / 2.0)
    null_se = math.sqrt(pbar * (1 - pbar) * (1 / n1 + 1 / n2))
    alt_se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return _NORMAL.cdf((abs(p1 - p2) - z_alpha * null_se) / alt_se)


def sample_size_two_proportions(
    p1: float,
    p2: float,
    alpha: float = 0.05,
    power: float = 0.8,
    continuity_correction: bool = False,
) -> float:
    """Ratings per group (equal groups) for the two-sided two-proportion z test at level
    ``alpha`` to reach ``power`` when the true rates are ``p1`` and ``p2``.

    Formula: the closed-form inverse of :func:`power_two_proportions` with equal groups,
    ``n = (z_{1-alpha/2} sqrt(2 pbar (1-pbar)) + z_{power} sqrt(p1 q1 + p2 q2))^2
    / (p1 - p2)^2`` with ``pbar = (p1 + p2) / 2``, the usual formula without continuity
    correction (Fleiss, Levin & Paik, *Statistical Methods for Rates and Proportions*,
    3rd ed., ch. 4) and the same root R ``power.prop.test`` finds numerically. Returned
    unrounded: round up for a plan.
    With ``continuity_correction`` the n is for the Yates-corrected chi-square test (what
    R ``prop.test`` runs by default) instead of the plain z test: Fleiss, Tytun & Ury's
    (1980, Biometrics 36:343-346) ``n' = n / 4 * (1 + sqrt(1 + 4 / (n |p1 - p2|)))^2``
    with ``n`` the uncorrected size, always larger (by about ``2 / |p1 - p2|``).
    Raises ValueError when ``p1 == p2`` (no finite n detects no difference).
    """
    _check_probability("p1", p1)
    _check_probability("p2", p2)
    _check_probability("alpha", alpha)
    _check_probability("power", power)
    if p1 == p2:
        raise ValueError("p1 and p2 are equal: no sample size detects a zero difference.")
    pbar = (p1 + p2) / 2.0
    z_alpha = _NORMAL.inv_cdf(1.0 - alpha / 2.0)
    z_beta = _NORMAL.inv_cdf(power)
    root = z_alpha * math.sqrt(2 * pbar * (1 - pbar)) + z_beta * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    n = root**2 / (p1 - p2) ** 2
    if continuity_correction:
        n = n / 4.0 * (1.0 + math.sqrt(1.0 + 4.0 / (n * abs(p1 - p2)))) ** 2
    return n
