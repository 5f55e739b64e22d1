"""The four-point detection scale (Clark et al. 2021) is scored by the analysis like the
five-point one: each answer is a human or machine judgement, none is undecided."""

from __future__ import annotations

import pytest

from analysis import stats
from analysis.services import study_report
from surveys.instruments import DETECTION_4_OPTIONS, INSTRUMENTS
from surveys.models import Question
from tests.analysis.conftest import make_participant
from tests.factories import QuestionFactory


def test_every_four_point_answer_is_a_decided_judgement():
    assert [stats.detection_judgement(o) for o in DETECTION_4_OPTIONS] == [
        "human",
        "human",
        "machine",
        "machine",
    ]


def _add_instrument_question(study, name: str) -> Question:
    (spec,) = INSTRUMENTS[name].questions
    return QuestionFactory.create(
        study=study, key=spec.key, text=spec.text, kind=spec.kind, choices=list(spec.choices)
    )


@pytest.mark.parametrize(
    ("instrument", "human", "machine"),
    [
        ("detection_4", "Possibly human-written", "Definitely machine-generated"),
        ("detection", "Very likely written by a human", "Somewhat likely written by a machine"),
    ],
)
def test_report_scores_the_instruments_detection_questions(live_study, instrument, human, machine):
    key = _add_instrument_question(live_study, instrument).key
    # Real articles: right, right, wrong; generated: right, wrong, wrong.
    for answer in [human, human, machine]:
        make_participant(live_study, "real", [{key: answer}])
    for answer in [machine, human, human]:
        make_participant(live_study, "generated", [{key: answer}])
    report = study_report(study=live_study)
    assert report.detection is not None
    assert report.detection_summary is not None
    summary = report.detection_summary.set_index("condition")
    assert summary.loc["real", "mean_accuracy"] == pytest.approx(2 / 3)
    assert summary.loc["generated", "mean_accuracy"] == pytest.approx(1 / 3)
    assert summary.loc["(all conditions)", "mean_accuracy"] == pytest.approx(0.5)
    # Nobody had a neutral option on the four-point scale, or used it on the five-point one.
    assert summary.loc["(all conditions)", "mean_unsure_rate"] == pytest.approx(0.0)


def test_report_without_a_detection_question_has_no_detection_table(live_study):
    make_participant(live_study, "real", [{"credible": "yes"}])
    assert study_report(study=live_study).detection is None
