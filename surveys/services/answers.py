"""Answers: storing a participant's answers idempotently under their row lock, the
comprehension tries, marking pages seen, completion, and closing a full study."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from surveys import fraud
from surveys.models import Participant, Question, Response, Study, Trial
from surveys.selectors import (
    answer_matches,
    participant_next_step,
    participant_passed_checks,
    questions_for,
    study_design,
)
from surveys.services.lifecycle import study_set_status


def _responses_upsert(
    *,
    participant: Participant,
    trial: Trial | None,
    answers: Mapping[Question, tuple[str, float | None]],
) -> None:
    """Store ``answers`` (one row per question, updated in place when it exists) in at
    most three queries: the rows that exist, one UPDATE, one INSERT.

    Callers hold the participant's row lock (``_lock_open_participant``), which every
    writer of a participant's answers takes, so nobody inserts between the SELECT and the
    INSERT; the unique constraints still stand behind it. (``bulk_create`` with
    ``update_conflicts`` cannot be used: the constraints are partial, and Django emits no
    ``ON CONFLICT ... WHERE`` predicate for them.)"""
    if not answers:
        return
    existing = {
        row.question_id: row
        for row in Response.objects.filter(
            participant=participant, trial=trial, question__in=list(answers)
        )
        .order_by()
        .only("pk", "question_id")
    }
    now = timezone.now()
    changed, new = [], []
    for question, (value, numeric) in answers.items():
        row = existing.get(question.pk)
        if row is None:
            new.append(
                Response(
                    participant=participant,
                    trial=trial,
                    question=question,
                    value=value,
                    value_numeric=numeric,
                )
            )
        else:
            row.value, row.value_numeric, row.updated_at = value, numeric, now
            changed.append(row)
    if changed:
        Response.objects.bulk_update(changed, ["value", "value_numeric", "updated_at"])
    if new:
        Response.objects.bulk_create(new)


class ParticipationClosedError(Exception):
    """The participation is completed or withdrawn; answers can no longer change."""


def _lock_participant(participant: Participant) -> Participant:
    """The participant's row, locked (every writer of a participation takes this lock),
    re-read from the database with its study in the same query (only the participant's
    row is locked)."""
    return (
        Participant.objects.select_related("study")
        .select_for_update(of=("self",))
        .get(pk=participant.pk)
    )


def _lock_open_participant(participant: Participant) -> Participant:
    locked = _lock_participant(participant)
    if locked.status != Participant.Status.IN_PROGRESS:
        raise ParticipationClosedError("This participation has already ended.")
    return locked


@transaction.atomic
def trial_answer(
    *,
    participant: Participant,
    trial: Trial,
    answers: Mapping[Question, tuple[str, float | None]],
    visible_ms: int | None = None,
    tab_aways: int | None = None,
) -> Participant:
    """Record the answers about one trial's article. Idempotent: a refresh, a double
    click or a resubmission after going back updates the same rows, never adds rows.
    Returns the participant as stored now (read under its lock, with its study).

    ``visible_ms``/``tab_aways`` (measured in the browser) are kept from the first
    accepted answer only, like ``answered_at``: revisits do not add to the reading.
    """
    locked = _lock_open_participant(participant)
    if trial.participant_id != locked.pk:
        raise ValidationError("This article belongs to another participant.")
    _responses_upsert(participant=locked, trial=trial, answers=answers)
    now = timezone.now()
    Trial.objects.filter(pk=trial.pk, answered_at__isnull=True).update(
        answered_at=now, visible_ms=visible_ms, tab_aways=tab_aways
    )
    return _seen(locked, now)


def _seen(locked: Participant, now: datetime, **also: datetime) -> Participant:
    """Store that the (locked) participant was seen ``now``, and the fields ``also``, in
    one UPDATE; returns it so updated."""
    fields = {"last_seen_at": now, **also}
    Participant.objects.filter(pk=locked.pk).update(**fields)
    for name, value in fields.items():
        setattr(locked, name, value)
    return locked


@transaction.atomic
def attention_answer(
    *, participant: Participant, answers: Mapping[Question, tuple[str, float | None]]
) -> Participant:
    """Record answers to the once-asked questions (attention checks). Idempotent.
    Returns the participant as stored now."""
    locked = _lock_open_participant(participant)
    _responses_upsert(participant=locked, trial=None, answers=answers)
    return _seen(locked, timezone.now())


class ComprehensionOutcome(StrEnum):
    """What one submission of the comprehension page led to."""

    PASSED = "passed"
    RETRY = "retry"  # wrong, tries left: the page is shown again
    SCREENED_OUT = "screened_out"  # wrong on the last try
    STALE = "stale"  # a double submit or an outdated form: nothing was written


@transaction.atomic
def comprehension_answer(
    *,
    participant: Participant,
    answers: Mapping[Question, tuple[str, float | None]],
    attempt: int,
) -> ComprehensionOutcome:
    """Record one try at the comprehension questions (asked after the instructions).

    ``attempt`` is the try the submitted form was shown for (1 for the first): a double
    submit or a resubmission of an older form does not match the stored count and
    writes nothing, so it cannot use up a try. The stored answers are those of the
    last try; ``comprehension_tries`` counts the tries. When every answer is the
    expected one the participant goes on to the articles; wrong answers on the last of
    the study's ``comprehension_attempts`` tries screen the participant out: status
    ``screened_out`` and the study's screened-out code. A screened-out participant
    holds no place, so their condition and articles are free for the next newcomer.
    """
    locked = _lock_open_participant(participant)
    questions = questions_for(study=locked.study, scope=Question.Scope.COMPREHENSION)
    if attempt != locked.comprehension_tries + 1 or not questions:
        return ComprehensionOutcome.STALE
    Response.objects.filter(
        participant=locked,
        trial__isnull=True,
        question__in=[q for q in questions if q not in answers],
    ).delete()
    _responses_upsert(participant=locked, trial=None, answers=answers)
    passed = all(
        q in answers and answer_matches(question=q, value=answers[q][0]) for q in questions
    )
    locked.comprehension_tries = attempt
    locked.last_seen_at = timezone.now()
    fields = ["comprehension_tries", "last_seen_at"]
    outcome = ComprehensionOutcome.PASSED if passed else ComprehensionOutcome.RETRY
    if not passed and attempt >= max(locked.study.comprehension_attempts, 1):
        locked.status = Participant.Status.SCREENED_OUT
        # Stored, like the failed-check code: later edits of the study do not change it.
        locked.completion_code = locked.study.screened_out_code
        fields += ["status", "completion_code"]
        outcome = ComprehensionOutcome.SCREENED_OUT
    locked.save(update_fields=fields)
    return outcome


@transaction.atomic
def about_answer(
    *, participant: Participant, answers: Mapping[Question, tuple[str, float | None]]
) -> Participant:
    """Record answers to the once-per-participant questions (the "about you" page) and
    that the page was submitted, even with every optional question left empty.
    Idempotent: a resubmission updates the same rows. Returns the participant as
    stored now."""
    locked = _lock_open_participant(participant)
    _responses_upsert(participant=locked, trial=None, answers=answers)
    now = timezone.now()
    if locked.about_submitted_at is None:
        return _seen(locked, now, about_submitted_at=now)
    return _seen(locked, now)


def trial_mark_shown(*, trial: Trial) -> None:
    """First time the article was shown (server side); later views do not move it."""
    now = timezone.now()
    if trial.first_shown_at is None:
        # Skipped when the loaded trial was already shown: the filter would match nothing.
        Trial.objects.filter(pk=trial.pk, first_shown_at__isnull=True).update(first_shown_at=now)
    Participant.objects.filter(pk=trial.participant_id).update(last_seen_at=now)


def instructions_mark_seen(*, participant: Participant) -> None:
    now = timezone.now()
    Participant.objects.filter(pk=participant.pk, instructions_seen_at__isnull=True).update(
        instructions_seen_at=now
    )
    Participant.objects.filter(pk=participant.pk).update(last_seen_at=now)


@transaction.atomic
def participant_complete(*, participant: Participant) -> Participant:
    """Mark the participation completed once every required answer is in. Idempotent.

    A participant who failed an attention check still completes, but is given the
    study's failed-check code when one is set (so the panel can screen them). A study
    whose every condition has reached its quota closes in the same transaction.
    """
    locked = _lock_participant(participant)
    if locked.status == Participant.Status.COMPLETED:
        return locked
    if locked.status != Participant.Status.IN_PROGRESS:
        raise ParticipationClosedError("This participation has already ended.")
    step = participant_next_step(participant=locked)
    if step.name != "finish":
        raise ValidationError("Some questions are still unanswered.")
    now = timezone.now()
    locked.status = Participant.Status.COMPLETED
    locked.completed_at = now
    locked.last_seen_at = now
    fields = ["status", "completed_at", "last_seen_at"]
    study = locked.study
    if study.failed_check_code and not participant_passed_checks(participant=locked):
        # Stored, not derived at display time: the code the participant was given must
        # not change if the researcher edits the study's codes later.
        locked.completion_code = study.failed_check_code
        fields.append("completion_code")
    locked.save(update_fields=fields)
    if not locked.is_test:
        study_close_if_full(study=study)
    return locked


@transaction.atomic
def study_close_if_full(*, study: Study) -> bool:
    """Close a live study once every condition has a quota and each has that many
    completed (non-test) participants. Returns True when this call closed it.

    The study row is locked before counting, so of two participants completing the
    last places at once, the second to get the lock sees both completions.

    A study where some condition has no quota can never fill: it returns before taking
    the lock, so completions do not queue on the study row (the design is read from the
    per-process memo of a live study's frozen design, so this costs no query).
    """
    if not study_design(study=study).every_condition_has_quota:
        return False
    locked = Study.objects.select_for_update().get(pk=study.pk)
    if locked.status != Study.Status.LIVE:
        return False
    completed = fraud.quota_counted(
        study=locked, participants=Participant.objects.real().completed().filter(study=locked)
    )
    conditions = list(
        locked.conditions.annotate(
            n_completed=Count("participants", filter=Q(participants__in=completed.values("pk")))
        )
    )
    if not conditions or any(c.quota is None or c.n_completed < c.quota for c in conditions):
        return False
    study_set_status(study=locked, status=Study.Status.CLOSED)
    return True
