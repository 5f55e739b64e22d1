"""Turn a StudyReport into display strings, once, for the command line and the results page,
so both show the same numbers rounded the same way."""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.services import StudyReport


def pct(share: float, digits: int = 1) -> str:
    """0.8302 -> "83.0%"."""
    return "n/a" if _missing(share) else f"{100 * share:.{digits}f}%"


def pp(difference: float, digits: int = 1) -> str:
    """A difference of proportions in percentage points, signed: -0.11 -> "-11.0"."""
    return "n/a" if _missing(difference) else f"{100 * difference:+.{digits}f}"


def number(value: float, digits: int = 2) -> str:
    return "n/a" if _missing(value) else f"{value:.{digits}f}"


def p_value(value: float) -> str:
    """Three decimals, and "<0.001" below that (more digits would be false precision)."""
    if _missing(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class ProportionRow:
    condition: str
    is_reference: bool
    n: int
    successes: int
    share: str
    ci: str


@dataclass(frozen=True)
class ComparisonRow:
    condition: str
    reference: str
    difference: str
    ci: str
    z: str
    p: str
    p_holm: str
    chi2: str
    chi2_p: str
    chi2_yates: str
    chi2_yates_p: str
    fisher_p: str
    cohens_h: str


@dataclass(frozen=True)
class LikertRow:
    condition: str
    question: str
    n: int
    mean: str
    sd: str
    ci: str


def proportion_rows(report: StudyReport) -> list[ProportionRow]:
    return [
        ProportionRow(
            condition=str(row.condition),
            is_reference=row.condition == report.reference,
            n=int(row.n),
            successes=int(row.successes),
            share=pct(row.share),
            ci=f"[{pct(row.ci_low)}, {pct(row.ci_high)}]",
        )
        for row in report.proportions.itertuples(index=False)
    ]


def comparison_rows(report: StudyReport) -> list[ComparisonRow]:
    return [
        ComparisonRow(
            condition=str(row.condition),
            reference=str(row.reference),
            difference=f"{pp(row.difference)} pp",
            ci=f"[{pp(row.ci_low)}, {pp(row.ci_high)}]",
            z=number(row.z),
            p=p_value(row.p_value),
            p_holm=p_value(row.p_holm),
            chi2=number(row.chi2),
            chi2_p=p_value(row.chi2_p),
            chi2_yates=number(row.chi2_yates),
            chi2_yates_p=p_value(row.chi2_yates_p),
            fisher_p=p_value(row.fisher_p),
            cohens_h=number(row.cohens_h),
        )
        for row in report.comparisons.itertuples(index=False)
    ]


def likert_rows(report: StudyReport) -> list[LikertRow]:
    return [
        LikertRow(
            condition=str(row.condition),
            question=str(row.question_key),
            n=int(row.n),
            mean=number(row.mean),
            sd=number(row.sd),
            ci=f"[{number(row.ci_low)}, {number(row.ci_high)}]",
        )
        for row in report.likert.itertuples(index=False)
    ]


def report_as_text(report: StudyReport) -> str:
    """The plain-text report printed by ``manage.py analyze``."""
    lines = [f"Study: {report.study_title} ({report.study_slug})", "", "Exclusions"]
    width = max(len(step.label) for step in report.ledger)
    for step in report.ledger:
        excluded = f"-{step.excluded}" if step.key not in ("recruited", "analysed") else ""
        lines.append(f"  {step.label:<{width}}  {excluded:>6}  {step.remaining:>6}")

    lines += ["", f'Credibility ("{report.binary_question or "none"}" answered yes)']
    proportions = proportion_rows(report)
    if not proportions:
        lines.append("  no analysed answers yet")
    name_width = max([len(r.condition) for r in proportions] + [4])
    for r in proportions:
        marker = "  (reference)" if r.is_reference else ""
        lines.append(
            f"  {r.condition:<{name_width}}  n={r.n:<5}  {report.binary_question} "
            f"{r.share} {r.ci}{marker}"
        )

    comparisons = comparison_rows(report)
    if comparisons:
        lines += ["", "Comparisons with the reference (difference, 95% Newcombe interval)"]
    for c in comparisons:
        lines.append(
            f"  {c.condition} vs {c.reference}: diff {c.difference} {c.ci}, z={c.z}, "
            f"p={c.p} (Holm {c.p_holm}), chi2={c.chi2} (p={c.chi2_p}), "
            f"Yates chi2={c.chi2_yates} (p={c.chi2_yates_p}), Fisher p={c.fisher_p}, "
            f"h={c.cohens_h}"
        )

    likert = likert_rows(report)
    if likert:
        lines += ["", "Ratings (mean, sd, 95% t interval)"]
    for r in likert:
        lines.append(
            f"  {r.condition:<{name_width}}  {r.question:<12}  n={r.n:<5}  mean {r.mean}  "
            f"sd {r.sd}  {r.ci}"
        )
    for note in report.notes:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"
