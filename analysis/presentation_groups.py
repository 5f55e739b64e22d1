"""Display rows for the tests of designs with more than two conditions (the omnibus test,
the pairwise comparisons with their correction, the r x c tests of multi-option answers)
and for detection accuracy against guessing, shared by the results page, the HTML report
and ``manage.py analyze`` (``analysis.presentation`` calls these)."""

from __future__ import annotations

from dataclasses import dataclass

from analysis import stats
from analysis.cells import cell_float, cell_int
from analysis.presentation import number, p_value, pct, pp
from analysis.services import StudyReport


def chi_square_line(test: stats.ContingencyTest) -> str:
    """ "chi-squared(3) = 12.60, p = 0.006, Cramér's V = 0.17 (377 ratings)"."""
    if test.df == 0:
        return f"not testable: fewer than two rows or columns have answers ({test.n} ratings)"
    yates = ", Yates-corrected" if test.correction else ""
    small = (
        f"; smallest expected count {number(test.min_expected, 1)}, below 5: the "
        "chi-square approximation is doubtful"
        if test.min_expected < 5
        else ""
    )
    return (
        f"chi-squared({test.df}{yates}) = {number(test.statistic)}, "
        f"p = {p_value(test.p_value)}, Cramér's V = {number(test.cramers_v)} "
        f"({test.n} ratings{small})"
    )


def omnibus_line(report: StudyReport) -> str:
    """The omnibus test of equal credible shares, in words; empty with fewer than three
    conditions."""
    if report.omnibus is None:
        return ""
    return (
        f"All {len(report.omnibus.rows)} conditions rated credible equally often "
        f'("{report.binary_question}" answered yes)? Pearson '
        f"{chi_square_line(report.omnibus)}; as R prop.test with k groups."
    )


def adjustment_name(report: StudyReport) -> str:
    return stats.ADJUSTMENT_NAMES.get(report.multiple_comparisons, report.multiple_comparisons)


@dataclass(frozen=True)
class PairwiseRow:
    condition: str
    other: str
    rates: str
    difference: str
    ci: str
    chi2: str
    p: str
    p_adjusted: str


def pairwise_rows(report: StudyReport) -> list[PairwiseRow]:
    """Every pair of conditions: difference with its Newcombe interval, the Yates
    chi-square, its p and the p corrected by the study's preregistered method."""
    return [
        PairwiseRow(
            condition=str(row.condition),
            other=str(row.other),
            rates=f"{pct(cell_float(row.share))} vs {pct(cell_float(row.other_share))}",
            difference=f"{pp(cell_float(row.difference))} pp",
            ci=f"[{pp(cell_float(row.ci_low))}, {pp(cell_float(row.ci_high))}]",
            chi2=number(cell_float(row.chi2)),
            p=p_value(cell_float(row.p_value)),
            p_adjusted=p_value(cell_float(row.p_adjusted)),
        )
        for row in report.pairwise.itertuples(index=False)
    ]


@dataclass(frozen=True)
class AnswerTest:
    question: str
    options: tuple[str, ...]
    rows: list[tuple[str, tuple[int, ...]]]
    test: str


def answer_test_rows(report: StudyReport) -> list[AnswerTest]:
    """Each multi-option question: its condition x option counts and the r x c test."""
    return [
        AnswerTest(
            question=key,
            options=test.columns,
            rows=list(zip(test.rows, test.observed, strict=True)),
            test=chi_square_line(test),
        )
        for key, test in report.answer_tests
    ]


@dataclass(frozen=True)
class DetectionBinomialRow:
    condition: str
    correct: str
    accuracy: str
    ci: str
    p: str


def detection_binomial_rows(report: StudyReport) -> list[DetectionBinomialRow]:
    """Detection accuracy per condition against guessing (exact binomial test)."""
    if report.detection_binomial is None:
        return []
    return [
        DetectionBinomialRow(
            condition=str(row.condition),
            correct=f"{cell_int(row.correct)} of {cell_int(row.decided)}",
            accuracy=pct(cell_float(row.accuracy)),
            ci=f"[{pct(cell_float(row.ci_low))}, {pct(cell_float(row.ci_high))}]",
            p=p_value(cell_float(row.p_value)),
        )
        for row in report.detection_binomial.itertuples(index=False)
    ]


def group_context(report: StudyReport) -> dict[str, object]:
    """The template context these tables add to ``presentation.table_context``."""
    return {
        "omnibus": omnibus_line(report),
        "pairwise": pairwise_rows(report),
        "adjustment": adjustment_name(report),
        "answer_tests": answer_test_rows(report),
        "detection_binomial": detection_binomial_rows(report),
    }


def group_lines(report: StudyReport) -> list[str]:
    """The omnibus test, the pairwise comparisons and the r x c tests as text lines."""
    lines: list[str] = []
    omnibus = omnibus_line(report)
    if omnibus:
        lines += ["", omnibus]
    pairs = pairwise_rows(report)
    if pairs:
        lines.append(
            f"Every pair of conditions (difference, 95% Newcombe interval; Yates chi-square; "
            f"p corrected by {adjustment_name(report)}, as preregistered)"
        )
    for r in pairs:
        lines.append(
            f"  {r.condition} vs {r.other}: {r.rates}, diff {r.difference} {r.ci}, "
            f"chi2={r.chi2}, p={r.p} ({adjustment_name(report)} {r.p_adjusted})"
        )
    for answer in answer_test_rows(report):
        lines += ["", f"Answers to {answer.question} by condition: {answer.test}"]
        for condition, counts in answer.rows:
            cells = ", ".join(f"{o} {c}" for o, c in zip(answer.options, counts, strict=True))
            lines.append(f"  {condition}: {cells}")
    return lines


def detection_binomial_lines(report: StudyReport) -> list[str]:
    """Detection accuracy against 50% as text lines."""
    rows = detection_binomial_rows(report)
    if not rows:
        return []
    lines = [
        "Detection accuracy against guessing (50%): correct of decided answers, exact "
        "binomial test (R binom.test), 95% Clopper-Pearson interval; answers treated as "
        "independent"
    ]
    for r in rows:
        lines.append(f"  {r.condition}: {r.correct} = {r.accuracy} {r.ci}, p={r.p}")
    return lines
