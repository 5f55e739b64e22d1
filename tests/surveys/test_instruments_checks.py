"""The instruments added with the checks: the four-point detection scale and the
comprehension questions."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from surveys.forms import answer_parse
from surveys.instruments import DETECTION_KEYS, INSTRUMENTS, instrument_apply
from surveys.models import Question
from surveys.services import study_validate_design
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


def test_four_point_detection_scale_uses_clark_et_al_wording():
    study = StudyFactory.create()
    (question,) = instrument_apply(study=study, name="detection_4")
    question.refresh_from_db()
    assert (question.key, question.kind, question.scope) == (
        "written_by_4",
        Question.Kind.CHOICE,
        Question.Scope.PER_ARTICLE,
    )
    assert question.choices == [
        "Definitely human-written",
        "Possibly human-written",
        "Possibly machine-generated",
        "Definitely machine-generated",
    ]
    assert question.key in DETECTION_KEYS
    assert answer_parse(question=question, raw="Possibly machine-generated") == (
        "Possibly machine-generated",
        None,
    )
    with pytest.raises(ValidationError):
        answer_parse(question=question, raw="I don't know")  # no neutral point


def test_both_detection_scales_fit_in_one_study_and_analysis_knows_both_keys():
    study = StudyFactory.create()
    instrument_apply(study=study, name="detection")
    instrument_apply(study=study, name="detection_4")
    keys = set(study.questions.values_list("key", flat=True))
    assert keys == {"written_by", "written_by_4"}
    assert keys <= set(DETECTION_KEYS)


def test_comprehension_instrument_adds_passable_questions_after_the_instructions():
    study = StudyFactory.create_live()
    study.status = "draft"
    study.save()
    created = instrument_apply(study=study, name="comprehension")
    assert [q.scope for q in created] == [Question.Scope.COMPREHENSION] * 2
    for question in created:
        assert question.expected_answer in question.choices
    # The right answer is not the first option.
    assert [q.choices.index(q.expected_answer) for q in created] == [1, 1]
    study_validate_design(study=study)  # raises if anything is wrong
    # Its questions match the default instructions they test.
    assert "There are no right or wrong answers" in study.instructions_text
    assert INSTRUMENTS["comprehension"].label.startswith("Comprehension check")
