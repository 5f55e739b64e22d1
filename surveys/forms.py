"""Reading what participants send: a page's answers through one Django form built from
its questions (``AnswersForm``, a field per question kind), and the browser's
measurements (reading time, tab changes, copy and paste counts) read as bounded whole
numbers. Nothing here touches the database; the services store what it returns."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from surveys.models import Question

# What every question kind says when left empty, unless it says something of its own.
_REQUIRED = "Please answer this question."


class _Stripped(forms.Field):
    """Participants' answers are compared after stripping, as the flow always did."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, list | tuple):  # of several values posted, the last
            value = value[-1] if value else ""
        return super().to_python(value.strip() if isinstance(value, str) else value)


class OptionField(_Stripped, forms.ChoiceField):
    """One of the offered options (yes/no questions, and choice questions)."""


class TextField(_Stripped, forms.CharField):
    """Free text. CharField already refuses NUL characters; the flow refuses the other
    unreadable control characters before any form sees them."""


class WholeNumberField(forms.IntegerField):
    """A point of a rating scale or a slider's value: ASCII digits only, as the widget
    sends (IntegerField alone also reads Arabic-Indic or fullwidth digits and "5.0")."""

    def to_python(self, value: Any) -> int | None:
        if isinstance(value, list | tuple):
            value = value[-1] if value else ""
        text = str(value if value is not None else "").strip()
        if not text:
            return None
        digits = text.removeprefix("-")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 6:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return int(text)


class TickedOptionsField(forms.MultipleChoiceField):
    """Ticked options. A string is read as a JSON list of them (an answer stored earlier)."""

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, str):
            text = value.strip()
            try:
                value = json.loads(text) if text else []
            except ValueError:
                value = None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValidationError(self.error_messages["invalid_list"], code="invalid_list")
        return [v.strip() for v in super().to_python(value) if v.strip()]


def answer_field(question: Question) -> forms.Field:
    """The form field that reads and validates answers to ``question``, with the messages
    participants see."""
    required = question.required
    if question.kind == Question.Kind.BINARY:
        return OptionField(
            required=required,
            choices=[("yes", "yes"), ("no", "no")],
            error_messages={"required": _REQUIRED, "invalid_choice": "Choose yes or no."},
        )
    if question.kind == Question.Kind.CHOICE:
        return OptionField(
            required=required,
            choices=[(str(c), str(c)) for c in question.choices],
            error_messages={"required": _REQUIRED, "invalid_choice": "Choose one of the options."},
        )
    if question.kind == Question.Kind.MULTI_CHOICE:
        return TickedOptionsField(
            required=required,
            choices=[(str(c), str(c)) for c in question.choices],
            error_messages={
                "required": "Please tick at least one option.",
                "invalid_choice": "Tick only the options offered.",
                "invalid_list": "Tick the options that apply.",
            },
        )
    if question.kind == Question.Kind.LIKERT:
        low, high = question.scale_min, question.scale_max
        out_of_range = f"Choose a value from {low} to {high}."
        return WholeNumberField(
            required=required,
            min_value=low,
            max_value=high,
            error_messages={
                "required": _REQUIRED,
                "invalid": "Choose one of the points on the scale.",
                "min_value": out_of_range,
                "max_value": out_of_range,
            },
        )
    if question.kind == Question.Kind.SLIDER:
        bounds = question.bounds
        assert bounds is not None
        message = f"Enter a whole number from {bounds[0]} to {bounds[1]}."
        return WholeNumberField(
            required=required,
            min_value=bounds[0],
            max_value=bounds[1],
            error_messages={
                "required": _REQUIRED,
                "invalid": message,
                "min_value": message,
                "max_value": message,
            },
        )
    return TextField(
        required=required,
        max_length=5000,
        error_messages={
            "required": _REQUIRED,
            "max_length": "Please keep your answer under 5,000 characters.",
        },
    )


def _stored(question: Question, cleaned: Any) -> tuple[str, float | None] | None:
    """What is stored of a cleaned answer: (value, numeric value), None when empty."""
    if cleaned in (None, "", []):
        return None
    if question.kind == Question.Kind.MULTI_CHOICE:
        # In the order the options are offered, each once; numeric: how many were ticked.
        ticked = set(cleaned)
        ordered = [str(c) for c in question.choices if str(c) in ticked]
        return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")), float(len(ordered))
    if question.kind == Question.Kind.BINARY:
        return cleaned, 1.0 if cleaned == "yes" else 0.0
    if isinstance(cleaned, int):  # rating scales and sliders
        return str(cleaned), float(cleaned)
    return cleaned, None


class AnswersForm(forms.Form):
    """The answers to a page's questions: one field per question (``answer_field``),
    named by its key. ``answers`` holds what to store once the form is valid, and
    ``messages`` the first error of each question, as the pages show them."""

    def __init__(self, *, questions: Sequence[Question], data: Mapping[str, Any]) -> None:
        super().__init__(data=data)
        self.questions = list(questions)
        for question in self.questions:
            self.fields[question.key] = answer_field(question)

    @property
    def answers(self) -> dict[Question, tuple[str, float | None]]:
        parsed = {q: _stored(q, self.cleaned_data.get(q.key)) for q in self.questions}
        return {q: answer for q, answer in parsed.items() if answer is not None}

    @property
    def messages(self) -> dict[str, str]:
        return {key: str(errors[0]) for key, errors in self.errors.items()}


def answer_parse(*, question: Question, raw: Any) -> tuple[str, float | None] | None:
    """Validate one answer with its question's field. Returns (value, numeric value), or
    None when a non-required question was left empty. Raises ValidationError with the
    message participants see."""
    return _stored(question, answer_field(question).clean(raw))


# A day: anything longer is not a reading time but a clock or a forged value.
MAX_VISIBLE_MS = 24 * 60 * 60 * 1000
MAX_TAB_AWAYS = 10_000


def timing_parse(*, raw: str | None, maximum: int) -> int | None:
    """A browser-measured count as a non-negative integer, or None for anything else.
    Never raises: a missing or garbled measurement must not cost the participant their
    answers."""
    raw = (raw or "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        return None
    value = int(raw)
    return value if value <= maximum else None
