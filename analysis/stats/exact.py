"""Exact tests: Fisher's exact test on a 2 x 2 table with a one- or two-sided alternative
and the conditional odds ratio with its exact interval (R ``fisher.test``), and the exact
binomial test of one share against a stated value (R ``binom.test``), e.g. detection
accuracy against the 50% of guessing. scipy computes both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scipy import stats as sps
from scipy.stats import contingency

from analysis.stats.inputs import check_counts, z_critical

Alternative = Literal["two-sided", "less", "greater"]
ALTERNATIVES: tuple[Alternative, ...] = ("two-sided", "less", "greater")


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")


@dataclass(frozen=True)
class FisherTest:
    """Result of :func:`fisher_exact_test`: the conditional maximum-likelihood odds ratio,
    its exact interval (one-sided when the alternative is), the p-value."""

    odds_ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    alternative: Alternative
    confidence: float


def fisher_exact_test(
    x1: int,
    n1: int,
    x2: int,
    n2: int,
    alternative: Alternative = "two-sided",
    confidence: float = 0.95,
) -> FisherTest:
    """Fisher's exact test on ``[[x1, n1-x1], [x2, n2-x2]]``, as R ``fisher.test(table,
    alternative=alternative, conf.level=confidence)``.

    Test: conditional on both margins (hypergeometric). "greater" tests whether the odds
    of "yes" are higher in group 1 than in group 2 (odds ratio > 1), "less" lower; the
    two-sided p sums the tables no more probable than the one observed.
    Estimate: the conditional maximum-likelihood odds ratio (not the sample odds ratio
    ``ad/bc``), with the exact interval from inverting the noncentral hypergeometric
    distribution; one-sided alternatives give a one-sided interval ([0, u] or [l, inf]),
    as R. Computed by scipy (``fisher_exact`` and ``contingency.odds_ratio(kind=
    "conditional")``). No large-sample assumption."""
    check_counts(x1, n1)
    check_counts(x2, n2)
    _check_alternative(alternative)
    z_critical(confidence)  # validates confidence
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    test = sps.fisher_exact(table, alternative=alternative)
    ratio = contingency.odds_ratio(table, kind="conditional")
    interval = ratio.confidence_interval(confidence_level=confidence, alternative=alternative)
    return FisherTest(
        odds_ratio=float(ratio.statistic),
        ci_low=float(interval.low),
        ci_high=float(interval.high),
        p_value=float(test.pvalue),
        alternative=alternative,
        confidence=confidence,
    )


@dataclass(frozen=True)
class BinomialTest:
    """Result of :func:`binomial_test`: the share, the stated value it is tested against,
    the exact p-value and the Clopper-Pearson interval (one-sided when the alternative
    is)."""

    successes: int
    n: int
    share: float
    null_value: float
    p_value: float
    ci_low: float
    ci_high: float
    alternative: Alternative
    confidence: float


def binomial_test(
    successes: int,
    n: int,
    null_value: float = 0.5,
    alternative: Alternative = "two-sided",
    confidence: float = 0.95,
) -> BinomialTest:
    """Exact binomial test of H0: the probability of success is ``null_value``, as R
    ``binom.test(successes, n, p=null_value, alternative=alternative)``.

    Test: binomial tail probabilities; two-sided, the sum of the probabilities of every
    count no more probable than the observed one (with R's relative tolerance of 1e-7).
    Interval: Clopper-Pearson, as R's. Assumptions: ``n`` independent trials with one
    success probability; with several trials per participant (e.g. each participant
    judging several articles) they are not quite independent, and the test is then too
    liberal. Computed by scipy's ``binomtest``."""
    check_counts(successes, n)
    _check_alternative(alternative)
    z_critical(confidence)  # validates confidence
    if not 0.0 <= null_value <= 1.0:
        raise ValueError(f"the stated value must be between 0 and 1, got {null_value!r}")
    result = sps.binomtest(successes, n, p=null_value, alternative=alternative)
    interval = result.proportion_ci(confidence_level=confidence, method="exact")
    return BinomialTest(
        successes=successes,
        n=n,
        share=successes / n,
        null_value=null_value,
        p_value=float(result.pvalue),
        ci_low=float(interval.low),
        ci_high=float(interval.high),
        alternative=alternative,
        confidence=confidence,
    )
