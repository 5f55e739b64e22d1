"""Rating scales: the Kreps et al. credibility index, means per condition with t intervals,
tests across conditions (t, ANOVA, Kruskal-Wallis) and reliability (Cronbach's alpha)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats.inputs import z_critical

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


MEAN_COLUMNS = ["condition", "n", "mean", "sd", "ci_low", "ci_high"]


def means_by_condition(
    df: pd.DataFrame, value: str = "index", confidence: float = 0.95
) -> pd.DataFrame:
    """Mean of column ``value`` per condition with the one-sample t interval
    ``mean +- t(n-1) sd / sqrt(n)`` (R ``t.test(x)$conf.int``). Input columns:
    ``condition`` and ``value``. With one observation sd and interval are NaN.
    Assumptions: independent observations, mean close to normal."""
    z_critical(confidence)
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
    z_critical(confidence)
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
