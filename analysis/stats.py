"""Statistics for credibility studies: pure functions over numbers and DataFrames.

Nothing here imports Django or touches I/O, so every function can be checked against
published reference values (see tests/analysis/test_stats.py) and reused from a notebook.

Conventions:
- Proportions are "successes out of n" with integer counts; a binary answer is 1 (yes,
  e.g. "credible") or 0 (no).
- Differences are always ``p1 - p2``; in :func:`compare_to_reference` that is
  ``condition - reference``, so a negative difference means "rated credible less often than
  the reference (real) articles".
- Intervals are two-sided at ``confidence`` (default 95%).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from analysis.cells import cell_int
from surveys import scoring
from surveys.planning import power_two_proportions as power_two_proportions
from surveys.planning import sample_size_two_proportions as sample_size_two_proportions


def _z_critical(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return float(sps.norm.ppf(1.0 - (1.0 - confidence) / 2.0))


def _check_counts(successes: int, n: int) -> None:
    if n <= 0:
        # An interval for a proportion of nothing is meaningless; say so instead of
        # returning a silent (0, 1) or NaN that would end up in a report.
        raise ValueError(f"n must be positive to estimate a proportion, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")


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

    Raises ValueError when ``n <= 0`` or ``successes`` is not in ``[0, n]``.
    """
    _check_counts(successes, n)
    z = _z_critical(confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # Clamp only rounding noise: at p = 0 or 1 the exact limit is 0 or 1.
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def wilson_interval_arrays(
    successes: np.ndarray, n: np.ndarray | int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`wilson_interval` for many counts at once (same method, same
    assumptions), used by simulations. ``n`` must be positive everywhere."""
    x = np.asarray(successes, dtype=float)
    size = np.broadcast_to(np.asarray(n, dtype=float), x.shape)
    if np.any(size <= 0) or np.any(x < 0) or np.any(x > size):
        raise ValueError("counts must satisfy 0 <= successes <= n and n > 0")
    z = _z_critical(confidence)
    p = x / size
    denominator = 1.0 + z * z / size
    centre = (p + z * z / (2 * size)) / denominator
    half_width = z * np.sqrt(p * (1 - p) / size + z * z / (4 * size * size)) / denominator
    return np.maximum(0.0, centre - half_width), np.minimum(1.0, centre + half_width)


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
    """
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0.0:
        z = p_value = math.nan
    else:
        z = (p1 - p2) / se
        p_value = float(2.0 * sps.norm.sf(abs(z)))
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
    A table with an empty row or column has no defined statistic: NaN is returned.
    """
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    observed = np.array([[x1, n1 - x1], [x2, n2 - x2]], dtype=float)
    total = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    if np.any(expected == 0):
        return ChiSquareTest(statistic=math.nan, p_value=math.nan, df=1, correction=correction)
    deviation = np.abs(observed - expected)
    if correction:
        deviation = deviation - np.minimum(0.5, deviation)
    statistic = float(np.sum(deviation**2 / expected))
    return ChiSquareTest(
        statistic=statistic,
        p_value=float(sps.chi2.sf(statistic, df=1)),
        df=1,
        correction=correction,
    )


def fisher_exact_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of Fisher's exact test on ``[[x1, n1-x1], [x2, n2-x2]]``.

    Test: conditional on both margins (hypergeometric), two-sided by summing tables no
    more probable than the observed one, as R's ``fisher.test``. No large-sample
    assumption; use it when expected counts are small.
    """
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    result = sps.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative="two-sided")
    return float(result.pvalue)


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h effect size for two proportions, ``2 asin(sqrt(p1)) - 2 asin(sqrt(p2))``
    (Cohen 1988, ch. 6): about 0.2 small, 0.5 medium, 0.8 large."""
    return 2.0 * math.asin(math.sqrt(p1)) - 2.0 * math.asin(math.sqrt(p2))


# ---------------------------------------------------------------------------------------
# DataFrames


def _binary_values(df: pd.DataFrame) -> pd.DataFrame:
    missing = {"condition", "value_numeric"} - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    data = df.loc[df["value_numeric"].notna(), ["condition", "value_numeric"]]
    bad = ~data["value_numeric"].isin([0.0, 1.0])
    if bad.any():
        examples = sorted(set(data.loc[bad, "value_numeric"].tolist()))[:5]
        raise ValueError(f"value_numeric must be 0 or 1 for a binary question; got {examples}")
    return data


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
    data = _binary_values(df)
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


LIKERT_COLUMNS = ["condition", "question_key", "n", "mean", "sd", "ci_low", "ci_high"]


def likert_means(df: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean rating per condition and question with a t-based confidence interval.

    Input columns: ``condition``, ``question_key``, ``value_numeric`` (the scale point;
    missing values are ignored).
    Output: one row per condition x question, sorted, with ``n``, ``mean``, ``sd`` (n-1
    denominator) and ``mean +- t(n-1) * sd / sqrt(n)`` as ``ci_low``/``ci_high``, the
    one-sample interval of R's ``t.test``. With one rating the sd and interval are NaN.
    Assumptions: independent ratings; the mean is close to normal (fine for a bounded
    scale with a few dozen ratings); Likert points are treated as interval data.
    """
    missing = {"condition", "question_key", "value_numeric"} - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    data = df.loc[df["value_numeric"].notna(), ["condition", "question_key", "value_numeric"]]
    if data.empty:
        return pd.DataFrame(columns=LIKERT_COLUMNS)
    grouped = _group_means(data, ["condition", "question_key"], "value_numeric", confidence)
    return grouped[LIKERT_COLUMNS]


def _group_means(data: pd.DataFrame, by: list[str], value: str, confidence: float) -> pd.DataFrame:
    """n, mean, sd and the one-sample t interval of ``value`` per group of ``by``
    (NaN interval for a group of one)."""
    grouped = data.groupby(by, sort=True)[value].agg(n="size", mean="mean", sd="std").reset_index()
    n = grouped["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = sps.t.ppf(1.0 - (1.0 - confidence) / 2.0, np.maximum(n - 1, 1))
        half = np.where(n > 1, t * grouped["sd"].to_numpy(dtype=float) / np.sqrt(n), np.nan)
    grouped["ci_low"] = grouped["mean"] - half
    grouped["ci_high"] = grouped["mean"] + half
    grouped["n"] = grouped["n"].astype(int)
    return grouped


# ---------------------------------------------------------------------------------------
# Exact interval, odds ratio


def clopper_pearson_interval(
    successes: int, n: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Clopper-Pearson "exact" interval for a binomial proportion ``successes / n``.

    Method: inverts two one-sided binomial tests, which gives beta quantiles
    ``Beta(a/2; x, n-x+1)`` and ``Beta(1-a/2; x+1, n-x)`` (the lower limit is 0 when
    ``x = 0`` and the upper 1 when ``x = n``); equals R ``binom.test(x, n)$conf.int``.
    Assumptions: ``n`` independent Bernoulli trials. Coverage is at least nominal, so the
    interval is conservative (wider than Wilson's); report it where a guaranteed coverage
    matters more than length.
    """
    _check_counts(successes, n)
    alpha = 1.0 - confidence
    _z_critical(confidence)  # validates confidence
    low = 0.0 if successes == 0 else float(sps.beta.ppf(alpha / 2, successes, n - successes + 1))
    high = (
        1.0 if successes == n else float(sps.beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    )
    return low, high


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
    _check_counts(x1, n1)
    _check_counts(x2, n2)
    z = _z_critical(confidence)
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
# Logistic regression with participant-clustered errors

LOGISTIC_COLUMNS = [
    "term",
    "log_odds",
    "se",
    "z",
    "p_value",
    "ci_low",
    "ci_high",
    "odds_ratio",
    "or_ci_low",
    "or_ci_high",
]
INTERCEPT = "(intercept)"


@dataclass(frozen=True)
class LogisticFit:
    """Result of :func:`logistic_regression`. ``table`` has one row per term
    (``LOGISTIC_COLUMNS``): first the intercept (the reference condition's log odds), then
    each other condition's log odds ratio against the reference. ``cov_type`` is
    "cluster" (participant-clustered sandwich) or "nonrobust" (model-based)."""

    table: pd.DataFrame
    reference: str
    n_obs: int
    n_clusters: int
    cov_type: str
    confidence: float


def logistic_regression(
    df: pd.DataFrame,
    reference: str,
    confidence: float = 0.95,
    cluster: bool = True,
) -> LogisticFit:
    """Logistic regression of a yes/no answer on condition, with participant-clustered
    standard errors.

    Input columns: ``condition``, ``value_numeric`` (0/1; missing values are dropped) and,
    when ``cluster``, ``participant_id``. Model: ``logit P(yes) = b0 + sum_c b_c [condition
    = c]`` with the ``reference`` condition as baseline, fitted by maximum likelihood
    (statsmodels GLM, Binomial family, logit link). ``b_c`` is the log odds ratio of
    condition ``c`` against the reference; with one binary factor the model is saturated,
    so ``b_c`` equals the log of the 2x2 table's sample odds ratio.
    Errors: with ``cluster`` the cluster-robust sandwich over participants (statsmodels
    ``cov_type="cluster"``, with its default small-sample factor G/(G-1)), which allows a
    participant's several ratings to be correlated; otherwise the model-based (Fisher
    information) errors, which assume every rating independent. Wald z, two-sided p and
    ``estimate +- z * se`` intervals, also on the odds-ratio scale.
    Assumptions: ratings independent across participants; enough clusters (a few dozen or
    more) for the sandwich to be reliable. Raises ValueError when the reference has no
    data, when there is only one condition, or when a condition answered all yes or all
    no (the maximum-likelihood estimate is then infinite: see :func:`fisher_exact_p`).
    """
    import statsmodels.api as sm  # heavy import, needed only here

    needed = {"condition", "value_numeric"} | ({"participant_id"} if cluster else set())
    missing = needed - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    z_crit = _z_critical(confidence)
    data = _binary_values(df)
    if cluster:
        data = data.join(df["participant_id"])
    conditions = sorted(set(data["condition"]))
    if reference not in conditions:
        raise ValueError(f'The reference condition "{reference}" has no answers to compare with.')
    if len(conditions) < 2:
        raise ValueError("A regression on condition needs at least two conditions with answers.")
    shares = data.groupby("condition")["value_numeric"].mean()
    degenerate = sorted(str(c) for c, share in shares.items() if share in (0.0, 1.0))
    if degenerate:
        raise ValueError(
            "Every answer is the same in "
            + ", ".join(degenerate)
            + ": the odds ratio is infinite and the regression undefined."
        )
    others = [c for c in conditions if c != reference]
    design = np.column_stack(
        [np.ones(len(data))] + [(data["condition"] == c).to_numpy(dtype=float) for c in others]
    )
    model = sm.GLM(
        data["value_numeric"].to_numpy(dtype=float), design, family=sm.families.Binomial()
    )
    if cluster:
        groups = pd.factorize(data["participant_id"])[0]
        result = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
        n_clusters = int(groups.max()) + 1
    else:
        result = model.fit()
        n_clusters = len(data)
    params = np.asarray(result.params, dtype=float)
    se = np.asarray(result.bse, dtype=float)
    z = params / se
    table = pd.DataFrame(
        {
            "term": [INTERCEPT, *others],
            "log_odds": params,
            "se": se,
            "z": z,
            "p_value": 2.0 * sps.norm.sf(np.abs(z)),
            "ci_low": params - z_crit * se,
            "ci_high": params + z_crit * se,
        }
    )
    table["odds_ratio"] = np.exp(table["log_odds"])
    table["or_ci_low"] = np.exp(table["ci_low"])
    table["or_ci_high"] = np.exp(table["ci_high"])
    return LogisticFit(
        table=table[LOGISTIC_COLUMNS],
        reference=reference,
        n_obs=len(data),
        n_clusters=n_clusters,
        cov_type="cluster" if cluster else "nonrobust",
        confidence=confidence,
    )


# ---------------------------------------------------------------------------------------
# Power and sample size for two proportions


# power_two_proportions and sample_size_two_proportions live in surveys.planning (a pure
# module, free of Django, numpy and scipy), so that the study admin's planning box, which
# may not import analysis, uses the very same formulas; they are re-exported here.


# ---------------------------------------------------------------------------------------
# Scales: the Kreps et al. credibility index and its reliability

CREDIBILITY_ITEMS = ("believable", "accurate", "clear")
INDEX_COLUMNS = [
    "participant_id",
    "article_id",
    "condition",
    *CREDIBILITY_ITEMS,
    "item_sum",
    "index",
]


def credibility_index(df: pd.DataFrame, items: tuple[str, ...] = CREDIBILITY_ITEMS) -> pd.DataFrame:
    """The credibility index of Kreps, McCain & Brundage (2020) per participant-article.

    Input columns: ``participant_id``, ``article_id``, ``condition``, ``question_key``,
    ``value_numeric`` (long, one row per answer). The three items (believable, accurate,
    clear) are each rated 1-4, so their sum runs from 3 to 12. The sum is rescaled
    linearly to 1-10::

        index = (sum - 3) / 9 * 9 + 1        (= sum - 2; 3 -> 1, 12 -> 10)

    Only participant-articles with all three items answered are kept (a partial sum would
    not be on the same scale). Output: ``INDEX_COLUMNS``, one row per participant-article.
    """
    missing = {"participant_id", "article_id", "condition", "question_key", "value_numeric"} - set(
        df.columns
    )
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    data = df.loc[df["question_key"].isin(items) & df["value_numeric"].notna()]
    columns = ["participant_id", "article_id", "condition", *items, "item_sum", "index"]
    if data.empty:
        return pd.DataFrame(columns=columns)
    wide = data.pivot_table(
        index=["participant_id", "article_id", "condition"],
        columns="question_key",
        values="value_numeric",
        aggfunc="first",
    )
    for item in items:
        if item not in wide.columns:
            return pd.DataFrame(columns=columns)
    wide = wide[list(items)].dropna().reset_index()
    wide.columns.name = None
    low, high = float(len(items)), 4.0 * len(items)
    wide["item_sum"] = wide[list(items)].sum(axis=1)
    wide["index"] = (wide["item_sum"] - low) / (high - low) * 9.0 + 1.0
    return wide[columns].reset_index(drop=True)


MEAN_COLUMNS = ["condition", "n", "mean", "sd", "ci_low", "ci_high"]


def means_by_condition(
    df: pd.DataFrame, value: str = "index", confidence: float = 0.95
) -> pd.DataFrame:
    """Mean of column ``value`` per condition with the one-sample t interval
    ``mean +- t(n-1) sd / sqrt(n)`` (R ``t.test(x)$conf.int``). Input columns:
    ``condition`` and ``value``. With one observation sd and interval are NaN.
    Assumptions: independent observations, mean close to normal."""
    _z_critical(confidence)
    data = df.loc[df[value].notna(), ["condition", value]]
    if data.empty:
        return pd.DataFrame(columns=MEAN_COLUMNS)
    return _group_means(data, ["condition"], value, confidence)[MEAN_COLUMNS]


@dataclass(frozen=True)
class TTest:
    """Result of :func:`t_test`: ``difference = mean_x - mean_y`` with its interval."""

    mean_x: float
    mean_y: float
    difference: float
    t: float
    df: float
    p_value: float
    ci_low: float
    ci_high: float
    equal_var: bool
    confidence: float

    @property
    def method(self) -> str:
        return "Student two-sample t test" if self.equal_var else "Welch two-sample t test"


def t_test(
    x: np.ndarray | pd.Series | list[float],
    y: np.ndarray | pd.Series | list[float],
    equal_var: bool = False,
    confidence: float = 0.95,
) -> TTest:
    """Two-sample t test of H0: mean(x) = mean(y), two-sided, as R ``t.test(x, y)``.

    Welch (default): ``t = (mx - my) / sqrt(vx/nx + vy/ny)`` with Welch-Satterthwaite
    degrees of freedom; no equal-variance assumption. ``equal_var=True``: Student's test
    with the pooled variance and ``nx + ny - 2`` df (R ``var.equal = TRUE``).
    Assumptions: independent samples, means close to normal. Each sample needs at least
    two values (ValueError otherwise); NaN values are dropped. When both samples are
    constant the test is undefined and t, p and the interval are NaN.
    """
    _z_critical(confidence)
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        raise ValueError("A two-sample t test needs at least two values in each sample.")
    nx, ny = len(a), len(b)
    vx, vy = float(a.var(ddof=1)), float(b.var(ddof=1))
    if equal_var:
        df = float(nx + ny - 2)
        pooled = ((nx - 1) * vx + (ny - 1) * vy) / df
        se = math.sqrt(pooled * (1 / nx + 1 / ny))
    else:
        se = math.sqrt(vx / nx + vy / ny)
        # Both samples constant: the Welch-Satterthwaite df is 0/0, the test undefined.
        df = (
            (vx / nx + vy / ny) ** 2 / ((vx / nx) ** 2 / (nx - 1) + (vy / ny) ** 2 / (ny - 1))
            if se > 0
            else math.nan
        )
    difference = float(a.mean() - b.mean())
    if se == 0.0:
        t = p = low = high = math.nan
    else:
        t = difference / se
        p = float(2.0 * sps.t.sf(abs(t), df))
        crit = float(sps.t.ppf(1.0 - (1.0 - confidence) / 2.0, df))
        low, high = difference - crit * se, difference + crit * se
    return TTest(
        mean_x=float(a.mean()),
        mean_y=float(b.mean()),
        difference=difference,
        t=t,
        df=df,
        p_value=p,
        ci_low=low,
        ci_high=high,
        equal_var=equal_var,
        confidence=confidence,
    )


@dataclass(frozen=True)
class GroupTest:
    """Result of :func:`one_way_anova` (F, ``df`` = (between, within)) or
    :func:`kruskal_wallis` (chi-squared H, ``df`` = (k - 1,))."""

    method: str
    statistic: float
    df: tuple[float, ...]
    p_value: float
    groups: int
    n: int


def _groups(groups: dict[str, np.ndarray | pd.Series | list[float]]) -> dict[str, np.ndarray]:
    cleaned = {}
    for name, values in groups.items():
        array = np.asarray(values, dtype=float)
        array = array[~np.isnan(array)]
        if len(array):
            cleaned[name] = array
    if len(cleaned) < 2:
        raise ValueError("A test across conditions needs at least two groups with data.")
    return cleaned


def one_way_anova(groups: dict[str, np.ndarray | pd.Series | list[float]]) -> GroupTest:
    """One-way analysis of variance across groups (R ``summary(aov(y ~ g))``).

    ``F = (SS_between / (k-1)) / (SS_within / (N-k))`` on ``(k-1, N-k)`` df.
    Assumptions: independent observations, normal errors, equal variances across groups.
    Empty groups are ignored; fewer than two groups is a ValueError.
    """
    data = _groups(groups)
    values = list(data.values())
    n = sum(len(v) for v in values)
    k = len(values)
    if n - k < 1:
        raise ValueError("One-way ANOVA needs more observations than groups.")
    grand = np.concatenate(values).mean()
    ss_between = sum(len(v) * (v.mean() - grand) ** 2 for v in values)
    ss_within = sum(((v - v.mean()) ** 2).sum() for v in values)
    df1, df2 = k - 1, n - k
    if ss_within == 0:
        statistic = p = math.nan
    else:
        statistic = float((ss_between / df1) / (ss_within / df2))
        p = float(sps.f.sf(statistic, df1, df2))
    return GroupTest("one-way ANOVA", statistic, (float(df1), float(df2)), p, k, n)


def kruskal_wallis(groups: dict[str, np.ndarray | pd.Series | list[float]]) -> GroupTest:
    """Kruskal-Wallis rank sum test across groups (R ``kruskal.test``): H with the
    correction for ties, chi-squared on ``k - 1`` df. Assumptions: independent
    observations, an ordinal outcome; no normality. NaN when every value is tied."""
    data = _groups(groups)
    values = list(data.values())
    n = sum(len(v) for v in values)
    pooled = np.concatenate(values)
    if np.all(pooled == pooled[0]):
        return GroupTest(
            "Kruskal-Wallis", math.nan, (float(len(values) - 1),), math.nan, len(values), n
        )
    result = sps.kruskal(*values)
    return GroupTest(
        "Kruskal-Wallis",
        float(result.statistic),
        (float(len(values) - 1),),
        float(result.pvalue),
        len(values),
        n,
    )


def cronbach_alpha(items: pd.DataFrame) -> float:
    """Cronbach's (1951) alpha of a set of items, one column per item and one row per
    rated unit (complete rows only; rows with a missing item are dropped):
    ``alpha = k / (k-1) * (1 - sum(item variances) / variance(total))``, variances with
    the n-1 denominator. Assumptions: the items measure one construct (tau-equivalence for
    alpha to equal reliability). NaN with fewer than two rows or a constant total.
    """
    data = items.dropna().astype(float)
    k = data.shape[1]
    if k < 2:
        raise ValueError("Cronbach's alpha needs at least two items.")
    if len(data) < 2:
        return math.nan
    total_var = float(data.sum(axis=1).var(ddof=1))
    if total_var == 0:
        return math.nan
    return k / (k - 1) * (1.0 - float(data.var(ddof=1).sum()) / total_var)


# ---------------------------------------------------------------------------------------
# Detection designs: "written by a human or a machine?"

# The word-based map lives in surveys.scoring (a pure module the question model and the
# data migration's rules use too); a question's stored definition may replace it
# (``surveys.scoring.detection_judge``).
HUMAN, MACHINE, UNSURE = scoring.HUMAN, scoring.MACHINE, scoring.UNSURE
detection_judgement = scoring.detection_judgement


DETECTION_COLUMNS = [
    "participant_id",
    "answered",
    "unsure",
    "decided",
    "correct",
    "accuracy",
    "unsure_rate",
]


def detection_accuracy(
    df: pd.DataFrame, *, judge: Callable[[str], str | None] = detection_judgement
) -> pd.DataFrame:
    """Per-participant accuracy at telling human from machine-written articles.

    Input columns: ``participant_id``, ``article_origin`` ("real" = written by a human,
    anything else = machine-written) and ``value`` (the answer text, mapped by ``judge``:
    by default :func:`detection_judgement`; None = not scored). Following Brown et al.
    (2020, "Language Models are Few-Shot Learners", sec. 3.9.4), accuracy is ``correct /
    non-neutral answers``: "I don't know" answers are left out of the ratio and reported
    separately as
    ``unsure_rate = unsure / answered``. Accuracy is NaN for someone who never decided.
    """
    missing = {"participant_id", "article_origin", "value"} - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    judged = df["value"].map(judge)
    data = pd.DataFrame(
        {
            "participant_id": df["participant_id"],
            "judgement": judged,
            "truth": np.where(df["article_origin"] == "real", HUMAN, MACHINE),
        }
    ).dropna(subset=["judgement"])
    if data.empty:
        return pd.DataFrame(columns=DETECTION_COLUMNS)
    data["unsure"] = data["judgement"] == UNSURE
    data["correct"] = ~data["unsure"] & (data["judgement"] == data["truth"])
    table = data.groupby("participant_id", sort=True).agg(
        answered=("judgement", "size"), unsure=("unsure", "sum"), correct=("correct", "sum")
    )
    table["decided"] = table["answered"] - table["unsure"]
    with np.errstate(invalid="ignore", divide="ignore"):
        table["accuracy"] = np.where(
            table["decided"] > 0,
            table["correct"] / table["decided"].where(table["decided"] > 0),
            np.nan,
        )
    table["unsure_rate"] = table["unsure"] / table["answered"]
    return table.reset_index()[DETECTION_COLUMNS]


@dataclass(frozen=True)
class SignalDetection:
    """Result of :func:`signal_detection`: rates after the correction, d' and c."""

    hit_rate: float
    false_alarm_rate: float
    d_prime: float
    criterion: float
    corrected: bool


def signal_detection(
    hits: float,
    signal_trials: float,
    false_alarms: float,
    noise_trials: float,
    correction: bool = True,
) -> SignalDetection:
    """Sensitivity d' and criterion c of the equal-variance Gaussian model.

    ``d' = z(H) - z(F)`` and ``c = -(z(H) + z(F)) / 2`` (Macmillan & Creelman,
    *Detection Theory: A User's Guide*, ch. 1-2), where a "signal" is a machine-written
    article and a hit is calling it machine-written; a false alarm is calling a human
    article machine-written. With ``correction`` (default) the log-linear correction of
    Hautus (1995) is applied so that rates of 0 or 1 give finite z: ``H = (hits + 0.5) /
    (signal_trials + 1)``, likewise for F. Positive c is a bias towards "human".
    Raises ValueError for impossible counts.
    """
    for count, total, name in (
        (hits, signal_trials, "hits"),
        (false_alarms, noise_trials, "false alarms"),
    ):
        if total <= 0 or not 0 <= count <= total:
            raise ValueError(f"{name} must be between 0 and a positive number of trials")
    if correction:
        h = (hits + 0.5) / (signal_trials + 1.0)
        f = (false_alarms + 0.5) / (noise_trials + 1.0)
    else:
        h, f = hits / signal_trials, false_alarms / noise_trials
    zh, zf = float(sps.norm.ppf(h)), float(sps.norm.ppf(f))
    return SignalDetection(h, f, zh - zf, -(zh + zf) / 2.0, correction)


def krippendorff_alpha_nominal(data: np.ndarray | list[list[object]]) -> float:
    """Krippendorff's alpha for nominal data, any number of coders, missing values allowed.

    Input: a coders x units matrix; ``None`` or NaN marks a missing value. Following
    Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": units coded by fewer
    than two coders are dropped; the coincidence matrix ``o_ck = sum_u (number of c-k
    pairs in u) / (m_u - 1)``; ``alpha = 1 - (n - 1) * sum_{c != k} o_ck /
    sum_{c != k} n_c n_k``. NaN when fewer than two values are pairable or only one value
    occurs (no disagreement is possible).
    """
    matrix = np.asarray(data, dtype=object)
    if matrix.ndim != 2:
        raise ValueError("Krippendorff's alpha needs a coders x units matrix.")

    def present(value: object) -> bool:
        return value is not None and not (isinstance(value, float) and math.isnan(value))

    coincidences: dict[tuple[object, object], float] = {}
    for unit in matrix.T:
        values = [v for v in unit if present(v)]
        m = len(values)
        if m < 2:
            continue
        for i, a in enumerate(values):
            for j, b in enumerate(values):
                if i != j:
                    coincidences[(a, b)] = coincidences.get((a, b), 0.0) + 1.0 / (m - 1)
    totals: dict[object, float] = {}
    for (a, _b), weight in coincidences.items():
        totals[a] = totals.get(a, 0.0) + weight
    n = sum(totals.values())
    if n < 2 or len(totals) < 2:
        return math.nan
    observed = sum(w for (a, b), w in coincidences.items() if a != b)
    expected = sum(totals[a] * totals[b] for a in totals for b in totals if a != b)
    return 1.0 - (n - 1.0) * observed / expected


# ---------------------------------------------------------------------------------------
# Detector scores against human judgements: ROC AUC with DeLong intervals

AUC_METHOD = "DeLong (1988) SE; Wald interval clipped to [0, 1] (as pROC ci.auc)"


@dataclass(frozen=True)
class AucResult:
    """Result of :func:`roc_auc`: the empirical AUC (Mann-Whitney probability), its DeLong
    standard error and interval, and how many positives and negatives it rests on."""

    auc: float
    se: float
    ci_low: float
    ci_high: float
    n_pos: int
    n_neg: int
    method: str = AUC_METHOD


def roc_auc(
    scores: np.ndarray | pd.Series | list[float],
    labels: np.ndarray | pd.Series | list[bool] | list[int],
    *,
    confidence: float = 0.95,
    higher_means_positive: bool = True,
) -> AucResult:
    """Area under the empirical ROC curve with DeLong's standard error and interval.

    AUC: the Mann-Whitney probability ``P(score_pos > score_neg) + 0.5 P(tie)`` over all
    positive-negative pairs, i.e. ``U / (n_pos n_neg)`` (Hanley & McNeil 1982), equal to the
    trapezoidal area under the empirical ROC curve. With ``higher_means_positive=False``
    the scores are negated first, so low scores count as "positive-like".
    SE: DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44:837-845, structural
    components: each positive's placement ``V10_i`` (share of negatives it beats, ties
    half) and each negative's ``V01_j`` (share of positives that beat it);
    ``var = s^2(V10) / n_pos + s^2(V01) / n_neg`` with n-1 denominators. Placements come
    from mid-ranks (pooled rank minus within-group rank), O(N log N).
    Interval: ``auc +- z * se`` on the plain AUC scale, clipped to [0, 1], as R pROC's
    ``ci.auc(method = "delong")`` (not the logit scale). At AUC 0 or 1 the SE is 0 and
    the interval collapses to a point: the data then cannot say how far from perfect
    the score is, so read it together with ``n_pos``/``n_neg``. With a single positive or
    negative the SE and interval are NaN.
    Assumptions: the scored items (articles) are independent; for AUCs computed from
    human ratings the interval ignores that the same participants rated several articles.

    ``labels`` are 1/True for positives and 0/False for negatives. Raises ValueError for
    mismatched lengths, missing scores, labels other than 0/1, or a class with no items.
    """
    z = _z_critical(confidence)
    x = np.asarray(scores, dtype=float)
    raw_labels = np.asarray(labels)
    if x.ndim != 1 or raw_labels.shape != x.shape:
        raise ValueError(
            f"scores and labels must be 1-D and of equal length, got {x.shape} and "
            f"{raw_labels.shape}"
        )
    if np.isnan(x).any():
        raise ValueError("scores contain missing values; drop them before computing the AUC")
    y = raw_labels.astype(float)
    if not np.isin(y, [0.0, 1.0]).all():
        raise ValueError("labels must be 1 (positive) or 0 (negative)")
    positive = y == 1.0
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"an AUC needs positives and negatives, got {n_pos} positive(s) and {n_neg} negative(s)"
        )
    if not higher_means_positive:
        x = -x
    pooled = sps.rankdata(x)
    pos_scores, neg_scores = x[positive], x[~positive]
    # Mid-ranks make "pooled rank - rank within own group" the number of the other
    # group's items below, plus half the ties: exactly the DeLong placement counts.
    v10 = (pooled[positive] - sps.rankdata(pos_scores)) / n_neg
    v01 = 1.0 - (pooled[~positive] - sps.rankdata(neg_scores)) / n_pos
    auc = float(v10.mean())
    if n_pos < 2 or n_neg < 2:
        nan = math.nan
        return AucResult(auc, nan, nan, nan, n_pos, n_neg)
    se = math.sqrt(float(v10.var(ddof=1)) / n_pos + float(v01.var(ddof=1)) / n_neg)
    return AucResult(
        auc=auc,
        se=se,
        ci_low=max(0.0, auc - z * se),
        ci_high=min(1.0, auc + z * se),
        n_pos=n_pos,
        n_neg=n_neg,
    )


HIGHER, LOWER = "higher", "lower"

# Which end of each detector score points to machine-generated text, fixed in advance
# from how the score is built, never chosen from the data (picking whichever direction
# gives the larger AUC would bias every AUC upward, towards >= 0.5). Text sampled from a
# language model is more probable under (a model like) it than human text: higher mean
# token log-probability, lower perplexity (= exp(-mean log-prob)), and more tokens among
# the model's top-k predictions (GLTR, Gehrmann, Strobelt & Rush 2019).
DETECTOR_DIRECTIONS: dict[str, str] = {
    "mean_logprob": HIGHER,
    "perplexity": LOWER,
    "rank_lt_10": HIGHER,
    "rank_lt_100": HIGHER,
    "rank_lt_1000": HIGHER,
}

SEPARATION_COLUMNS = [
    "score",
    "direction",
    "auc",
    "se",
    "ci_low",
    "ci_high",
    "n_pos",
    "n_neg",
    "method",
]


def _separation_rows(
    data: pd.DataFrame,
    *,
    score: str,
    direction: str,
    is_positive: pd.Series,
    by: str | None,
    confidence: float,
) -> list[dict[str, object]]:
    present = data[score].notna()
    negatives = data.loc[present & ~is_positive, score].to_numpy(dtype=float)
    positives_all = data.loc[present & is_positive]
    groups: list[tuple[object, pd.DataFrame]] = (
        [(None, positives_all)]
        if by is None
        else [(key, group) for key, group in positives_all.groupby(by, sort=True)]
    )
    rows: list[dict[str, object]] = []
    for key, group in groups:
        pos = group[score].to_numpy(dtype=float)
        row: dict[str, object] = {} if by is None else {by: key}
        row.update({"score": score, "direction": direction})
        if len(pos) == 0 or len(negatives) == 0:
            # Report the gap instead of dropping the row: an empty cell in the table says
            # "no data" more clearly than a missing score.
            nan = math.nan
            row.update(
                auc=nan, se=nan, ci_low=nan, ci_high=nan, n_pos=len(pos), n_neg=len(negatives)
            )
            row["method"] = AUC_METHOD
        else:
            result = roc_auc(
                np.concatenate([pos, negatives]),
                np.concatenate([np.ones(len(pos)), np.zeros(len(negatives))]),
                confidence=confidence,
                higher_means_positive=direction == HIGHER,
            )
            row.update(
                auc=result.auc,
                se=result.se,
                ci_low=result.ci_low,
                ci_high=result.ci_high,
                n_pos=result.n_pos,
                n_neg=result.n_neg,
                method=result.method,
            )
        rows.append(row)
    return rows


def _origin_mask(
    df: pd.DataFrame, label_column: str, positive: str, negative: str, required: set[str]
) -> pd.Series:
    missing = (required | {label_column}) - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    if "article_id" in df.columns and df["article_id"].duplicated().any():
        examples = df.loc[df["article_id"].duplicated(), "article_id"].unique()[:5].tolist()
        raise ValueError(f"each article must appear once; repeated article_id(s): {examples}")
    unknown = ~df[label_column].isin([positive, negative])
    if unknown.any():
        examples = sorted(map(str, df.loc[unknown, label_column].unique()))[:5]
        raise ValueError(f'{label_column} must be "{positive}" or "{negative}"; got {examples}')
    return df[label_column] == positive


def detector_separation(
    df: pd.DataFrame,
    *,
    score_columns: list[str] | tuple[str, ...],
    label_column: str = "article_origin",
    positive: str = "generated",
    negative: str = "real",
    directions: dict[str, str] | None = None,
    by: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """How well each detector score separates generated from real articles (ROC AUC).

    Input: one row per article with ``label_column`` (``positive`` or ``negative``; any
    other value is a ValueError), the ``score_columns`` (NaN = not scored: that article is
    left out for that score only) and, if present, ``article_id`` (must be unique).
    Direction: fixed per score before looking at the data, from ``directions`` (overrides)
    then :data:`DETECTOR_DIRECTIONS` (perplexity: lower = generated), else "higher" =
    generated. An AUC below 0.5 therefore means the score points the other way than
    expected; it is reported as such, not flipped.
    ``by`` (e.g. ``"condition"``): one AUC per value of that column among the positives,
    each against all negatives (the real articles are the shared reference, as in
    :func:`compare_to_reference`).
    Output: ``SEPARATION_COLUMNS`` (with ``by`` first when given), one row per score (and
    group), in the order of ``score_columns``; AUC, SE and interval from :func:`roc_auc`
    (NaN when a class has no scored article). Assumptions: articles are independent.
    """
    if not score_columns:
        raise ValueError("score_columns must name at least one score")
    is_positive = _origin_mask(
        df, label_column, positive, negative, set(score_columns) | ({by} if by else set())
    )
    chosen = {**DETECTOR_DIRECTIONS, **(directions or {})}
    rows: list[dict[str, object]] = []
    for score in score_columns:
        direction = chosen.get(score, HIGHER)
        if direction not in (HIGHER, LOWER):
            raise ValueError(
                f'direction for {score} must be "higher" or "lower", got {direction!r}'
            )
        rows.extend(
            _separation_rows(
                df,
                score=score,
                direction=direction,
                is_positive=is_positive,
                by=by,
                confidence=confidence,
            )
        )
    columns = ([by] if by else []) + SEPARATION_COLUMNS
    return pd.DataFrame(rows, columns=columns)


HUMAN_SCORE = "human (1 - credible_share)"


def _credible_share(df: pd.DataFrame) -> pd.Series:
    share = pd.to_numeric(df["credible_share"], errors="raise").astype(float)
    if ((share < 0) | (share > 1)).any():
        raise ValueError("credible_share must be between 0 and 1")
    return share


def human_separation(
    df: pd.DataFrame,
    *,
    label_column: str = "article_origin",
    positive: str = "generated",
    negative: str = "real",
    by: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Participants as a detector: the AUC of ``1 - credible_share`` for telling generated
    from real articles, in the same table format as :func:`detector_separation` so the two
    can be stacked (``score`` = "human (1 - credible_share)", ``direction`` = "higher").

    Input: one row per article with ``article_id`` (unique), ``label_column`` and
    ``credible_share`` (share of the participants who rated it credible, in [0, 1]; NaN =
    not rated, left out). An article rated less credible counts as more machine-like.
    Assumptions: articles are independent and each share is taken as exact; the interval
    ignores both the sampling error of each share (few raters per article widen the true
    uncertainty) and that the same participants rated several articles.
    """
    is_positive = _origin_mask(
        df,
        label_column,
        positive,
        negative,
        {"article_id", "credible_share"} | ({by} if by else set()),
    )
    data = df.copy()
    data[HUMAN_SCORE] = 1.0 - _credible_share(df)
    rows = _separation_rows(
        data,
        score=HUMAN_SCORE,
        direction=HIGHER,
        is_positive=is_positive,
        by=by,
        confidence=confidence,
    )
    columns = ([by] if by else []) + SEPARATION_COLUMNS
    return pd.DataFrame(rows, columns=columns)


DISAGREEMENT_COLUMNS = [
    "article_id",
    "article_origin",
    "human_machine_likeness_pct",
    "detector_machine_likeness_pct",
    "gap",
    "abs_gap",
]


def _percentile_ranks(values: pd.Series) -> pd.Series:
    # Mid-rank percentiles (rank - 0.5) / N * 100: ties share a value, and the scale is
    # symmetric (the lowest of N sits at 50/N, the highest at 100 - 50/N).
    return (values.rank(method="average") - 0.5) / len(values) * 100.0


def human_detector_disagreements(
    df: pd.DataFrame,
    *,
    score_column: str,
    top: int = 10,
    direction: str | None = None,
) -> pd.DataFrame:
    """The articles on which participants and a detector disagree most.

    Input: one row per article of one study with ``article_id`` (unique),
    ``article_origin``, ``credible_share`` (in [0, 1]) and ``score_column``; articles
    missing either value are left out. Both are turned into "machine-likeness"
    percentiles (mid-rank, 0-100) within the articles given: humans' from
    ``1 - credible_share``, the detector's from the score oriented by ``direction``
    (default: :data:`DETECTOR_DIRECTIONS`, else "higher" = machine-like). Ranks make the
    two comparable whatever the score's scale.
    Output: ``DISAGREEMENT_COLUMNS``, the ``top`` articles with the largest ``abs_gap``
    (ties by ``article_id``); ``gap = human - detector`` percentile, so a positive gap is
    an article people found more machine-like than the detector did.
    """
    if top < 1:
        raise ValueError(f"top must be a positive number of articles, got {top}")
    missing = {"article_id", "article_origin", "credible_share", score_column} - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    if df["article_id"].duplicated().any():
        examples = df.loc[df["article_id"].duplicated(), "article_id"].unique()[:5].tolist()
        raise ValueError(f"each article must appear once; repeated article_id(s): {examples}")
    chosen = direction or DETECTOR_DIRECTIONS.get(score_column, HIGHER)
    if chosen not in (HIGHER, LOWER):
        raise ValueError(f'direction must be "higher" or "lower", got {chosen!r}')
    data = df.loc[df["credible_share"].notna() & df[score_column].notna()].copy()
    if data.empty:
        return pd.DataFrame(columns=DISAGREEMENT_COLUMNS)
    score = data[score_column].astype(float)
    data["human_machine_likeness_pct"] = _percentile_ranks(1.0 - _credible_share(data))
    data["detector_machine_likeness_pct"] = _percentile_ranks(score if chosen == HIGHER else -score)
    data["gap"] = data["human_machine_likeness_pct"] - data["detector_machine_likeness_pct"]
    data["abs_gap"] = data["gap"].abs()
    data = data.sort_values(["abs_gap", "article_id"], ascending=[False, True], kind="stable")
    return data.head(top)[DISAGREEMENT_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------------------
# Mixed-effects logistic regression: crossed random intercepts (participants x articles)

RANDOM_EFFECT_COLUMNS = ["group", "levels", "sd", "variance"]
MIXED_METHOD = "maximum likelihood, Laplace approximation (as lme4::glmer with nAGQ = 1)"


@dataclass(frozen=True)
class MixedLogisticFit:
    """Result of :func:`mixed_logistic_regression`.

    ``table`` has ``LOGISTIC_COLUMNS``: first the intercept (the reference condition's log
    odds for a participant and an article at the centre of their random effects), then
    each other condition's log odds ratio against the reference, conditional on the
    participant and the article. ``random_effects`` has ``RANDOM_EFFECT_COLUMNS``: one row
    per grouping column with its number of levels and the estimated standard deviation of
    its random intercepts on the log-odds scale. ``converged`` is False when the optimiser
    stopped without meeting its tolerance; ``message`` then says why and the numbers must
    not be reported as estimates. ``singular`` is True when a standard deviation was
    estimated at (numerically) zero, as lme4's "boundary (singular) fit"."""

    table: pd.DataFrame
    random_effects: pd.DataFrame
    reference: str
    n_obs: int
    log_likelihood: float
    converged: bool
    singular: bool
    confidence: float
    method: str = MIXED_METHOD
    message: str = ""


class _LaplaceBinomial:
    """The Laplace approximation to the log-likelihood of a logistic model with random
    intercepts for one or more (crossed) grouping factors, in lme4's parametrisation:
    ``eta = X beta + sum_k theta_k Z_k v_k`` with ``v ~ N(0, I)``, so ``theta_k`` is the
    standard deviation of factor k's intercepts (Bates et al. 2015, J Stat Softw 67(1),
    sec. 5 for the penalised least squares form; the binomial case as in ``glmer``).

    The conditional mode of ``v`` is found by Newton's method on the penalised
    log-likelihood; its negative Hessian ``H = I + Lambda Z' W Z Lambda`` has a diagonal
    block for the factor with most levels (participants) and a small dense block for the
    others (articles), so ``log det H`` and solves go through the Schur complement of the
    diagonal block: linear in the number of ratings, cubic only in the number of articles.
    """

    # The Schur complement's correction ``B' D^-1 B`` is a sum over participants of
    # ``u_p u_p' / d_p``, ``u_p`` the participant's (sparse) row of the coupling ``B``.
    # Blocks of dense rows multiplied through BLAS cost ``levels * m^2``; a sparse
    # product costs about the number of within-participant pairs of cells. Dense while
    # it is at most this many times the pairs (measured: 2-3x faster with 20 articles,
    # 8x slower with 400 articles and 10 ratings each).
    DENSE_PAIRS_RATIO = 50
    DENSE_BLOCK = 2_000_000  # entries of one block of dense rows (16 MB)

    def __init__(self, x: np.ndarray, y: np.ndarray, codes: list[np.ndarray], sizes: list[int]):
        self.x = x
        self.y = y
        # The factor with most levels goes first: its block of H is diagonal.
        self.order = sorted(range(len(codes)), key=lambda k: -sizes[k])
        self.codes = [codes[k] for k in self.order]
        self.sizes = [sizes[k] for k in self.order]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.m = int(self.offsets[-1]) - self.sizes[0]  # levels of the other factors
        self.v = np.zeros(int(self.offsets[-1]))  # warm start for the next mode search
        # Fixed cell indices of E, per (j, k) pair of other factors.
        columns = [self._column(k) for k in range(1, len(self.codes))]
        self.cells = [[cj * self.m + ck for ck in columns] for cj in columns]
        # The coupling's nonzero cells (participant, other level) in CSR order, and the
        # cell of each rating under each other factor: computed once, reused per call.
        n0, m = self.sizes[0], self.m
        self.slots = np.zeros(0, dtype=np.int64)
        self.cell_rows = self.cell_columns = self.indptr = np.zeros(0, dtype=np.int64)
        self.dense = False
        if len(self.codes) > 1:
            flat = np.concatenate([self.codes[0] * m + column for column in columns])
            unique, self.slots = np.unique(flat, return_inverse=True)
            self.cell_rows = unique // m
            self.cell_columns = unique % m
            per_row = np.bincount(self.cell_rows, minlength=n0)
            self.indptr = np.concatenate([[0], np.cumsum(per_row)])
            pairs = int(np.sum(per_row.astype(np.int64) ** 2))
            self.dense = n0 * m * m <= self.DENSE_PAIRS_RATIO * pairs

    def _eta(self, beta: np.ndarray, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        eta = self.x @ beta
        for k, codes in enumerate(self.codes):
            eta = eta + theta[k] * v[self.offsets[k] : self.offsets[k + 1]][codes]
        return np.asarray(eta, dtype=float)

    def _penalised(self, eta: np.ndarray, v: np.ndarray) -> float:
        return float(np.sum(self.y * eta - np.logaddexp(0.0, eta)) - 0.5 * v @ v)

    def _column(self, k: int) -> np.ndarray:
        """Each rating's column in the block of the other factors (k >= 1)."""
        return self.codes[k] + int(self.offsets[k]) - self.sizes[0]

    def _factorise(
        self, theta: np.ndarray, w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``H``'s diagonal first block, and the Cholesky factor of the Schur complement
        ``E - B' D^-1 B`` of the other factors (``B``, the coupling, stays implicit)."""
        n0, m = self.sizes[0], self.m
        diagonal = 1.0 + theta[0] ** 2 * np.bincount(self.codes[0], weights=w, minlength=n0)
        if len(self.codes) == 1:
            return diagonal, theta, w, None
        columns = [self._column(k) for k in range(1, len(self.codes))]
        scale = theta[1:]
        flat = np.zeros(m * m)
        for j in range(len(columns)):  # E: I + Lambda Z_j' W Z_k Lambda
            for k in range(len(columns)):
                flat += np.bincount(
                    self.cells[j][k], weights=scale[j] * scale[k] * w, minlength=m * m
                )
        values = theta[0] * np.bincount(
            self.slots,
            weights=np.concatenate([scale[k] * w for k in range(len(columns))]),
            minlength=len(self.cell_rows),
        )
        schur = np.eye(m) + flat.reshape(m, m) - self._correction(values, diagonal)
        return diagonal, theta, w, np.linalg.cholesky(schur)

    def _correction(self, values: np.ndarray, diagonal: np.ndarray) -> np.ndarray:
        """``B' D^-1 B`` from the coupling's nonzero ``values`` (in CSR order)."""
        n0, m = self.sizes[0], self.m
        if not self.dense:
            from scipy import sparse

            coupling = sparse.csr_matrix((values, self.cell_columns, self.indptr), shape=(n0, m))
            scaled = sparse.csr_matrix(
                (values / diagonal[self.cell_rows], self.cell_columns, self.indptr), shape=(n0, m)
            )
            return np.asarray((coupling.T @ scaled).toarray(), dtype=float)
        total = np.zeros((m, m))
        block = max(1, self.DENSE_BLOCK // m)
        for start in range(0, n0, block):
            stop = min(n0, start + block)
            low, high = int(self.indptr[start]), int(self.indptr[stop])
            flat = np.zeros((stop - start) * m)
            flat[(self.cell_rows[low:high] - start) * m + self.cell_columns[low:high]] = values[
                low:high
            ]
            rows = flat.reshape(stop - start, m)
            total += (rows.T / diagonal[start:stop]) @ rows
        return total

    def _coupling_times(self, theta: np.ndarray, w: np.ndarray, rest: np.ndarray) -> np.ndarray:
        """``B @ rest``: from the other factors' levels to the first factor's."""
        total = np.zeros(self.sizes[0])
        for k in range(1, len(self.codes)):
            total += np.bincount(
                self.codes[0],
                weights=theta[0] * theta[k] * w * rest[self._column(k)],
                minlength=self.sizes[0],
            )
        return total

    def _coupling_t_times(self, theta: np.ndarray, w: np.ndarray, head: np.ndarray) -> np.ndarray:
        """``B' @ head``: from the first factor's levels to the other factors'."""
        total = np.zeros(self.m)
        for k in range(1, len(self.codes)):
            total += np.bincount(
                self._column(k),
                weights=theta[0] * theta[k] * w * head[self.codes[0]],
                minlength=self.m,
            )
        return total

    def _solve(
        self, factors: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None], g: np.ndarray
    ) -> np.ndarray:
        from scipy.linalg import cho_solve

        diagonal, theta, w, chol = factors
        n0 = self.sizes[0]
        if chol is None:
            return np.asarray(g / diagonal, dtype=float)
        head, tail = g[:n0], g[n0:]
        rest = np.asarray(
            cho_solve((chol, True), tail - self._coupling_t_times(theta, w, head / diagonal))
        )
        first = (head - self._coupling_times(theta, w, rest)) / diagonal
        return np.concatenate([first, rest])

    @staticmethod
    def _log_det(factors: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]) -> float:
        diagonal, _, _, chol = factors
        total = float(np.sum(np.log(diagonal)))
        if chol is not None:
            total += 2.0 * float(np.sum(np.log(np.diag(chol))))
        return total

    def _score(self, theta: np.ndarray, residual: np.ndarray, v: np.ndarray) -> np.ndarray:
        parts = [
            theta[k] * np.bincount(codes, weights=residual, minlength=self.sizes[k])
            for k, codes in enumerate(self.codes)
        ]
        return np.asarray(np.concatenate(parts) - v, dtype=float)

    def log_likelihood(self, beta: np.ndarray, theta: np.ndarray) -> float:
        """Laplace-approximate log-likelihood at ``(beta, theta)`` (``theta`` in the
        caller's factor order). Bernoulli rows, so no binomial-coefficient constant."""
        theta = np.asarray(theta, dtype=float)[self.order]
        v = self.v.copy()
        eta = self._eta(beta, theta, v)
        value = self._penalised(eta, v)
        for _ in range(100):
            mu = special.expit(eta)
            w = mu * (1.0 - mu)
            step = self._solve(self._factorise(theta, w), self._score(theta, self.y - mu, v))
            size = 1.0
            while True:  # step halving keeps every Newton step an ascent step
                trial = v + size * step
                trial_eta = self._eta(beta, theta, trial)
                trial_value = self._penalised(trial_eta, trial)
                if trial_value >= value - 1e-12 * (1.0 + abs(value)) or size < 1e-10:
                    break
                size /= 2.0
            moved = float(np.max(np.abs(size * step))) if step.size else 0.0
            v, eta, value = trial, trial_eta, trial_value
            # Newton converges quadratically: after a step this small the mode is exact
            # to about its square, far below what the deviance's differences resolve.
            if moved < 1e-6:
                break
        self.v = v
        mu = special.expit(eta)
        return value - 0.5 * self._log_det(self._factorise(theta, mu * (1.0 - mu)))

    def fixed_covariance(self, beta: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Covariance of the fixed effects given the random-effect SDs:
        ``(X'WX - X'W Z Lambda H^-1 Lambda Z'W X)^-1`` at the conditional modes, the
        inverse of the Schur complement of the penalised system (lme4's ``RX``, used by
        ``vcov(..., use.hessian = FALSE)`` and by MixedModels.jl)."""
        self.log_likelihood(beta, theta)  # leaves the conditional modes in self.v
        theta = np.asarray(theta, dtype=float)[self.order]
        mu = special.expit(self._eta(beta, theta, self.v))
        w = mu * (1.0 - mu)
        factors = self._factorise(theta, w)
        weighted = self.x * w[:, None]
        cross = np.column_stack(
            [
                np.concatenate(
                    [
                        theta[k] * np.bincount(codes, weights=weighted[:, j], minlength=size)
                        for k, (codes, size) in enumerate(zip(self.codes, self.sizes, strict=True))
                    ]
                )
                for j in range(self.x.shape[1])
            ]
        )
        solved = np.column_stack([self._solve(factors, cross[:, j]) for j in range(cross.shape[1])])
        information = self.x.T @ weighted - cross.T @ solved
        return np.asarray(np.linalg.inv(information), dtype=float)


def _plain_logistic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Maximum-likelihood logistic coefficients by Newton-Raphson (start values only)."""
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        mu = special.expit(x @ beta)
        step = np.linalg.solve((x * (mu * (1.0 - mu))[:, None]).T @ x, x.T @ (y - mu))
        beta = beta + step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return np.asarray(beta, dtype=float)


def _numerical_gradient(
    function: Callable[[np.ndarray], float],
    point: np.ndarray,
    central: bool = True,
    centre: float | None = None,
) -> np.ndarray:
    """Finite-difference gradient: central (accurate, for the convergence check) or
    forward (half the evaluations, for the optimiser's steps). The Laplace objective is
    computed to about 1e-10 (the conditional modes converge quadratically), so
    steps of 1e-5 and 1e-6 keep rounding and truncation error near 1e-5 and 1e-4."""
    gradient = np.zeros(len(point))
    if central:
        for i in range(len(point)):
            up, down = point.copy(), point.copy()
            up[i] += 1e-5
            down[i] -= 1e-5
            gradient[i] = (function(up) - function(down)) / 2e-5
        return gradient
    base = function(point) if centre is None else centre
    for i in range(len(point)):
        up = point.copy()
        up[i] += 1e-6
        gradient[i] = (function(up) - base) / 1e-6
    return gradient


def _condition_design(
    data: pd.DataFrame, reference: str, factor: str = "condition"
) -> tuple[np.ndarray, list[str]]:
    """Intercept plus one indicator per non-reference level of ``factor`` (sorted)."""
    levels = sorted(set(data[factor]))
    if reference not in levels:
        raise ValueError(f'The reference condition "{reference}" has no answers to compare with.')
    if len(levels) < 2:
        raise ValueError("A regression on condition needs at least two conditions with answers.")
    shares = data.groupby(factor)["value_numeric"].mean()
    degenerate = sorted(str(c) for c, share in shares.items() if share in (0.0, 1.0))
    if degenerate:
        raise ValueError(
            "Every answer is the same in "
            + ", ".join(degenerate)
            + ": the odds ratio is infinite and the regression undefined."
        )
    others = [c for c in levels if c != reference]
    design = np.column_stack(
        [np.ones(len(data))] + [(data[factor] == c).to_numpy(dtype=float) for c in others]
    )
    return design, others


def _wald_table(
    terms: list[str], params: np.ndarray, se: np.ndarray, confidence: float
) -> pd.DataFrame:
    z_crit = _z_critical(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = params / se
    table = pd.DataFrame(
        {
            "term": terms,
            "log_odds": params,
            "se": se,
            "z": z,
            "p_value": 2.0 * sps.norm.sf(np.abs(z)),
            "ci_low": params - z_crit * se,
            "ci_high": params + z_crit * se,
        }
    )
    table["odds_ratio"] = np.exp(table["log_odds"])
    table["or_ci_low"] = np.exp(table["ci_low"])
    table["or_ci_high"] = np.exp(table["ci_high"])
    return table[LOGISTIC_COLUMNS]


# Above this many ratings a mixed fit starts from a fit to a random share of the
# participants holding about MIXED_START_RATINGS ratings: near the optimum L-BFGS-B needs
# about a quarter of the deviance evaluations it needs from the plain logistic start
# (measured: 50 instead of 225 at 200,000 ratings, with the same estimates to 1e-6).
MIXED_START_FROM = 50_000
MIXED_START_RATINGS = 10_000


def _minimise_deviance(model: _LaplaceBinomial, start: np.ndarray, ftol: float) -> Any:
    """L-BFGS-B on the Laplace deviance over the fixed effects and the random-effect
    SDs (bounded at 0), with forward-difference gradients; scipy's OptimizeResult."""
    from scipy.optimize import minimize

    p = model.x.shape[1]

    def deviance(params: np.ndarray) -> float:
        return -2.0 * model.log_likelihood(params[:p], params[p:])

    def deviance_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        value = deviance(params)
        return value, _numerical_gradient(deviance, params, central=False, centre=value)

    bounds = [(None, None)] * p + [(0.0, None)] * (len(start) - p)
    return minimize(
        deviance_and_gradient,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 500, "ftol": ftol, "gtol": 1e-5},
    )


def _mixed_start(
    design: np.ndarray, y: np.ndarray, codes: list[np.ndarray], sizes: list[int]
) -> np.ndarray:
    """Start values ``(beta, theta)``: the plain logistic coefficients and SDs of 1, or
    for a large data set the estimates from a random share of the levels of the largest
    factor (participants) with all their ratings. The draw is seeded, so a fit is
    reproducible; a share the model cannot be fitted to falls back to the plain start."""
    plain = np.concatenate([_plain_logistic(design, y), np.ones(len(codes))])
    if len(y) <= MIXED_START_FROM:
        return plain
    largest = int(np.argmax(sizes))
    keep = np.random.default_rng(0).random(sizes[largest]) < MIXED_START_RATINGS / len(y)
    rows = keep[codes[largest]]
    part_design, part_y = design[rows], y[rows]
    # Every condition (and the reference) needs both answers, or its odds ratio is infinite.
    reference_rows = ~part_design[:, 1:].any(axis=1)
    cells = [reference_rows] + [part_design[:, j] == 1.0 for j in range(1, design.shape[1])]
    if any(not 0.0 < float(part_y[cell].mean()) < 1.0 for cell in cells if cell.any()):
        return plain
    if any(not cell.any() for cell in cells):
        return plain
    part_codes = [pd.factorize(c[rows], sort=True)[0].astype(np.int64) for c in codes]
    part_sizes = [int(c.max()) + 1 for c in part_codes]
    if min(part_sizes) < 2:
        return plain
    try:
        part_start = np.concatenate([_plain_logistic(part_design, part_y), np.ones(len(codes))])
        model = _LaplaceBinomial(part_design, part_y, part_codes, part_sizes)
        result = _minimise_deviance(model, part_start, ftol=1e-10)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return plain
    found = np.asarray(result.x, dtype=float)
    return found if bool(np.all(np.isfinite(found))) else plain


def mixed_logistic_regression(
    df: pd.DataFrame,
    reference: str,
    groups: tuple[str, ...] = ("participant_id", "article_id"),
    confidence: float = 0.95,
) -> MixedLogisticFit:
    """Logistic mixed-effects model of a yes/no answer on condition with crossed random
    intercepts, by default for participants and for articles.

    Input columns: ``condition``, ``value_numeric`` (0/1; missing answers are dropped) and
    one column per name in ``groups`` (rows with a missing group are dropped).
    Model: ``logit P(yes) = b0 + sum_c b_c [condition = c] + u_participant + a_article``
    with ``u ~ N(0, sd_p^2)`` and ``a ~ N(0, sd_a^2)`` independent, the ``reference``
    condition as baseline: the R formula ``credible ~ condition + (1 | participant) +
    (1 | article)``. ``b_c`` is a log odds ratio *conditional* on participant and
    article (larger in magnitude than the population-averaged one of
    :func:`logistic_regression` whenever the random effects vary).
    Estimation: maximum likelihood with the Laplace approximation to the integral over
    the random effects, as ``lme4::glmer`` by default (nAGQ = 1), optimised over the fixed
    effects and the standard deviations together (L-BFGS-B, standard deviations bounded
    at 0; above ``MIXED_START_FROM`` ratings from the estimates on a seeded random share of
    the participants, which saves three quarters of the evaluations). Standard errors of
    the fixed effects come from their information matrix at
    the conditional modes given the estimated SDs (lme4's ``RX``, i.e. ``vcov(fit,
    use.hessian = FALSE)``, and MixedModels.jl's; lme4's default finite-difference
    Hessian differs by about 1% on its ``cbpp`` example); Wald z, two-sided p and
    ``estimate +- z * se`` intervals, also as odds ratios.
    Assumptions: normal random intercepts, independent of condition; the Laplace
    approximation is accurate when each participant and article has several ratings
    (it is biased towards zero for very few binary ratings per level). The Wald
    intervals treat the estimated SDs as known, so with few articles they are somewhat
    narrow: 91-92% coverage of the 95% interval measured on simulated within-subject
    studies of 60-120 participants and 24-60 articles (tests/analysis/test_coverage.py). Each random
    effect needs at least two levels, and some level with two or more ratings.
    Raises ValueError for data the model cannot be fitted to; an optimiser that does
    not converge is reported with ``converged=False`` and a ``message``.
    """
    needed = {"condition", "value_numeric", *groups}
    missing = needed - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    if not groups:
        raise ValueError("A mixed model needs at least one grouping column.")
    _z_critical(confidence)
    data = _binary_values(df).join(df[list(groups)])
    data = data.loc[data[list(groups)].notna().all(axis=1)]
    design, others = _condition_design(data, reference)
    codes: list[np.ndarray] = []
    sizes: list[int] = []
    for group in groups:
        labels = pd.factorize(data[group], sort=True)[0]
        counts = np.bincount(labels)
        if len(counts) < 2 or counts.max() < 2:
            raise ValueError(
                f'A random intercept for "{group}" needs at least two of them and some with '
                "two or more ratings; this data has "
                f"{len(counts)} with at most {int(counts.max()) if len(counts) else 0} each."
            )
        codes.append(labels.astype(np.int64))
        sizes.append(len(counts))
    y = data["value_numeric"].to_numpy(dtype=float)
    model = _LaplaceBinomial(design, y, codes, sizes)
    p, k = design.shape[1], len(groups)

    def deviance(params: np.ndarray) -> float:
        return -2.0 * model.log_likelihood(params[:p], params[p:])

    result = _minimise_deviance(model, _mixed_start(design, y, codes, sizes), ftol=1e-13)
    params = np.asarray(result.x, dtype=float)
    value = deviance(params)
    gradient = _numerical_gradient(deviance, params)
    # The projected gradient: a standard deviation at its bound of 0 may slope upwards.
    free = np.ones(p + k, dtype=bool)
    free[p:] = params[p:] > 1e-4
    projected = np.where(free, gradient, np.minimum(gradient, 0.0))
    # L-BFGS-B often reports a failed line search once the finite-difference gradient
    # is at its noise floor; what matters is that the gradient is flat there.
    # The optimiser's forward differences over-state the gradient by about h/2 times
    # the curvature, which grows with the number of ratings, so the tolerance grows with
    # it: what it bounds, the distance to the optimum in standard errors, stays put (at
    # 10^6 ratings 0.05 is about 1e-4 of the intercept's standard error).
    tolerance = 1e-2 * max(1.0, len(y) / 200_000)
    converged = bool(np.max(np.abs(projected)) < tolerance)
    message = "" if converged else f"the optimiser stopped without converging ({result.message})"
    singular = not bool(free[p:].all())
    se = np.full(p, math.nan)
    try:
        variances = np.diag(model.fixed_covariance(params[:p], params[p:]))
        if np.any(variances <= 0):
            raise np.linalg.LinAlgError("not positive definite")
        se = np.sqrt(variances)
    except np.linalg.LinAlgError:
        converged = False
        message = "the information matrix of the fixed effects is singular at the estimate"
    sds = np.abs(params[p:])
    random_effects = pd.DataFrame(
        {"group": list(groups), "levels": sizes, "sd": sds, "variance": sds**2}
    )
    return MixedLogisticFit(
        table=_wald_table([INTERCEPT, *others], params[:p], se, confidence),
        random_effects=random_effects[RANDOM_EFFECT_COLUMNS],
        reference=reference,
        n_obs=len(data),
        log_likelihood=-value / 2.0,
        converged=converged,
        singular=singular,
        confidence=confidence,
        message=message,
    )


# ---------------------------------------------------------------------------------------
# Moderators: condition x moderator in a participant-clustered logistic regression


@dataclass(frozen=True)
class ModeratorFit:
    """Result of :func:`moderator_logistic_regression`. ``table`` has
    ``LOGISTIC_COLUMNS``, terms in the order intercept, ``<condition>``,
    ``<moderator term>``, ``<condition>:<moderator term>``; ``interactions`` names the
    interaction terms. ``wald_*`` is the joint Wald test that every interaction is zero
    with the (clustered) covariance; ``lr_*`` the likelihood-ratio test against the model
    without interactions, which assumes independent ratings (exact only with one rating
    per participant). ``dropped`` counts ratings left out for a missing moderator."""

    table: pd.DataFrame
    moderator: str
    numeric: bool
    moderator_reference: str | None
    interactions: list[str]
    wald_chi2: float
    wald_df: int
    wald_p: float
    lr_chi2: float
    lr_p: float
    n_obs: int
    n_clusters: int
    dropped: int
    cov_type: str
    confidence: float


def moderator_logistic_regression(
    df: pd.DataFrame,
    reference: str,
    moderator: str,
    numeric: bool = False,
    moderator_reference: str | None = None,
    factor: str = "condition",
    confidence: float = 0.95,
    cluster: bool = True,
) -> ModeratorFit:
    """Does the effect of ``factor`` (condition) on a yes/no answer depend on a
    moderator? Logistic regression of ``value_numeric`` on factor x moderator.

    Input columns: ``factor`` (default ``condition``), ``value_numeric`` (0/1), the
    ``moderator`` column and, when ``cluster``, ``participant_id``. Rows with a missing
    answer or moderator are left out (``dropped`` counts the latter).
    Model: ``logit P(yes) = b0 + sum_c b_c C_c + M + sum_c g_c C_c M`` with treatment
    coding of the factor against ``reference``. A categorical moderator (party ID,
    disclaimer shown or not) is coded with one indicator per level other than
    ``moderator_reference`` (default: its first level by name); a numeric one (ideology
    1-7) enters centred at its mean, so ``b_c`` is the condition's log odds ratio at the
    average moderator and ``g_c`` how much that log odds ratio changes per unit of it.
    Each ``g_c`` is a ratio of odds ratios on the log scale (R: ``glm(y ~ condition *
    moderator, family = binomial)``). Fitted by maximum likelihood; errors as in
    :func:`logistic_regression` (participant-clustered sandwich when ``cluster``).
    Tests of "no moderation": the joint Wald chi-square of all ``g_c`` with that
    covariance (df = number of interaction terms), and the likelihood-ratio chi-square
    against the main-effects model (model-based: it treats ratings as independent).
    Assumptions: as :func:`logistic_regression`; every factor level observed at more
    than one moderator value. Raises ValueError when a cell is empty or all-yes/all-no
    (the model is then not identified) or a column is missing.
    """
    import statsmodels.api as sm  # heavy import, needed only here

    needed = {factor, "value_numeric", moderator} | ({"participant_id"} if cluster else set())
    missing = needed - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    _z_critical(confidence)
    answered = df.loc[df["value_numeric"].notna()]
    bad = ~answered["value_numeric"].isin([0.0, 1.0])
    if bad.any():
        raise ValueError("value_numeric must be 0 or 1 for a binary question")
    data = answered.loc[answered[moderator].notna()]
    dropped = len(answered) - len(data)
    factor_design, others = _condition_design(data, reference, factor=factor)
    terms = [INTERCEPT, *[str(c) for c in others]]
    columns = list(factor_design.T)
    moderator_columns: list[np.ndarray] = []
    moderator_terms: list[str] = []
    chosen_reference: str | None = None
    if numeric:
        values = pd.to_numeric(data[moderator], errors="coerce")
        if values.isna().any():
            raise ValueError(f'The moderator "{moderator}" must be numeric.')
        if values.nunique() < 2:
            raise ValueError(f'The moderator "{moderator}" takes a single value in this data.')
        moderator_columns.append((values - values.mean()).to_numpy(dtype=float))
        moderator_terms.append(moderator)
    else:
        levels = sorted(str(v) for v in set(data[moderator]))
        if len(levels) < 2:
            raise ValueError(f'The moderator "{moderator}" takes a single value in this data.')
        chosen_reference = moderator_reference if moderator_reference is not None else levels[0]
        if chosen_reference not in levels:
            raise ValueError(f'The moderator level "{chosen_reference}" does not occur.')
        text = data[moderator].astype(str)
        for level in levels:
            if level != chosen_reference:
                moderator_columns.append((text == level).to_numpy(dtype=float))
                moderator_terms.append(f"{moderator}[{level}]")
    interactions: list[str] = []
    interaction_columns: list[np.ndarray] = []
    for c_index, condition in enumerate(others, start=1):
        for m_column, m_term in zip(moderator_columns, moderator_terms, strict=True):
            interaction_columns.append(factor_design[:, c_index] * m_column)
            interactions.append(f"{condition}:{m_term}")
    main = np.column_stack(columns + moderator_columns)
    full = np.column_stack([main, *interaction_columns])
    if np.linalg.matrix_rank(full) < full.shape[1]:
        raise ValueError(
            f'Condition and "{moderator}" are confounded in this data (some combination '
            "never occurs), so their interaction cannot be estimated."
        )
    y = data["value_numeric"].to_numpy(dtype=float)
    if not numeric:
        cells = data.groupby([data[factor], data[moderator].astype(str)])["value_numeric"]
        shares = cells.mean()
        if bool(shares.isin([0.0, 1.0]).any()):
            raise ValueError(
                "Every answer is the same in some condition x moderator cell: the "
                "interaction's odds ratio is infinite and the regression undefined."
            )
    model = sm.GLM(y, full, family=sm.families.Binomial())
    if cluster:
        groups = pd.factorize(data["participant_id"])[0]
        result = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
        n_clusters = int(groups.max()) + 1
    else:
        result = model.fit()
        n_clusters = len(data)
    reduced = sm.GLM(y, main, family=sm.families.Binomial()).fit()
    params = np.asarray(result.params, dtype=float)
    covariance = np.asarray(result.cov_params(), dtype=float)
    se = np.sqrt(np.diag(covariance))
    table = _wald_table(terms + moderator_terms + interactions, params, se, confidence)
    tail = slice(main.shape[1], full.shape[1])
    g = params[tail]
    wald = float(g @ np.linalg.solve(covariance[tail, tail], g))
    lr = max(0.0, 2.0 * float(result.llf - reduced.llf))
    df_test = len(interactions)
    return ModeratorFit(
        table=table,
        moderator=moderator,
        numeric=numeric,
        moderator_reference=chosen_reference,
        interactions=interactions,
        wald_chi2=wald,
        wald_df=df_test,
        wald_p=float(sps.chi2.sf(wald, df_test)),
        lr_chi2=lr,
        lr_p=float(sps.chi2.sf(lr, df_test)),
        n_obs=len(data),
        n_clusters=n_clusters,
        dropped=dropped,
        cov_type="cluster" if cluster else "nonrobust",
        confidence=confidence,
    )
