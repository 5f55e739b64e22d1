"""Recompute the headline table of a Credence study report from the archive's CSV files.

Standalone: Python 3.10+ with pandas, scipy and statsmodels only (no Credence, no Django).
Run it in the unpacked archive:

    python recompute.py            # or: python recompute.py path/to/unpacked/archive

It reads ``analysis.json`` (which yes/no question, which reference condition),
``participants_wide.csv`` (who was analysed) and ``responses_long.csv`` (the answers),
recomputes

- the share of "yes" per condition with its Wilson 95% interval;
- each condition against the reference: the difference with Newcombe's hybrid score
  interval (method 10), the pooled two-proportion z test (two-sided) with Holm-adjusted
  p-values, Pearson's chi-square without and with Yates' correction, Fisher's exact test
  and the odds ratio with Woolf's interval;
- the logistic regression of the answer on condition with participant-clustered standard
  errors (statsmodels GLM, Binomial family, ``cov_type="cluster"``);

prints them with the precision of the report (shares in percent with one decimal,
statistics with two, p-values with three or "<0.001") and compares every number with the
report's own tables (``table_proportions.csv``, ``table_comparisons.csv``,
``table_regression.csv``). Exit status 0 when all agree to the printed precision, 1 when
any differs (each difference is printed), 2 when a file is missing.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

INTERCEPT = "(intercept)"


# -------------------------------------------------------------------------------------
# How the report prints numbers (analysis/presentation.py in Credence)


def pct(value: float) -> str:
    return "n/a" if _missing(value) else f"{100 * value:.1f}%"


def pp(value: float) -> str:
    return "n/a" if _missing(value) else f"{100 * value:+.1f}"


def number(value: float, digits: int = 2) -> str:
    return "n/a" if _missing(value) else f"{value:.{digits}f}"


def p_value(value: float) -> str:
    if _missing(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def count(value: float) -> str:
    return "n/a" if _missing(value) else str(int(value))


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


Format = Callable[[float], str]


# Each compared column and the format the report prints it with.
PROPORTION_FORMATS: dict[str, Format] = {
    "n": count,
    "successes": count,
    "share": pct,
    "ci_low": pct,
    "ci_high": pct,
}
COMPARISON_FORMATS: dict[str, Format] = {
    "n": count,
    "reference_n": count,
    "difference": pp,
    "ci_low": pp,
    "ci_high": pp,
    "z": number,
    "p_value": p_value,
    "p_holm": p_value,
    "chi2": number,
    "chi2_p": p_value,
    "chi2_yates": number,
    "chi2_yates_p": p_value,
    "fisher_p": p_value,
    "odds_ratio": number,
    "or_ci_low": number,
    "or_ci_high": number,
}
REGRESSION_FORMATS: dict[str, Format] = {
    "log_odds": lambda v: number(v, 3),
    "se": lambda v: number(v, 3),
    "z": number,
    "p_value": p_value,
    "odds_ratio": number,
    "or_ci_low": number,
    "or_ci_high": number,
}


# -------------------------------------------------------------------------------------
# The data


def analysed_answers(folder: Path, question: str) -> pd.DataFrame:
    """The analysed participants' answers to the yes/no question: participant_id,
    condition, value_numeric (0/1)."""
    wide = pd.read_csv(folder / "participants_wide.csv", usecols=["participant_id", "analysed"])
    analysed = wide.loc[wide["analysed"].astype(str) == "True", "participant_id"]
    long = pd.read_csv(
        folder / "responses_long.csv",
        usecols=["participant_id", "condition", "question_key", "value_numeric"],
        dtype={"condition": str, "question_key": str},
        keep_default_na=False,
        na_values={"value_numeric": [""]},
    )
    answers = long.loc[
        (long["question_key"] == question)
        & long["participant_id"].isin(set(analysed))
        & long["value_numeric"].notna()
    ]
    return answers[["participant_id", "condition", "value_numeric"]].reset_index(drop=True)


# -------------------------------------------------------------------------------------
# The statistics


def wilson(successes: int, n: int) -> tuple[float, float]:
    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    return float(low), float(high)


def proportions(answers: pd.DataFrame, reference: str | None) -> pd.DataFrame:
    grouped = answers.groupby("condition", sort=True)["value_numeric"].agg(["size", "sum"])
    rows = []
    for condition, n, successes in zip(grouped.index, grouped["size"], grouped["sum"], strict=True):
        low, high = wilson(int(successes), int(n))
        rows.append(
            {
                "condition": condition,
                "n": int(n),
                "successes": int(successes),
                "share": successes / n,
                "ci_low": low,
                "ci_high": high,
            }
        )
    table = pd.DataFrame(rows)
    if reference is not None and not table.empty:
        first = table["condition"] == reference
        table = pd.concat([table.loc[first], table.loc[~first]], ignore_index=True)
    return table


def _chi_square(table: list[list[int]], correction: bool) -> tuple[float, float]:
    if 0 in (table[0][0] + table[1][0], table[0][1] + table[1][1]):
        return math.nan, math.nan
    result = sps.chi2_contingency(table, correction=correction)
    return float(result.statistic), float(result.pvalue)


def comparison(x1: int, n1: int, x2: int, n2: int) -> dict[str, float]:
    p1, p2 = x1 / n1, x2 / n2
    if 0 < x1 + x2 < n1 + n2:
        z, p = (float(v) for v in proportions_ztest([x1, x2], [n1, n2]))
    else:
        z = p = math.nan
    l1, u1 = wilson(x1, n1)
    l2, u2 = wilson(x2, n2)
    d = p1 - p2
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    chi2, chi2_p = _chi_square(table, correction=False)
    yates, yates_p = _chi_square(table, correction=True)
    cells = [x1, n1 - x1, x2, n2 - x2]
    if min(cells) == 0:
        ratio = low = high = math.nan
    else:
        a, b, c, e = (float(cell) for cell in cells)
        log_or = math.log(a * e / (b * c))
        se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / e)
        crit = float(sps.norm.ppf(0.975))
        ratio, low, high = (math.exp(log_or + k * crit * se) for k in (0, -1, 1))
    return {
        "n": n1,
        "reference_n": n2,
        "difference": d,
        "ci_low": d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        "ci_high": d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
        "z": z,
        "p_value": p,
        "chi2": chi2,
        "chi2_p": chi2_p,
        "chi2_yates": yates,
        "chi2_yates_p": yates_p,
        "fisher_p": float(sps.fisher_exact(table, alternative="two-sided").pvalue),
        "odds_ratio": ratio,
        "or_ci_low": low,
        "or_ci_high": high,
    }


def comparisons(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    ref = table.loc[table["condition"] == reference].to_dict(orient="records")[0]
    rows = []
    for row in table.loc[table["condition"] != reference].to_dict(orient="records"):
        result = comparison(
            int(row["successes"]), int(row["n"]), int(ref["successes"]), int(ref["n"])
        )
        rows.append({"condition": row["condition"], **result})
    result_table = pd.DataFrame(rows)
    p = result_table["p_value"].to_numpy(dtype=float)
    holm = np.full(p.shape, np.nan)
    finite = ~np.isnan(p)
    if finite.any():
        holm[finite] = multipletests(p[finite], method="holm")[1]
    result_table["p_holm"] = holm
    return result_table


def regression(answers: pd.DataFrame, reference: str) -> pd.DataFrame:
    """logit P(yes) = b0 + sum_c b_c [condition = c], reference as baseline, errors
    clustered by participant (statsmodels' default small-sample factor)."""
    others = sorted(c for c in set(answers["condition"]) if c != reference)
    design = np.column_stack(
        [np.ones(len(answers))]
        + [(answers["condition"] == c).to_numpy(dtype=float) for c in others]
    )
    groups = pd.factorize(answers["participant_id"])[0]
    model = sm.GLM(
        answers["value_numeric"].to_numpy(dtype=float), design, family=sm.families.Binomial()
    )
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
    params = np.asarray(fit.params, dtype=float)
    se = np.asarray(fit.bse, dtype=float)
    crit = float(sps.norm.ppf(0.975))
    z = params / se
    return pd.DataFrame(
        {
            "term": [INTERCEPT, *others],
            "log_odds": params,
            "se": se,
            "z": z,
            "p_value": 2.0 * sps.norm.sf(np.abs(z)),
            "odds_ratio": np.exp(params),
            "or_ci_low": np.exp(params - crit * se),
            "or_ci_high": np.exp(params + crit * se),
        }
    )


# -------------------------------------------------------------------------------------
# Printing and comparing


def _agree(mine: float, theirs: float, formatter: Format) -> bool:
    if math.isnan(mine) or math.isnan(theirs):
        return math.isnan(mine) and math.isnan(theirs)
    # Equal when printed alike; a value on a rounding boundary may print differently
    # after a last-bit difference, which is not a disagreement.
    return formatter(mine) == formatter(theirs) or math.isclose(
        mine, theirs, rel_tol=1e-9, abs_tol=1e-12
    )


def compare(
    name: str, mine: pd.DataFrame, theirs: pd.DataFrame, key: str, formats: dict[str, Format]
) -> list[str]:
    """The differences between a recomputed table and the report's, one line each."""
    problems: list[str] = []
    mine_keys = [str(k) for k in mine[key]] if not mine.empty else []
    their_keys = [str(k) for k in theirs[key]] if not theirs.empty else []
    if mine_keys != their_keys:
        return [f"{name}: rows {mine_keys} recomputed, {their_keys} in the report"]
    for (_, a), (_, b) in zip(mine.iterrows(), theirs.iterrows(), strict=True):
        for column, formatter in formats.items():
            mine_value, their_value = float(a[column]), float(b[column])
            if not _agree(mine_value, their_value, formatter):
                problems.append(
                    f"{name} {a[key]} {column}: recomputed {formatter(mine_value)}, "
                    f"report {formatter(their_value)}"
                )
    return problems


def _read_table(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(
        folder / name, keep_default_na=False, na_values=[""], dtype={"term": str, "condition": str}
    )


def print_tables(
    table: pd.DataFrame, compared: pd.DataFrame, fitted: pd.DataFrame | None, reference: str
) -> None:
    print("Credibility (share answering yes, Wilson 95% interval)")
    for row in table.to_dict(orient="records"):
        marker = "  (reference)" if row["condition"] == reference else ""
        print(
            f"  {row['condition']}  n={row['n']}  {pct(row['share'])} "
            f"[{pct(row['ci_low'])}, {pct(row['ci_high'])}]{marker}"
        )
    if not compared.empty:
        print("")
        print("Comparisons with the reference (difference, 95% Newcombe interval)")
    for c in compared.to_dict(orient="records"):
        print(
            f"  {c['condition']} vs {reference}: diff {pp(c['difference'])} pp "
            f"[{pp(c['ci_low'])}, {pp(c['ci_high'])}], z={number(c['z'])}, "
            f"p={p_value(c['p_value'])} (Holm {p_value(c['p_holm'])}), "
            f"chi2={number(c['chi2'])} (p={p_value(c['chi2_p'])}), "
            f"Yates chi2={number(c['chi2_yates'])} (p={p_value(c['chi2_yates_p'])}), "
            f"Fisher p={p_value(c['fisher_p'])}, OR={number(c['odds_ratio'])} "
            f"[{number(c['or_ci_low'])}, {number(c['or_ci_high'])}]"
        )
    if fitted is not None:
        print("")
        print("Logistic regression on condition (participant-clustered errors)")
        for r in fitted.to_dict(orient="records"):
            print(
                f"  {r['term']}  log-odds {number(r['log_odds'], 3)}  se {number(r['se'], 3)}  "
                f"z={number(r['z'])}  p={p_value(r['p_value'])}  "
                f"odds {number(r['odds_ratio'])} "
                f"[{number(r['or_ci_low'])}, {number(r['or_ci_high'])}]"
            )


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    try:
        settings = json.loads((folder / "analysis.json").read_text(encoding="utf-8"))
        question, reference = settings["binary_question"], settings["reference"]
        if question is None or reference is None:
            print("The report has no yes/no question or no reference: nothing to recompute.")
            return 0
        answers = analysed_answers(folder, question)
        report_proportions = _read_table(folder, "table_proportions.csv")
        report_comparisons = _read_table(folder, "table_comparisons.csv")
        report_regression = _read_table(folder, "table_regression.csv")
    except (OSError, KeyError, ValueError) as error:
        print(f"Cannot read the archive: {error}", file=sys.stderr)
        return 2
    table = proportions(answers, reference)
    problems = compare("proportions", table, report_proportions, "condition", PROPORTION_FORMATS)
    compared = pd.DataFrame()
    fitted = None
    if len(table) > 1 and reference in set(table["condition"]):
        compared = comparisons(table, reference)
        problems += compare(
            "comparison", compared, report_comparisons, "condition", COMPARISON_FORMATS
        )
        if not report_regression.empty:
            fitted = regression(answers, reference)
            problems += compare("regression", fitted, report_regression, "term", REGRESSION_FORMATS)
    print_tables(table, compared, fitted, reference)
    print("")
    if problems:
        print("DIFFERENT from the report:")
        for line in problems:
            print(f"  {line}")
        return 1
    print("All recomputed numbers agree with the report to the printed precision.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
