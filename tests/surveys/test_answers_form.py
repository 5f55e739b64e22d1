"""The one form that reads a page's answers (``surveys.forms.AnswersForm``): a Django
field per question, the participant's messages, and nothing read but the questions."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from surveys.forms import AnswersForm, OptionField, TextField, TickedOptionsField, WholeNumberField
from surveys.models import Question
from tests.factories import QuestionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def questions() -> list[Question]:
    make = QuestionFactory.create
    return [
        make(key="credible", kind=Question.Kind.BINARY),
        make(key="believable", kind=Question.Kind.LIKERT, scale_min=1, scale_max=5),
        make(key="trust", kind=Question.Kind.SLIDER, scale_min=0, scale_max=100),
        make(key="source", kind=Question.Kind.CHOICE, choices=["TV", "Web"]),
        make(key="seen", kind=Question.Kind.MULTI_CHOICE, choices=["A", "B", "C"]),
        make(key="why", kind=Question.Kind.FREE_TEXT, required=False),
    ]


def _post(**values: str | list[str]) -> QueryDict:
    data = QueryDict(mutable=True)
    for key, value in values.items():
        data.setlist(key, value if isinstance(value, list) else [value])
    return data


def test_one_field_per_question_of_its_kind(questions):
    form = AnswersForm(questions=questions, data={})
    kinds = {key: type(field) for key, field in form.fields.items()}
    assert kinds == {
        "credible": OptionField,
        "believable": WholeNumberField,
        "trust": WholeNumberField,
        "source": OptionField,
        "seen": TickedOptionsField,
        "why": TextField,
    }


def test_valid_answers_become_what_is_stored(questions):
    data = _post(
        credible=" yes ",
        believable=["2", "4"],  # of several values posted, the last
        trust="0",
        source="Web",
        seen=["C", "A", "C"],
        why="  I looked it up.  ",
    )
    form = AnswersForm(questions=questions, data=data)
    assert form.is_valid(), form.messages
    by_key = {q.key: answer for q, answer in form.answers.items()}
    assert by_key == {
        "credible": ("yes", 1.0),
        "believable": ("4", 4.0),
        "trust": ("0", 0.0),
        "source": ("Web", None),
        "seen": ('["A","C"]', 2.0),
        "why": ("I looked it up.", None),
    }


def test_each_question_says_what_is_wrong_in_its_own_words(questions):
    data = _post(credible="maybe", believable="٣", trust="5.0", source="Radio", seen=["A", "Z"])
    form = AnswersForm(questions=questions, data=data)
    assert not form.is_valid()
    assert form.messages == {
        "credible": "Choose yes or no.",
        "believable": "Choose one of the points on the scale.",  # Arabic-Indic three
        "trust": "Enter a whole number from 0 to 100.",
        "source": "Choose one of the options.",
        "seen": "Tick only the options offered.",
    }
    assert form.answers == {}


def test_empty_answers_are_required_unless_optional(questions):
    form = AnswersForm(questions=questions, data=_post(why="   "))
    assert not form.is_valid()
    assert form.messages["credible"] == "Please answer this question."
    assert form.messages["seen"] == "Please tick at least one option."
    assert "why" not in form.messages


def test_fields_other_than_the_questions_are_never_read(questions):
    data = _post(credible="yes", believable="3", trust="50", source="TV", seen=["B"])
    for n in range(3000):
        data[f"extra{n}"] = "=cmd|' /C calc'!A0"
    form = AnswersForm(questions=questions, data=data)
    assert form.is_valid(), form.messages
    assert {q.key for q in form.answers} == {"credible", "believable", "trust", "source", "seen"}
