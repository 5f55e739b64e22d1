"""Replication tests against a published result, for two proportions (the credible share
of a condition against the reference's).

- :func:`small_telescopes`: Simonsohn (2015), "Small telescopes: detectability and the
  evaluation of replication results", Psychological Science 26:559-569. The original
  study's design defines d33, the effect it had 33% power to detect (two-sided, alpha
  0.05, its own sample sizes); the replication then tests, one-sided, whether its effect
  is smaller than d33. A significant result says the effect, if any, is too small for the
  original study to have seen it: the original's "telescope" was too small. For two
  proportions the effect size is Cohen's h, ``2 asin(sqrt(p1)) - 2 asin(sqrt(p2))``
  (the arcsine scale, on which the variance of an estimate is ``1/n1 + 1/n2`` whatever
  the rates): h33 solves statsmodels' ``NormalIndPower`` power function, and the replication's h is
  compared with it by a z test. d33 is also given as a difference in proportions at the
  original reference rate, for reading.
- :func:`equivalence_test`: the two one-sided tests (TOST, Schuirmann 1987; Lakens 2017)
  of the difference in credible shares against bounds the researcher set, with
  statsmodels' ``tost_proportions_2indep`` (``compare="diff"``, Wald z with the
  unpooled variance, as TOSTER's ``TOSTtwo.prop``). Equivalent when both one-sided tests
  reject: the difference lies within the bounds.

Both treat each rating as independent, as the report's two-proportion tests do; with
several ratings per participant that overstates the precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import tost_proportions_2indep

from analysis.stats.inputs import check_counts
from analysis.stats.proportions import cohens_h

# The power that defines a "small telescope" (Simonsohn 2015).
TELESCOPE_POWER = 1.0 / 3.0


@dataclass(frozen=True)
class SmallTelescope:
    """Result of :func:`small_telescopes`. Effects are Cohen's h, condition minus
    reference; ``h33`` has the sign of the original effect."""

    original_h: float
    h33: float
    # h33 as a difference in credible shares (condition minus reference) at the original
    # reference rate.
    d33_difference: float
    replication_h: float
    se: float  # of the replication's h: sqrt(1/n + 1/n_reference)
    z: float  # (replication h - h33) / se, in the original's direction
    p_value: float  # one-sided: the replication's effect is smaller than h33
    alpha: float

    @property
    def smaller(self) -> bool:
        """The replication's effect is significantly smaller than h33."""
        return self.p_value < self.alpha


def small_telescopes(
    *,
    original_rate: float,
    original_n: int,
    original_reference_rate: float,
    original_reference_n: int,
    successes: int,
    n: int,
    reference_successes: int,
    reference_n: int,
    alpha: float = 0.05,
) -> SmallTelescope:
    """Simonsohn's small-telescopes test for a difference of two proportions.

    h33 solves ``power(h) = 1/3`` for the original's two-sided z test at alpha 0.05 with
    ``original_n`` ratings in the condition and ``original_reference_n`` in the reference
    (statsmodels ``NormalIndPower().power``, solved by scipy's brentq; power counts
    both tails). The
    replication's h (from ``successes`` of ``n`` against ``reference_successes`` of
    ``reference_n``) is tested against h33 in the original's direction:
    ``z = (s * h_rep - |h33|) / sqrt(1/n + 1/n_ref)`` with ``s`` the original's sign,
    ``p = Phi(z)``. ``alpha`` is the replication test's level; the original's is fixed at
    0.05, as in the paper. Raises ValueError when the original reported no difference
    (no direction to test) or a count is impossible."""
    check_counts(successes, n)
    check_counts(reference_successes, reference_n)
    if original_n < 1 or original_reference_n < 1:
        raise ValueError("the original sample sizes must be positive")
    for rate in (original_rate, original_reference_rate):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"an original rate must be a proportion, got {rate!r}")
    original_h = cohens_h(original_rate, original_reference_rate)
    if original_h == 0.0:
        raise ValueError("the original reported no difference, so there is no effect to test")
    sign = math.copysign(1.0, original_h)
    # statsmodels' own power function, solved with a tight tolerance: solve_power's
    # expanding bracket stops where the power is 1/3 to about 1e-5, which leaves h33 off
    # by some 2e-6 (0.1528545 instead of 0.1528569 for 200 per group).
    power = NormalIndPower()
    ratio = original_reference_n / original_n

    def gap(h: float) -> float:
        achieved = power.power(
            effect_size=h, nobs1=original_n, alpha=0.05, ratio=ratio, alternative="two-sided"
        )
        return float(achieved) - TELESCOPE_POWER

    h33 = float(optimize.brentq(gap, 1e-9, 10.0, xtol=1e-12))
    # Back from the arcsine scale: the condition rate at distance h33 from the reference.
    angle = math.asin(math.sqrt(original_reference_rate)) + sign * h33 / 2.0
    angle = min(max(angle, 0.0), math.pi / 2.0)
    d33_difference = math.sin(angle) ** 2 - original_reference_rate
    replication_h = cohens_h(successes / n, reference_successes / reference_n)
    se = math.sqrt(1.0 / n + 1.0 / reference_n)
    z = (sign * replication_h - h33) / se
    return SmallTelescope(
        original_h=original_h,
        h33=sign * h33,
        d33_difference=d33_difference,
        replication_h=replication_h,
        se=se,
        z=z,
        p_value=float(sps.norm.cdf(z)),
        alpha=alpha,
    )


@dataclass(frozen=True)
class Equivalence:
    """Result of :func:`equivalence_test`: the difference (condition minus reference), the
    test of ``difference > -bound`` (``z_lower``, ``p_lower``) and of ``difference < bound``
    (``z_upper``, ``p_upper``); the TOST p-value is the larger of the two."""

    bound: float
    difference: float
    z_lower: float
    p_lower: float
    z_upper: float
    p_upper: float
    alpha: float

    @property
    def p_value(self) -> float:
        return max(self.p_lower, self.p_upper)

    @property
    def equivalent(self) -> bool:
        return self.p_value < self.alpha


def equivalence_test(
    *,
    successes: int,
    n: int,
    reference_successes: int,
    reference_n: int,
    bound: float,
    alpha: float = 0.05,
) -> Equivalence:
    """TOST of ``p - p_reference`` against ``(-bound, bound)``: H0 ``diff <= -bound`` or
    ``diff >= bound``, H1 ``-bound < diff < bound``. Each one-sided test is the Wald z
    ``(diff - margin) / sqrt(p(1-p)/n + p_ref(1-p_ref)/n_ref)`` (statsmodels
    ``tost_proportions_2indep`` with ``method="wald"``). With both shares at 0 or 1 the
    variance is zero and the p-values are NaN (nothing to say)."""
    check_counts(successes, n)
    check_counts(reference_successes, reference_n)
    if not 0.0 < bound < 1.0:
        raise ValueError(f"the equivalence bound must be between 0 and 1, got {bound!r}")
    p, p_ref = successes / n, reference_successes / reference_n
    if p * (1.0 - p) + p_ref * (1.0 - p_ref) == 0.0:
        nan = float("nan")
        return Equivalence(bound, p - p_ref, nan, nan, nan, nan, alpha)
    result = tost_proportions_2indep(
        successes,
        n,
        reference_successes,
        reference_n,
        -bound,
        bound,
        method="wald",
        compare="diff",
    )
    lower, upper = result.results_larger, result.results_smaller
    return Equivalence(
        bound=bound,
        difference=p - p_ref,
        z_lower=float(lower.statistic),
        p_lower=float(lower.pvalue),
        z_upper=float(upper.statistic),
        p_upper=float(upper.pvalue),
        alpha=alpha,
    )
