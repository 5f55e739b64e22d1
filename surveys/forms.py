"""Reading what participants send: each question's answer parsed and validated, and the
browser's measurements (reading time, tab changes, copy and paste counts) read as bounded
whole numbers. Pure functions over the questions and the posted data; the services store
what they return."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from django.core.exceptions import ValidationError

from surveys.models import Question


def _multi_choice_parse(
    question: Question, raw: str | Sequence[str] | None
) -> tuple[str, float | None] | None:
    """Ticked options as a JSON list in the order the options are offered, e.g.
    ``["A","C"]``; value_numeric is how many were ticked. A string is read as such a
    JSON list (an answer stored earlier, or an API client)."""
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = json.loads(text) if text else []
        except ValueError:
            raw = None
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise ValidationError("Tick the options that apply.")
    chosen = {v.strip() for v in (raw or []) if v.strip()}
    if not chosen:
        if question.required:
            raise ValidationError("Please tick at least one option.")
        return None
    options = [str(c) for c in question.choices]
    if not chosen <= set(options):
        raise ValidationError("Tick only the options offered.")
    ordered = [o for o in options if o in chosen]
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")), float(len(ordered))


def answer_parse(
    *, question: Question, raw: str | Sequence[str] | None
) -> tuple[str, float | None] | None:
    """Validate one submitted answer. Returns (value, numeric value), or None when a
    non-required question was left empty. Raises ValidationError with a message for the
    participant. Multiple-choice questions take the list of ticked options; every other
    kind takes one string (of a list, the last one, as a form would)."""
    if question.kind == Question.Kind.MULTI_CHOICE:
        return _multi_choice_parse(question, raw)
    if raw is not None and not isinstance(raw, str):
        raw = raw[-1] if raw else None
    raw = (raw or "").strip()
    if not raw:
        if question.required:
            raise ValidationError("Please answer this question.")
        return None
    if question.kind == Question.Kind.BINARY:
        if raw not in ("yes", "no"):
            raise ValidationError("Choose yes or no.")
        return raw, 1.0 if raw == "yes" else 0.0
    if question.kind == Question.Kind.LIKERT:
        # ASCII digits only: int() also reads Arabic-Indic or fullwidth digits.
        digits = raw.removeprefix("-")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 6:
            raise ValidationError("Choose one of the points on the scale.")
        number = int(raw)
        assert question.scale_min is not None
        assert question.scale_max is not None
        if not question.scale_min <= number <= question.scale_max:
            raise ValidationError(
                f"Choose a value from {question.scale_min} to {question.scale_max}."
            )
        return str(number), float(number)
    if question.kind == Question.Kind.SLIDER:
        bounds = question.bounds
        assert bounds is not None
        # Whole numbers only; "50.0" or "5e1" are not what the widget sends.
        digits = raw.removeprefix("-")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 6:
            raise ValidationError(f"Enter a whole number from {bounds[0]} to {bounds[1]}.")
        number = int(raw)
        if not bounds[0] <= number <= bounds[1]:
            raise ValidationError(f"Enter a whole number from {bounds[0]} to {bounds[1]}.")
        return str(number), float(number)
    if question.kind == Question.Kind.CHOICE:
        if raw not in question.choices:
            raise ValidationError("Choose one of the options.")
        return raw, None
    if len(raw) > 5000:
        raise ValidationError("Please keep your answer under 5,000 characters.")
    return raw, None


def answers_validate(
    *, questions: list[Question], data: Mapping[str, str | Sequence[str]]
) -> tuple[dict[Question, tuple[str, float | None]], dict[str, str]]:
    """Parse answers to several questions; returns (parsed, errors by question key).
    ``data`` may be a QueryDict: multiple-choice questions read every value posted."""
    parsed: dict[Question, tuple[str, float | None]] = {}
    errors: dict[str, str] = {}
    getlist = getattr(data, "getlist", None)
    for question in questions:
        raw = data.get(question.key)
        if question.kind == Question.Kind.MULTI_CHOICE and getlist is not None:
            raw = getlist(question.key)
        try:
            answer = answer_parse(question=question, raw=raw)
        except ValidationError as error:
            errors[question.key] = error.messages[0]
            continue
        if answer is not None:
            parsed[question] = answer
    return parsed, errors


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
