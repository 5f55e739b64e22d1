"""Display rows for a replication against a published result (``StudyReport.replication``):
side by side per condition, the original estimate, this study's with its interval, the
small-telescopes test and the TOST equivalence test, each with its conclusion in words.
Shared by the results page, the HTML report and ``manage.py analyze``
(``analysis.presentation`` calls these)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from analysis.cells import cell_float
from analysis.presentation import number, p_value, pct, pp
from analysis.services import StudyReport

ALPHA = 0.05  # the level both replication tests are read at (analysis.stats.replication)


def _missing(value: float) -> bool:
    return math.isnan(value)


@dataclass(frozen=True)
class ReplicationRow:
    condition: str
    reference: str
    original: str  # "72.0% (n 500) vs 83.0% (n 500)"
    original_difference: str  # "-11.0 pp"
    estimate: str  # "70.0% [63.3%, 75.9%] (n 200) vs ..."
    difference: str  # "-10.0 pp [-18.1, -1.6]"
    telescope: str  # "h33 = -0.10 (-4.1 pp); replication h = ..., z = ..., p = ..."
    telescope_conclusion: str
    equivalence: str  # "bounds +/-10.0 pp: p (diff > -10) = ..., p (diff < +10) = ..."
    equivalence_conclusion: str


# ``row``: a namedtuple of ``report_tables.REPLICATION_COLUMNS`` from itertuples().


def _original(row: Any) -> tuple[str, str]:
    share = cell_float(row.original_share)
    n = cell_float(row.original_n)
    ref_share = cell_float(row.original_reference_share)
    ref_n = cell_float(row.original_reference_n)

    def one(rate: float, size: float) -> str:
        if _missing(rate) and _missing(size):
            return "not reported"
        return f"{pct(rate)} (n {'not reported' if _missing(size) else int(size)})"

    difference = cell_float(row.original_difference)
    return (
        f"{one(share, n)} vs {one(ref_share, ref_n)}",
        "n/a" if _missing(difference) else f"{pp(difference)} pp",
    )


def _estimate(row: Any, report: StudyReport) -> tuple[str, str]:
    n = cell_float(row.ratings)
    if _missing(n):
        return "no analysed answers yet", "n/a"
    share = cell_float(row.share)
    low, high = cell_float(row.ci_low), cell_float(row.ci_high)
    reference = str(row.reference)
    ref = report.proportions.loc[report.proportions["condition"] == reference]
    ref_text = (
        f"{pct(cell_float(ref['share'].iloc[0]))} [{pct(cell_float(ref['ci_low'].iloc[0]))}, "
        f"{pct(cell_float(ref['ci_high'].iloc[0]))}] (n {int(ref['n'].iloc[0])})"
        if not ref.empty
        else "no answers yet"
    )
    estimate = f"{pct(share)} [{pct(low)}, {pct(high)}] (n {int(n)}) vs {ref_text}"
    difference = cell_float(row.difference)
    if _missing(difference):
        return estimate, "n/a"
    d_low = cell_float(row.diff_ci_low)
    d_high = cell_float(row.diff_ci_high)
    return estimate, f"{pp(difference)} pp [{pp(d_low)}, {pp(d_high)}]"


def _telescope(row: Any) -> tuple[str, str]:
    p = cell_float(row.telescope_p)
    if _missing(p):
        needs = (
            "needs answers in both conditions"
            if _missing(cell_float(row.ratings))
            else "needs the original rates and sample sizes of this condition and the "
            "reference, with a difference between them"
        )
        return f"not computed: {needs}", ""
    h33 = cell_float(row.h33)
    text = (
        f"d33 = Cohen's h {number(h33)} (the effect the original had 33% power to detect; "
        f"{pp(cell_float(row.d33_difference))} pp at the original reference "
        f"rate); original h {number(cell_float(row.original_h))}, replication h "
        f"{number(cell_float(row.replication_h))}; one-sided z = "
        f"{number(cell_float(row.telescope_z))}, p = {p_value(p)}"
    )
    if p < ALPHA:
        conclusion = (
            "The effect is significantly smaller than one the original study could detect "
            "(d33): the original's design was too small to have seen an effect this size."
        )
    else:
        conclusion = (
            "The effect is not significantly smaller than one the original study could "
            "detect (d33): consistent with an effect the original could have seen."
        )
    return text, conclusion


def _equivalence(row: Any) -> tuple[str, str]:
    bound = cell_float(row.equivalence_bound)
    if _missing(bound):
        return "not computed: no equivalence bound set", ""
    p = cell_float(row.tost_p)
    if _missing(p):
        return f"bounds ±{100 * bound:.1f} pp; not computed: needs answers in both", ""
    p_lower = cell_float(row.tost_p_lower)
    p_upper = cell_float(row.tost_p_upper)
    text = (
        f"bounds ±{100 * bound:.1f} pp: difference > -{100 * bound:.1f} pp, z = "
        f"{number(cell_float(row.tost_z_lower))}, p = {p_value(p_lower)}; "
        f"difference < +{100 * bound:.1f} pp, z = "
        f"{number(cell_float(row.tost_z_upper))}, p = {p_value(p_upper)}; "
        f"TOST p = {p_value(p)}"
    )
    if p < ALPHA:
        conclusion = (
            f"Equivalent: the difference to the reference is significantly within "
            f"±{100 * bound:.1f} percentage points."
        )
    else:
        conclusion = (
            f"Not shown equivalent: the difference may lie outside ±{100 * bound:.1f} "
            "percentage points."
        )
    return text, conclusion


def replication_rows(report: StudyReport) -> list[ReplicationRow]:
    """One display row per compared condition; empty without an original result."""
    if report.replication is None:
        return []
    rows = []
    for row in report.replication.itertuples(index=False):
        original, original_difference = _original(row)
        estimate, difference = _estimate(row, report)
        telescope, telescope_conclusion = _telescope(row)
        equivalence, equivalence_conclusion = _equivalence(row)
        rows.append(
            ReplicationRow(
                condition=str(row.condition),
                reference=str(row.reference),
                original=original,
                original_difference=original_difference,
                estimate=estimate,
                difference=difference,
                telescope=telescope,
                telescope_conclusion=telescope_conclusion,
                equivalence=equivalence,
                equivalence_conclusion=equivalence_conclusion,
            )
        )
    return rows


REPLICATION_METHOD = (
    "Small telescopes (Simonsohn 2015): d33 is the effect, on Cohen's h (arcsine) scale, "
    "that the original's two-sided z test at alpha 0.05 had 33% power to detect with its "
    "sample sizes (statsmodels NormalIndPower); the replication's h is tested one-sided "
    "against it. Equivalence: two one-sided Wald z tests (TOST) of the difference in "
    "credible shares against the bounds (statsmodels tost_proportions_2indep). Both at "
    "alpha 0.05, ratings counted as independent."
)


def replication_context(report: StudyReport) -> dict[str, object]:
    """The template context these rows add to ``presentation.table_context``."""
    return {
        "replication": replication_rows(report),
        "replication_shown": report.replication is not None,
        "replication_citation": report.replication_citation,
        "replication_method": REPLICATION_METHOD,
    }


def replication_lines(report: StudyReport) -> list[str]:
    """The replication section as text lines; empty without an original result."""
    if report.replication is None:
        return []
    lines = ["", "Replication of a published result"]
    if report.replication_citation:
        # One line, whatever line breaks the researcher typed.
        lines.append(f"  Original study: {' '.join(report.replication_citation.split())}")
    lines.append(f"  ({REPLICATION_METHOD})")
    for r in replication_rows(report):
        lines += [
            f"  {r.condition} vs {r.reference}",
            f"    original: {r.original}, difference {r.original_difference}",
            f"    this study: {r.estimate}, difference {r.difference}",
            f"    small telescopes: {r.telescope}",
        ]
        if r.telescope_conclusion:
            lines.append(f"      {r.telescope_conclusion}")
        lines.append(f"    equivalence: {r.equivalence}")
        if r.equivalence_conclusion:
            lines.append(f"      {r.equivalence_conclusion}")
    return lines
