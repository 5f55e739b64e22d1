"""More than two conditions: the omnibus test of equal "yes" shares across all conditions
(the k-group chi-square of R ``prop.test``), every pair of conditions compared with the
p-values corrected for multiplicity (Holm or Benjamini-Hochberg, R ``pairwise.prop.test``
and ``p.adjust``), and the r x c chi-square of a multi-option answer by condition (R
``chisq.test``). The tests are scipy's; the corrections statsmodels'."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.stats import contingency
from statsmodels.stats.multitest import multipletests

from analysis.cells import cell_int
from analysis.stats.inputs import binary_values, check_counts
from analysis.stats.proportions import newcombe_interval

# The corrections a study may preregister (``surveys.Study.multiple_comparisons``), by the
# names the study stores, mapped to statsmodels' ``multipletests`` methods.
HOLM = "holm"
BH = "bh"
ADJUSTMENTS = {HOLM: "holm", BH: "fdr_bh"}
ADJUSTMENT_NAMES = {HOLM: "Holm", BH: "Benjamini-Hochberg"}


def p_adjust(p_values: Sequence[float] | np.ndarray, method: str = HOLM) -> np.ndarray:
    """Adjusted p-values as R ``p.adjust(p, method)`` for ``method`` "holm" (Holm 1979,
    step-down; controls the family-wise error rate under any dependence) or "bh"
    (Benjamini & Hochberg 1995, step-up; controls the false discovery rate for
    independent or positively dependent tests). NaN p-values stay NaN and do not count
    towards the number of tests. Computed by statsmodels' ``multipletests``."""
    if method not in ADJUSTMENTS:
        raise ValueError(f"unknown adjustment {method!r}; use one of {sorted(ADJUSTMENTS)}")
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = ~np.isnan(p)
    if finite.any():
        adjusted[finite] = multipletests(p[finite], method=ADJUSTMENTS[method])[1]
    return adjusted


@dataclass(frozen=True)
class ContingencyTest:
    """Result of a Pearson chi-square test of independence on an r x c table: the
    statistic, its degrees of freedom and p-value, the table's total and smallest
    expected count (below about 5 the chi-square approximation is doubtful), Cramér's V
    and whether Yates' correction was applied (only ever on a 2 x 2 table). The table
    itself, with its row and column labels, is kept for display."""

    statistic: float
    df: int
    p_value: float
    n: int
    min_expected: float
    cramers_v: float
    correction: bool
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    observed: tuple[tuple[int, ...], ...]


def contingency_test(
    table: pd.DataFrame | np.ndarray | Sequence[Sequence[int]], correction: bool = True
) -> ContingencyTest:
    """Pearson chi-square test of independence of the rows and columns of a table of
    counts, as R ``chisq.test(table)``: ``sum (O - E)^2 / E`` with ``E`` from the margins,
    ``(r-1)(c-1)`` degrees of freedom; on a 2 x 2 table with ``correction`` Yates'
    continuity correction, as R (scipy's ``chi2_contingency`` computes it).
    Rows or columns with no count at all are dropped first (R would return NaN; they
    carry no information about independence). Cramér's V is
    ``sqrt(chi2 / (n (min(r, c) - 1)))`` without correction (scipy's ``association``).
    Assumptions: independent observations (one per cell count), expected counts of
    roughly 5 or more. With fewer than two non-empty rows or columns the test is
    undefined and the statistic and p-value are NaN."""
    frame = pd.DataFrame(table)
    counts = frame.to_numpy(dtype=float)
    if counts.ndim != 2 or np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise ValueError("a contingency table holds non-negative whole counts")
    keep_rows = counts.sum(axis=1) > 0
    keep_columns = counts.sum(axis=0) > 0
    frame = frame.loc[keep_rows, keep_columns]
    counts = counts[np.ix_(keep_rows, keep_columns)]
    rows = tuple(str(label) for label in frame.index)
    columns = tuple(str(label) for label in frame.columns)
    observed = tuple(tuple(int(v) for v in row) for row in counts)
    n = int(counts.sum())
    if counts.shape[0] < 2 or counts.shape[1] < 2:
        nan = math.nan
        return ContingencyTest(nan, 0, nan, n, nan, nan, False, rows, columns, observed)
    result = sps.chi2_contingency(counts, correction=correction)
    df = int(result.dof)
    return ContingencyTest(
        statistic=float(result.statistic),
        df=df,
        p_value=float(result.pvalue),
        n=n,
        min_expected=float(np.min(result.expected_freq)),
        cramers_v=float(
            contingency.association(counts.astype(np.int64), method="cramer", correction=False)
        ),
        correction=correction and df == 1,
        rows=rows,
        columns=columns,
        observed=observed,
    )


def k_proportions_test(successes: Sequence[int], totals: Sequence[int]) -> ContingencyTest:
    """Omnibus test that k proportions ``successes[i] / totals[i]`` are all equal, as R
    ``prop.test(successes, totals)`` with k > 2 groups: the Pearson chi-square on the
    k x 2 table of yes and no counts, k - 1 degrees of freedom (no continuity correction:
    R applies Yates only with two groups, and so does this function through
    :func:`contingency_test`). Assumptions: independent binomial samples, expected counts
    of roughly 5 or more. Raises ValueError for impossible counts."""
    if len(successes) != len(totals):
        raise ValueError("successes and totals must have the same length")
    for x, n in zip(successes, totals, strict=True):
        check_counts(x, n)
    table = [[x, n - x] for x, n in zip(successes, totals, strict=True)]
    return contingency_test(pd.DataFrame(table, columns=["yes", "no"]))


def omnibus_proportions(df: pd.DataFrame) -> ContingencyTest:
    """:func:`k_proportions_test` over every condition of a yes/no question.

    Input columns: ``condition``, ``value_numeric`` (1 = yes, 0 = no; missing values
    ignored). Rows of the result are the conditions, sorted by name. When every answer is
    the same (a column of the table empty) the test is undefined: NaN statistic and p.
    Assumption: independent ratings (see ``proportions_by_condition`` on clustering)."""
    data = binary_values(df)
    grouped = data.groupby("condition", sort=True)["value_numeric"].agg(["size", "sum"])
    table = pd.DataFrame(
        {"yes": grouped["sum"].astype(int), "no": (grouped["size"] - grouped["sum"]).astype(int)}
    )
    return contingency_test(table)


PAIRWISE_COLUMNS = [
    "condition",
    "other",
    "n",
    "share",
    "other_n",
    "other_share",
    "difference",
    "ci_low",
    "ci_high",
    "chi2",
    "p_value",
    "p_adjusted",
    "adjustment",
]


def pairwise_proportions(
    df: pd.DataFrame, method: str = HOLM, confidence: float = 0.95, correction: bool = True
) -> pd.DataFrame:
    """Every pair of conditions compared, the p-values adjusted for the number of pairs,
    as R ``pairwise.prop.test(x, n, p.adjust.method=method)``.

    Input columns: as :func:`omnibus_proportions`. For each pair (``condition`` before
    ``other`` in name order): both shares, ``difference = share - other_share`` with its
    Newcombe (method 10) interval, the 2 x 2 chi-square (Yates-corrected when
    ``correction``, as R's default) and its p-value, and ``p_adjusted`` by ``method``
    ("holm" or "bh", :func:`p_adjust`) over all pairs. Pairs whose table has an empty
    column (both conditions all yes or all no) have a NaN p that does not count.
    Assumptions: independent ratings; large-sample chi-square per pair."""
    if method not in ADJUSTMENTS:
        raise ValueError(f"unknown adjustment {method!r}; use one of {sorted(ADJUSTMENTS)}")
    data = binary_values(df)
    grouped = data.groupby("condition", sort=True)["value_numeric"].agg(["size", "sum"])
    rows = []
    for a, b in itertools.combinations(grouped.index, 2):
        x1, n1 = cell_int(grouped.at[a, "sum"]), cell_int(grouped.at[a, "size"])
        x2, n2 = cell_int(grouped.at[b, "sum"]), cell_int(grouped.at[b, "size"])
        test = contingency_test([[x1, n1 - x1], [x2, n2 - x2]], correction=correction)
        low, high = newcombe_interval(x1, n1, x2, n2, confidence)
        rows.append(
            {
                "condition": str(a),
                "other": str(b),
                "n": n1,
                "share": x1 / n1,
                "other_n": n2,
                "other_share": x2 / n2,
                "difference": x1 / n1 - x2 / n2,
                "ci_low": low,
                "ci_high": high,
                "chi2": test.statistic,
                "p_value": test.p_value,
                "p_adjusted": math.nan,
                "adjustment": method,
            }
        )
    result = pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)
    result["p_adjusted"] = p_adjust(result["p_value"].to_numpy(dtype=float), method)
    return result


def answers_by_condition(df: pd.DataFrame, options: Sequence[str] | None = None) -> pd.DataFrame:
    """The condition x answer table of counts of a multi-option question (one row per
    condition, sorted; one column per option, in ``options``' order when given, options
    nobody chose included as zeros; answers outside ``options`` are left out).
    Input columns: ``condition``, ``value`` (the answer text; missing or empty ignored)."""
    missing = {"condition", "value"} - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    data = df.loc[df["value"].notna() & (df["value"].astype(str) != ""), ["condition", "value"]]
    table = pd.crosstab(data["condition"].astype(str), data["value"].astype(str))
    if options is not None:
        table = table.reindex(columns=[str(o) for o in options], fill_value=0)
    table.index.name = None
    table.columns.name = None
    return table.sort_index()
