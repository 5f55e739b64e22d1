"""Analysis finds and scores questions by their stored definition (Question.scoring), not
by key: a detection question with a custom key and custom option wording, and a yes/no
credibility question with a custom key."""

from __future__ import annotations

import math

import pytest

from analysis.services import binary_question_for, study_report
from surveys.models import Question
from tests.analysis.conftest import make_participant
from tests.factories import QuestionFactory, StudyFactory

pytestmark = pytest.mark.django_db

# Wordings the word-based map (stats.detection_judgement) would read as "unsure" for all
# three: only the stored lists make them human / machine judgements.
OPTIONS = ["Staff reporter", "Language model", "Cannot say"]
DEFINITION = {
    "role": "detection",
    "human": ["Staff reporter"],
    "machine": ["Language model"],
    "neutral": ["Cannot say"],
}


def test_detection_question_is_scored_from_its_stored_definition(live_study):
    QuestionFactory.create(
        study=live_study,
        key="origin_guess",
        kind=Question.Kind.CHOICE,
        choices=OPTIONS,
        scoring=DEFINITION,
        position=9,
    )
    # Real articles (truth: human): right, wrong, undecided.
    for answer in ["Staff reporter", "Language model", "Cannot say"]:
        make_participant(live_study, "real", [{"origin_guess": answer}])
    # Generated articles (truth: machine): right, right, wrong.
    for answer in ["Language model", "Language model", "Staff reporter"]:
        make_participant(live_study, "generated", [{"origin_guess": answer}])

    report = study_report(study=live_study)

    assert report.detection is not None
    assert report.detection_summary is not None
    people = report.detection
    assert sorted(people["decided"].tolist()) == [0, 1, 1, 1, 1, 1]
    assert int(people["unsure"].sum()) == 1
    summary = report.detection_summary.set_index("condition")
    # Real: accuracies 1 and 0 (the undecided one has none) -> 0.5; generated 1, 1, 0.
    assert summary.loc["real", "mean_accuracy"] == pytest.approx(0.5)
    assert summary.loc["real", "mean_unsure_rate"] == pytest.approx(1 / 3)
    assert summary.loc["generated", "mean_accuracy"] == pytest.approx(2 / 3)
    assert summary.loc["(all conditions)", "mean_accuracy"] == pytest.approx(3 / 5)
    assert math.isnan(summary.loc["real", "d_prime"])


def test_question_without_a_definition_is_not_scored_whatever_its_key(live_study):
    QuestionFactory.create(
        study=live_study,
        key="detection",
        kind=Question.Kind.CHOICE,
        choices=["Very likely written by a human", "Likely written by a machine"],
        scoring={},
        position=9,
    )
    make_participant(live_study, "real", [{"detection": "Very likely written by a human"}])
    assert study_report(study=live_study).detection is None


def test_credible_question_found_by_its_definition():
    study = StudyFactory.create()
    QuestionFactory.create(study=study, key="first", position=0)
    QuestionFactory.create(study=study, key="trustworthy", position=5, scoring={"role": "credible"})
    assert binary_question_for(study=study).key == "trustworthy"


def test_credibility_index_from_custom_keyed_items(live_study):
    # The conventional items stop being index items; three custom-keyed ones are.
    live_study.questions.filter(key__in=["believable", "accurate", "clear"]).update(scoring={})
    for position, key in enumerate(["trust_a", "trust_b", "trust_c"], start=10):
        QuestionFactory.create(
            study=live_study,
            key=key,
            kind=Question.Kind.LIKERT,
            scale_min=1,
            scale_max=4,
            position=position,
            scoring={"role": "credibility_item"},
        )
    for values in [(4, 4, 4), (1, 1, 1)]:
        answers = dict(zip(["trust_a", "trust_b", "trust_c"], map(str, values), strict=True))
        make_participant(live_study, "real", [{**answers, "believable": "4"}])
    make_participant(live_study, "generated", [{"trust_a": "2", "trust_b": "3", "trust_c": "4"}])

    report = study_report(study=live_study)

    assert report.has_index_items
    # index = sum - 2: 12 -> 10, 3 -> 1 (real mean 5.5); 9 -> 7 (generated).
    means = report.index_means.set_index("condition")
    assert means.loc["real", "mean"] == pytest.approx(5.5)
    assert means.loc["generated", "mean"] == pytest.approx(7.0)
    assert sorted(report.index["index"].tolist()) == [1.0, 7.0, 10.0]


def test_no_index_without_three_credibility_items(live_study):
    live_study.questions.filter(key="clear").update(scoring={})
    make_participant(live_study, "real", [{"believable": "4", "accurate": "4", "clear": "4"}])
    assert not study_report(study=live_study).has_index_items


def test_codebook_shows_the_scoring_definition():
    from analysis.exports import codebook_entries

    study = StudyFactory.create()
    QuestionFactory.create(
        study=study,
        key="origin_guess",
        kind=Question.Kind.CHOICE,
        choices=OPTIONS,
        scoring=DEFINITION,
    )
    QuestionFactory.create(study=study, key="other", kind=Question.Kind.BINARY)
    entries = {e.column: e.allowed for e in codebook_entries(study=study) if e.export == "question"}
    assert (
        "analysis: human-or-machine detection (human = 'Staff reporter'" in entries["origin_guess"]
    )
    assert "analysis:" not in entries["other"]
