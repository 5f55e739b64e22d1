"""Display rows for the comparison of people with the best machine detector (the report's
``people_vs_detector`` and ``best_disagreements``), rounded as the rest of the report is
(``analysis.presentation``'s formats), for the results page, the HTML and text reports."""

from __future__ import annotations

from dataclasses import dataclass

from analysis import stats
from analysis.cells import cell_float, cell_int
from analysis.presentation import number, p_value, pct
from analysis.services import StudyReport


@dataclass(frozen=True)
class PeopleVersusDetectorRow:
    scorer: str
    score: str
    auc_detector: str
    auc_people: str
    difference: str
    ci: str
    z: str
    p: str
    p_adjusted: str
    candidates: int
    n: str


@dataclass(frozen=True)
class BestDisagreementRow:
    scorer: str
    score: str
    article_id: int
    title: str
    origin: str
    condition: str
    credible_share: str
    value: str
    human_pct: str
    detector_pct: str
    gap: str


def people_vs_detector_rows(report: StudyReport) -> list[PeopleVersusDetectorRow]:
    """The best detector score against the participants: DeLong's paired test."""
    if report.people_vs_detector is None:
        return []
    return [
        PeopleVersusDetectorRow(
            scorer=str(row.scorer),
            score=str(row.score) if row.direction == stats.HIGHER else f"{row.score} (lower)",
            auc_detector=number(cell_float(row.auc_detector), 3),
            auc_people=number(cell_float(row.auc_people), 3),
            difference=f"{cell_float(row.difference):+.3f}",
            ci=f"[{number(cell_float(row.ci_low), 3)}, {number(cell_float(row.ci_high), 3)}]",
            z=number(cell_float(row.z), 2),
            p=p_value(cell_float(row.p_value)),
            p_adjusted=p_value(cell_float(row.p_adjusted)),
            candidates=cell_int(row.candidates),
            n=f"{cell_int(row.n_pos)} vs {cell_int(row.n_neg)}",
        )
        for row in report.people_vs_detector.itertuples(index=False)
    ]


def best_disagreement_rows(report: StudyReport) -> list[BestDisagreementRow]:
    """The articles participants and the best detector score disagree most about."""
    if report.best_disagreements is None:
        return []
    return [
        BestDisagreementRow(
            scorer=str(row.scorer),
            score=str(row.score),
            article_id=cell_int(row.article_id),
            title=str(row.title),
            origin=str(row.article_origin),
            condition=str(row.condition),
            credible_share=pct(cell_float(row.credible_share)),
            value=number(cell_float(row.score_value), 3),
            human_pct=number(cell_float(row.human_machine_likeness_pct), 0),
            detector_pct=number(cell_float(row.detector_machine_likeness_pct), 0),
            gap=f"{cell_float(row.gap):+.0f}",
        )
        for row in report.best_disagreements.itertuples(index=False)
    ]


def people_vs_detector_context(report: StudyReport) -> dict[str, object]:
    """Template context for the two tables in ``analysis/_tables.html``."""
    return {
        "people_vs_detector": people_vs_detector_rows(report),
        "best_disagreements": best_disagreement_rows(report),
    }


def people_vs_detector_lines(report: StudyReport) -> list[str]:
    """The two tables as lines of the text report."""
    lines: list[str] = []
    for row in people_vs_detector_rows(report):
        lines += [
            "",
            "The best detector against the participants on the same articles (DeLong's "
            "paired test of two correlated AUCs; difference = detector - participants)",
            f"  {row.scorer}  {row.score}: AUC {row.auc_detector} vs participants "
            f"{row.auc_people}, difference {row.difference} {row.ci}, z = {row.z}, "
            f"p = {row.p}, Bonferroni over {row.candidates} scores p = {row.p_adjusted}, "
            f"n {row.n}",
        ]
    disagreements = best_disagreement_rows(report)
    if disagreements:
        lines += [
            "",
            f"Articles where participants and the best detector ({disagreements[0].score}) "
            "disagree most (machine-likeness percentiles; gap = participants - detector)",
        ]
    for dg in disagreements:
        lines.append(
            f"  [{dg.scorer}] #{dg.article_id} {dg.origin} ({dg.condition}) "
            f'"{dg.title[:60]}": credible {dg.credible_share}, {dg.score} {dg.value}, '
            f"participants {dg.human_pct} vs detector {dg.detector_pct} (gap {dg.gap})"
        )
    return lines
