"""Ready-made question sets: Kreps et al. credibility items and the attention check."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from surveys.forms import answer_parse
from surveys.instruments import instrument_apply
from surveys.models import Question, Study
from tests.factories import QuestionFactory, StudyFactory

pytestmark = pytest.mark.django_db


def test_kreps_adds_binary_credible_and_three_four_point_scales():
    study = StudyFactory.create()
    created = instrument_apply(study=study, name="kreps")
    assert [q.key for q in created] == ["credible", "believable", "accurate", "clear"]
    questions = {q.key: q for q in Question.objects.filter(study=study)}
    credible = questions["credible"]
    assert credible.kind == Question.Kind.BINARY
    assert credible.text == "Is this article credible?"
    assert credible.scope == Question.Scope.PER_ARTICLE
    for key in ("believable", "accurate", "clear"):
        q = questions[key]
        assert (q.kind, q.scale_min, q.scale_max) == (Question.Kind.LIKERT, 1, 4)
        assert q.min_label == f"Not at all {key}"
        assert q.max_label == f"Very {key}"
        assert q.required
    assert [q.position for q in created] == [0, 1, 2, 3]
    # The participant side accepts the scale's ends and refuses beyond them.
    assert answer_parse(question=questions["clear"], raw="4") == ("4", 4.0)
    with pytest.raises(ValidationError):
        answer_parse(question=questions["clear"], raw="5")


def test_attention_check_is_a_choice_with_its_expected_answer():
    study = StudyFactory.create()
    (check,) = instrument_apply(study=study, name="attention")
    check.refresh_from_db()
    assert check.scope == Question.Scope.ATTENTION_CHECK
    assert check.kind == Question.Kind.CHOICE
    assert "please select 'Somewhat disagree'" in check.text
    assert check.expected_answer == "Somewhat disagree"
    assert check.expected_answer in check.choices
    assert len(check.choices) == 5


def test_applying_twice_adds_nothing_and_keeps_existing_keys():
    study = StudyFactory.create()
    QuestionFactory.create(study=study, key="credible", text="Own wording?", position=7)
    first = instrument_apply(study=study, name="kreps")
    assert [q.key for q in first] == ["believable", "accurate", "clear"]
    # New questions go after the existing ones.
    assert [q.position for q in first] == [8, 9, 10]
    assert instrument_apply(study=study, name="kreps") == []
    assert study.questions.count() == 4
    assert study.questions.get(key="credible").text == "Own wording?"


@pytest.mark.parametrize("status", [Study.Status.LIVE, Study.Status.CLOSED])
def test_refused_once_the_design_is_locked(status):
    study = StudyFactory.create(status=status)
    with pytest.raises(ValidationError, match=r"design .* is locked"):
        instrument_apply(study=study, name="kreps")
    assert study.questions.count() == 0


def test_allowed_in_pilot_and_unknown_name_refused():
    study = StudyFactory.create(status=Study.Status.PILOT)
    assert len(instrument_apply(study=study, name="attention")) == 1
    with pytest.raises(ValueError, match="Unknown instrument 'likert7'"):
        instrument_apply(study=study, name="likert7")
