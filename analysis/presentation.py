"""Turn a StudyReport into display strings, once, for the command line and the results page,
so both show the same numbers rounded the same way."""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis import stats
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
    exact_ci: str


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
    odds_ratio: str
    or_ci: str


@dataclass(frozen=True)
class LikertRow:
    condition: str
    question: str
    n: int
    mean: str
    sd: str
    ci: str


@dataclass(frozen=True)
class RegressionRow:
    term: str
    log_odds: str
    se: str
    z: str
    p: str
    odds_ratio: str
    ci: str


@dataclass(frozen=True)
class PowerRow:
    condition: str
    reference: str
    rates: str
    n: str
    power: str
    n_for_80: str


def regression_rows(report: StudyReport) -> list[RegressionRow]:
    """The clustered logistic regression, odds ratios with their interval."""
    if report.regression is None:
        return []
    return [
        RegressionRow(
            term=str(row.term),
            log_odds=number(row.log_odds, 3),
            se=number(row.se, 3),
            z=number(row.z),
            p=p_value(row.p_value),
            odds_ratio=number(row.odds_ratio),
            ci=f"[{number(row.or_ci_low)}, {number(row.or_ci_high)}]",
        )
        for row in report.regression.table.itertuples(index=False)
    ]


def power_rows(report: StudyReport) -> list[PowerRow]:
    return [
        PowerRow(
            condition=str(row.condition),
            reference=str(row.reference),
            rates=f"{pct(row.share)} vs {pct(row.reference_share)}",
            n=f"{int(row.n)} vs {int(row.reference_n)}",
            power=pct(row.power),
            n_for_80="n/a" if _missing(row.n_for_80) else str(int(row.n_for_80)),
        )
        for row in report.power.itertuples(index=False)
    ]


def proportion_rows(report: StudyReport) -> list[ProportionRow]:
    return [
        ProportionRow(
            condition=str(row.condition),
            is_reference=row.condition == report.reference,
            n=int(row.n),
            successes=int(row.successes),
            share=pct(row.share),
            ci=f"[{pct(row.ci_low)}, {pct(row.ci_high)}]",
            exact_ci=f"[{pct(row.exact_low)}, {pct(row.exact_high)}]",
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
            odds_ratio=number(row.odds_ratio),
            or_ci=f"[{number(row.or_ci_low)}, {number(row.or_ci_high)}]",
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
            f"{r.share} {r.ci} (exact {r.exact_ci}){marker}"
        )

    comparisons = comparison_rows(report)
    if comparisons:
        lines += ["", "Comparisons with the reference (difference, 95% Newcombe interval)"]
    for c in comparisons:
        lines.append(
            f"  {c.condition} vs {c.reference}: diff {c.difference} {c.ci}, z={c.z}, "
            f"p={c.p} (Holm {c.p_holm}), chi2={c.chi2} (p={c.chi2_p}), "
            f"Yates chi2={c.chi2_yates} (p={c.chi2_yates_p}), Fisher p={c.fisher_p}, "
            f"h={c.cohens_h}, OR={c.odds_ratio} {c.or_ci}"
        )

    regression = regression_rows(report)
    if regression and report.regression is not None:
        fit = report.regression
        lines += [
            "",
            f"Logistic regression of {report.binary_question} on condition "
            f"(reference {fit.reference}; {fit.n_obs} ratings, {fit.n_clusters} participants; "
            "participant-clustered standard errors)",
        ]
        term_width = max(len(r.term) for r in regression)
        for r in regression:
            lines.append(
                f"  {r.term:<{term_width}}  log-odds {r.log_odds:>7}  se {r.se}  z={r.z}  "
                f"p={r.p}  odds {'' if r.term == '(intercept)' else 'ratio '}{r.odds_ratio} "
                f"{r.ci}"
            )

    power = power_rows(report)
    if power:
        lines += [
            "",
            "Power of each comparison (two-sided z test, alpha 0.05, at the observed rates)",
        ]
    for r in power:
        lines.append(
            f"  {r.condition} vs {r.reference}: {r.rates}, n {r.n}: power {r.power}; "
            f"n per condition for 80% power at these observed rates: {r.n_for_80}"
        )
    # A fixed yardstick: the rates of the GPT-2 774M release study (72% vs 83% credible).
    gpt2_n = math.ceil(stats.sample_size_two_proportions(0.72, 0.83, alpha=0.05, power=0.8))
    lines += [
        "",
        f"Planning: detecting 72% vs 83% credible (GPT-2 774M vs real articles) with 80% "
        f"power needs {gpt2_n} ratings per condition.",
    ]

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
