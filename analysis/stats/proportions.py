"""Proportions: one rate with its Wilson and Clopper-Pearson intervals, two rates compared
(Newcombe interval, z, chi-square, Fisher, Cohen's h, odds ratio), and the per-condition
tables built from them (:func:`proportions_by_condition`, :func:`compare_to_reference`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from analysis.cells import cell_int
from analysis.stats.inputs import binary_values, check_counts, z_critical

# ---------------------------------------------------------------------------------------
# One proportion


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``.

    Test/method: inverts the score test (Wilson 1927; Newcombe 1998a, method 3), without
    continuity correction; equals R ``prop.test(x, n, correct=FALSE)$conf.int`` and
    ``binom::binom.confint(x, n, methods="wilson")``.
    Assumptions: ``n`` independent Bernoulli trials with a common success probability.
    Unlike the Wald interval it stays inside [0, 1] and keeps near-nominal coverage for
    small ``n`` and proportions near 0 or 1.

    Computed by statsmodels' ``proportion_confint(method="wilson")``, which clips to
    [0, 1] (only rounding noise at p = 0 or 1, where the exact limit is 0 or 1).
    Raises ValueError when ``n <= 0`` or ``successes`` is not in ``[0, n]`` (statsmodels
    would return NaN, or an interval for an impossible count, without a word).
    """
    check_counts(successes, n)
    z_critical(confidence)  # validates confidence
    low, high = proportion_confint(successes, n, alpha=1.0 - confidence, method="wilson")
    return float(low), float(high)


def wilson_interval_arrays(
    successes: np.ndarray, n: np.ndarray | int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`wilson_interval` for many counts at once (same method, same
    assumptions), used by simulations. ``n`` must be positive everywhere."""
    x = np.asarray(successes, dtype=float)
    size = np.broadcast_to(np.asarray(n, dtype=float), x.shape)
    if np.any(size <= 0) or np.any(x < 0) or np.any(x > size):
        raise ValueError("counts must satisfy 0 <= successes <= n and n > 0")
    z_critical(confidence)  # validates confidence
    low, high = proportion_confint(x, size, alpha=1.0 - confidence, method="wilson")
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def clopper_pearson_interval(
    successes: int, n: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Clopper-Pearson "exact" interval for a binomial proportion ``successes / n``.

    Method: inverts two one-sided binomial tests, which gives beta quantiles
    ``Beta(a/2; x, n-x+1)`` and ``Beta(1-a/2; x+1, n-x)`` (the lower limit is 0 when
    ``x = 0`` and the upper 1 when ``x = n``); equals R ``binom.test(x, n)$conf.int``.
    Assumptions: ``n`` independent Bernoulli trials. Coverage is at least nominal, so the
    interval is conservative (wider than Wilson's); report it where a guaranteed coverage
    matters more than length. Computed by statsmodels'
    ``proportion_confint(method="beta")``; raises ValueError for counts as
    :func:`wilson_interval`.
    """
    check_counts(successes, n)
    z_critical(confidence)  # validates confidence
    low, high = proportion_confint(successes, n, alpha=1.0 - confidence, method="beta")
    return float(low), float(high)


# ---------------------------------------------------------------------------------------
# Two proportions


@dataclass(frozen=True)
class TwoProportionTest:
    """Result of :func:`two_proportion_ztest`."""

    p1: float
    p2: float
    difference: float  # p1 - p2
    ci_low: float
    ci_high: float
    confidence: float
    z: float
    p_value: float
    ci_method: str = "Newcombe hybrid score (method 10)"


@dataclass(frozen=True)
class ChiSquareTest:
    """Result of :func:`chi_square_test` on a 2x2 table (1 degree of freedom)."""

    statistic: float
    p_value: float
    df: int
    correction: bool


def newcombe_interval(
    x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Confidence interval for ``p1 - p2`` from two independent samples.

    Method: Newcombe's hybrid score interval (Newcombe 1998b, method 10), which combines
    the two Wilson intervals: ``d - sqrt((p1-l1)^2 + (u2-p2)^2)`` to
    ``d + sqrt((u1-p1)^2 + (p2-l2)^2)``. Assumptions: independent binomial samples.
    Good coverage without iteration, and it never leaves [-1, 1].
    """
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    p1, p2 = x1 / n1, x2 / n2
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def two_proportion_ztest(
    x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95
) -> TwoProportionTest:
    """Pooled two-proportion z test of H0: p1 = p2, two-sided, plus a CI for p1 - p2.

    Test: ``z = (p1 - p2) / sqrt(p (1-p) (1/n1 + 1/n2))`` with the pooled
    ``p = (x1 + x2) / (n1 + n2)``; p-value from the standard normal. ``z**2`` equals the
    uncorrected Pearson chi-square (R ``prop.test(..., correct=FALSE)``).
    Interval: Newcombe's hybrid score interval (method 10), not Wald.
    Assumptions: independent binomial samples, large enough that the normal approximation
    holds (expected counts of roughly 5 or more per cell; otherwise see Fisher's exact test).
    When every answer in both groups is the same (pooled p of 0 or 1) the test is undefined
    and ``z`` and ``p_value`` are NaN.
    The test is statsmodels' ``proportions_ztest`` (pooled variance, two-sided); the
    undefined case is answered here, where statsmodels would divide 0 by 0 with a warning.
    """
    check_counts(x1, n1)
    check_counts(x2, n2)
    p1, p2 = x1 / n1, x2 / n2
    if 0 < x1 + x2 < n1 + n2:
        statistic, p = proportions_ztest([x1, x2], [n1, n2])
        z, p_value = float(statistic), float(p)
    else:
        z = p_value = math.nan
    low, high = newcombe_interval(x1, n1, x2, n2, confidence)
    return TwoProportionTest(
        p1=p1,
        p2=p2,
        difference=p1 - p2,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        z=z,
        p_value=p_value,
    )


def chi_square_test(x1: int, n1: int, x2: int, n2: int, correction: bool = True) -> ChiSquareTest:
    """Pearson chi-square test of independence on the 2x2 table
    ``[[x1, n1-x1], [x2, n2-x2]]`` (1 df).

    With ``correction=True`` Yates' continuity correction is applied as R's ``prop.test``
    and ``chisq.test`` apply it: each |observed - expected| is reduced by
    ``min(0.5, |observed - expected|)``, so the correction never flips the sign.
    Assumptions: independent observations, expected counts of roughly 5 or more per cell.
    A table with an empty row or column has no defined statistic: NaN is returned (scipy's
    ``chi2_contingency``, which computes the rest, raises ValueError there).
    """
    check_counts(x1, n1)
    check_counts(x2, n2)
    if 0 in (x1 + x2, n1 + n2 - x1 - x2):  # an empty column (rows are non-empty: n > 0)
        return ChiSquareTest(statistic=math.nan, p_value=math.nan, df=1, correction=correction)
    result = sps.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=correction)
    return ChiSquareTest(
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        df=1,
        correction=correction,
    )


def fisher_exact_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of Fisher's exact test on ``[[x1, n1-x1], [x2, n2-x2]]``.

    Test: conditional on both margins (hypergeometric), two-sided by summing tables no
    more probable than the observed one, as R's ``fisher.test``. No large-sample
    assumption; use it when expected counts are small.
    """
    check_counts(x1, n1)
    check_counts(x2, n2)
    result = sps.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative="two-sided")
    return float(result.pvalue)


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h effect size for two proportions, ``2 asin(sqrt(p1)) - 2 asin(sqrt(p2))``
    (Cohen 1988, ch. 6): about 0.2 small, 0.5 medium, 0.8 large."""
    return 2.0 * math.asin(math.sqrt(p1)) - 2.0 * math.asin(math.sqrt(p2))


@dataclass(frozen=True)
class OddsRatio:
    """Result of :func:`odds_ratio`: the sample odds ratio of group 1 against group 2, its
    log and the Woolf standard error of the log, and the interval on the ratio scale."""

    odds_ratio: float
    log_odds_ratio: float
    se_log: float
    ci_low: float
    ci_high: float
    confidence: float


def odds_ratio(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> OddsRatio:
    """Odds ratio ``(x1 / (n1-x1)) / (x2 / (n2-x2))`` with Woolf's logit interval.

    Method: ``log OR +- z * sqrt(1/a + 1/b + 1/c + 1/d)`` over the four cells of
    ``[[x1, n1-x1], [x2, n2-x2]]``, exponentiated (Woolf 1955; Agresti, *Categorical Data
    Analysis*, 3rd ed., sec. 3.1.1). Assumptions: independent binomial samples, no empty
    cell. With an empty cell the sample odds ratio is 0 or infinite and the Woolf interval
    undefined: every field is then NaN (a Haldane 0.5 correction would invent data).
    """
    check_counts(x1, n1)
    check_counts(x2, n2)
    z = z_critical(confidence)
    cells = [x1, n1 - x1, x2, n2 - x2]
    if min(cells) == 0:
        nan = math.nan
        return OddsRatio(nan, nan, nan, nan, nan, confidence)
    a, b, c, d = (float(cell) for cell in cells)
    log_or = math.log(a * d / (b * c))
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    return OddsRatio(
        odds_ratio=math.exp(log_or),
        log_odds_ratio=log_or,
        se_log=se,
        ci_low=math.exp(log_or - z * se),
        ci_high=math.exp(log_or + z * se),
        confidence=confidence,
    )


# ---------------------------------------------------------------------------------------
# Tables: one row per condition, or per condition against the reference


PROPORTION_COLUMNS = [
    "condition",
    "n",
    "successes",
    "share",
    "ci_low",
    "ci_high",
    "exact_low",
    "exact_high",
]


def proportions_by_condition(df: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Share of "yes" answers per condition, with Wilson intervals.

    Input columns: ``condition`` (label), ``value_numeric`` (1 = yes, 0 = no; rows with a
    missing value are ignored; any other value is a ValueError).
    Output: one row per condition, sorted by name, with ``n``, ``successes``, ``share``,
    ``ci_low``, ``ci_high`` (Wilson score interval, see :func:`wilson_interval`) and
    ``exact_low``, ``exact_high`` (Clopper-Pearson, see :func:`clopper_pearson_interval`).
    Assumption: the rows are independent trials. With several ratings per participant they
    are not quite (ratings cluster within people), so the intervals are then somewhat too
    narrow; a participant-clustered model is the stricter analysis.
    """
    data = binary_values(df)
    if data.empty:
        return pd.DataFrame(columns=PROPORTION_COLUMNS)
    grouped = data.groupby("condition", sort=True)["value_numeric"].agg(["size", "sum"])
    rows = []
    for condition, n, successes in zip(grouped.index, grouped["size"], grouped["sum"], strict=True):
        low, high = wilson_interval(int(successes), int(n), confidence)
        exact_low, exact_high = clopper_pearson_interval(int(successes), int(n), confidence)
        rows.append(
            {
                "condition": condition,
                "n": int(n),
                "successes": int(successes),
                "share": successes / n,
                "ci_low": low,
                "ci_high": high,
                "exact_low": exact_low,
                "exact_high": exact_high,
            }
        )
    return pd.DataFrame(rows, columns=PROPORTION_COLUMNS)


COMPARISON_COLUMNS = [
    "condition",
    "reference",
    "n",
    "share",
    "reference_n",
    "reference_share",
    "difference",
    "ci_low",
    "ci_high",
    "z",
    "p_value",
    "p_holm",
    "chi2",
    "chi2_p",
    "chi2_yates",
    "chi2_yates_p",
    "fisher_p",
    "cohens_h",
    "odds_ratio",
    "or_ci_low",
    "or_ci_high",
]


def compare_to_reference(
    df: pd.DataFrame, reference: str, confidence: float = 0.95
) -> pd.DataFrame:
    """Each condition's "yes" share against the reference condition's.

    Input columns: as :func:`proportions_by_condition` (``condition``, ``value_numeric``
    in {0, 1}). ``reference`` names the control condition (usually the real articles).
    Output: one row per non-reference condition with ``difference = share - reference
    share`` and its Newcombe (method 10) interval, the pooled two-proportion ``z`` and its
    two-sided ``p_value``, ``p_holm`` (Holm-adjusted over the comparisons in this table),
    Pearson chi-square without (``chi2``) and with Yates' correction (``chi2_yates``),
    Fisher's exact ``fisher_p``, Cohen's ``h``, and the odds ratio with Woolf's interval
    (``odds_ratio``, ``or_ci_low``, ``or_ci_high``; NaN with an empty cell).
    Assumptions: independent binary ratings (see :func:`proportions_by_condition` on
    clustering); z and chi-square are large-sample tests, Fisher's is exact.
    Raises ValueError when the reference has no data.
    """
    table = proportions_by_condition(df, confidence)
    if reference not in set(table["condition"]):
        raise ValueError(f'The reference condition "{reference}" has no answers to compare with.')
    ref = table.loc[table["condition"] == reference].iloc[0]
    x2, n2 = cell_int(ref["successes"]), cell_int(ref["n"])
    rows = []
    for row in table.loc[table["condition"] != reference].itertuples(index=False):
        x1, n1 = cell_int(row.successes), cell_int(row.n)
        test = two_proportion_ztest(x1, n1, x2, n2, confidence)
        plain = chi_square_test(x1, n1, x2, n2, correction=False)
        yates = chi_square_test(x1, n1, x2, n2, correction=True)
        ratio = odds_ratio(x1, n1, x2, n2, confidence)
        rows.append(
            {
                "condition": row.condition,
                "reference": reference,
                "n": n1,
                "share": test.p1,
                "reference_n": n2,
                "reference_share": test.p2,
                "difference": test.difference,
                "ci_low": test.ci_low,
                "ci_high": test.ci_high,
                "z": test.z,
                "p_value": test.p_value,
                "p_holm": math.nan,
                "chi2": plain.statistic,
                "chi2_p": plain.p_value,
                "chi2_yates": yates.statistic,
                "chi2_yates_p": yates.p_value,
                "fisher_p": fisher_exact_p(x1, n1, x2, n2),
                "cohens_h": cohens_h(test.p1, test.p2),
                "odds_ratio": ratio.odds_ratio,
                "or_ci_low": ratio.ci_low,
                "or_ci_high": ratio.ci_high,
            }
        )
    result = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    result["p_holm"] = holm_adjust(result["p_value"].to_numpy(dtype=float))
    return result


def holm_adjust(p_values: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, as R ``p.adjust(p, "holm")``; controls the
    family-wise error rate under any dependence. NaN p-values stay NaN and do not count
    towards the number of tests."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = ~np.isnan(p)
    if finite.any():
        adjusted[finite] = multipletests(p[finite], method="holm")[1]
    return adjusted
