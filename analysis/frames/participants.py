"""One row per participation (``participants_frame``): attention checks, the exclusion
reason and the fraud signals; the exclusion ledger built from it; and the answers to
once-per-participant questions (``participant_answers_frame``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from django.db.models import BooleanField, ExpressionWrapper, QuerySet

from analysis.frames.columns import CHUNK_SIZE, bool_from_text, names_of, raw_fields, uuid_text
from surveys.exclusions import participant_exclusions, study_exclusion_rules
from surveys.fraud import participation_signals
from surveys.models import Condition, Participant, Question, Response, Study
from surveys.querysets import check_passed

PARTICIPANT_COLUMNS = [
    "participant_id",
    "participant_token",
    "panel_pid",
    "condition",
    "status",
    "is_test",
    "consented_at",
    "completed_at",
    "checks_answered",
    "checks_failed",
    "passed_checks",
    "exclusion_reason",
]
# The fraud and assisted-answering signals of surveys.fraud, one column each: flags, the
# copy and paste counts summed over the articles (empty when no answer ran JavaScript),
# and whether JavaScript ran (empty before the first article was answered).
SIGNAL_COLUMNS = [
    "duplicate_browser",
    "network_burst",
    "honeypot_filled",
    "article_copies",
    "answer_pastes",
    "javascript",
]
PARTICIPANT_COLUMNS += SIGNAL_COLUMNS


def participants_frame(*, study: Study, id_range: tuple[int, int] | None = None) -> pd.DataFrame:
    """One row per participation (test sessions included, flagged by ``is_test``);
    with ``id_range``, only those whose id lies in this closed interval.

    ``passed_checks`` follows ``surveys.selectors.participant_passed_checks``: every
    attention check the participant answered matches the question's expected answer,
    compared stripped and case-insensitively; an unanswered check does not fail (a
    completed participation has answered every required one).

    ``exclusion_reason`` is the ledger step that removes the participant, "" for the
    analysed: ``test``, ``incomplete`` (in progress or withdrawn), ``screened_out``, or
    the key of the first exclusion rule that applies (``surveys.exclusions``; e.g.
    ``attention``, ``too_fast``, ``straight_lining_believable``), in that precedence."""
    fields = {
        "participant_id": "pk",
        "participant_token": "token",
        "panel_pid": "panel_pid",
        "condition": "condition_id",
        "status": "status",
        "is_test": "is_test",
        "consented_at": "consented_at",
        "completed_at": "completed_at",
    }
    # Exports walk a study in id ranges (participant_id_ranges) to keep memory bounded.
    people_range = {} if id_range is None else {"pk__range": id_range}
    checks_range = {} if id_range is None else {"participant__pk__range": id_range}
    people = pd.DataFrame.from_records(
        Participant.objects.filter(study=study, **people_range)
        .order_by("pk")
        .values_list(*raw_fields(fields))
        .iterator(chunk_size=CHUNK_SIZE),
        columns=list(fields),
    )
    # Names looked up here rather than joined in: every export query reads one table.
    names = dict(Condition.objects.filter(study=study).order_by().values_list("pk", "name"))
    people["condition"] = names_of(people["condition"], names)
    people["participant_token"] = uuid_text(people["participant_token"])
    people["is_test"] = bool_from_text(people["is_test"])
    for column in ("consented_at", "completed_at"):
        people[column] = pd.to_datetime(people[column], utc=True, format="ISO8601")

    # The study's own attention checks select its answers, whose passing is the one rule
    # (surveys.querysets.check_passed) with each check's answer in the SQL: one table.
    attention = list(study.questions.filter(scope=Question.Scope.ATTENTION_CHECK).order_by())
    checks = pd.DataFrame.from_records(
        Response.objects.filter(**checks_range)
        .to_checks(attention)
        .annotate(passed=ExpressionWrapper(check_passed(checks=attention), BooleanField()))
        .order_by()
        .values_list("participant_id", "passed")
        .iterator(chunk_size=CHUNK_SIZE),
        columns=["participant_id", "passed"],
    )
    failed = ~checks["passed"].astype(bool)
    tally = (
        checks.assign(failed=failed)
        .groupby("participant_id")["failed"]
        .agg(checks_answered="size", checks_failed="sum")
    )
    people = people.merge(tally, how="left", left_on="participant_id", right_index=True)
    people["checks_answered"] = people["checks_answered"].fillna(0).astype(int)
    people["checks_failed"] = people["checks_failed"].fillna(0).astype(int)
    people["passed_checks"] = people["checks_failed"] == 0
    judged = None if id_range is None else Participant.objects.filter(pk__range=id_range)
    people["exclusion_reason"] = _exclusion_reasons(people, study=study, judged=judged)
    _add_signals(people, study=study, judged=judged)
    return people[PARTICIPANT_COLUMNS]


def _add_signals(
    people: pd.DataFrame, *, study: Study, judged: QuerySet[Participant] | None
) -> None:
    """The SIGNAL_COLUMNS, from ``surveys.fraud.participation_signals``."""
    signals = participation_signals(study=study, participants=judged)
    rows = [signals.get(int(pid)) for pid in people["participant_id"]]
    people["duplicate_browser"] = pd.Series(
        [bool(s and s.duplicate_browser) for s in rows], index=people.index, dtype=bool
    )
    people["network_burst"] = pd.Series(
        [bool(s and s.network_burst) for s in rows], index=people.index, dtype=bool
    )
    people["honeypot_filled"] = pd.Series(
        [bool(s and s.honeypot) for s in rows], index=people.index, dtype=bool
    )
    people["article_copies"] = pd.Series(
        [s.copies if s else None for s in rows], index=people.index, dtype="Int64"
    )
    people["answer_pastes"] = pd.Series(
        [s.pastes if s else None for s in rows], index=people.index, dtype="Int64"
    )
    people["javascript"] = pd.Series(
        [s.javascript if s else None for s in rows], index=people.index, dtype="boolean"
    )


def _exclusion_reasons(
    people: pd.DataFrame, *, study: Study, judged: QuerySet[Participant] | None
) -> pd.Series:
    """The first ledger step that removes each participant ("" when none does).
    ``people`` has participant_id, status and is_test; ``judged`` narrows the rules'
    queries to those participants (None: the whole study)."""
    by_rule = {
        pid: applied.key
        for pid, applied in participant_exclusions(study=study, participants=judged).items()
    }
    reason = pd.Series(
        [by_rule.get(pid, "") for pid in people["participant_id"]], index=people.index, dtype=object
    )
    status = people["status"]
    # Lowest precedence first: later assignments win.
    reason[status == Participant.Status.SCREENED_OUT] = "screened_out"
    reason[status.isin([Participant.Status.IN_PROGRESS, Participant.Status.WITHDRAWN])] = (
        "incomplete"
    )
    reason[people["is_test"]] = "test"
    return reason


def participant_exclusion_reasons(
    *, study: Study, participants: Sequence[Participant]
) -> dict[int, str]:
    """participant id -> ``exclusion_reason`` (as in :func:`participants_frame`) for a few
    participants, e.g. one page of the API."""
    people = pd.DataFrame(
        {
            "participant_id": [p.pk for p in participants],
            "status": [p.status for p in participants],
            "is_test": pd.Series([p.is_test for p in participants], dtype=bool),
        }
    )
    judged = Participant.objects.filter(pk__in=people["participant_id"].tolist())
    reasons = _exclusion_reasons(people, study=study, judged=judged)
    return dict(zip(people["participant_id"].tolist(), reasons.tolist(), strict=True))


@dataclass(frozen=True)
class LedgerStep:
    """One line of the exclusion ledger: how many were removed at this step and how many
    remain after it."""

    key: str
    label: str
    excluded: int
    remaining: int


@dataclass(frozen=True)
class RuleStep:
    """One exclusion rule as the ledger shows it: the ``exclusion_reason`` it gives and
    what it removes, in words."""

    key: str
    label: str


# The steps before any rule, always in the ledger (keys are exclusion_reason values).
FIXED_STEPS = [
    RuleStep("test", "Test / preview sessions excluded"),
    RuleStep("incomplete", "Incomplete (in progress or withdrawn) excluded"),
    RuleStep("screened_out", "Screened out by the comprehension questions, excluded"),
]


def exclusion_rule_steps(*, study: Study) -> list[RuleStep]:
    """The study's exclusion rules in the order they apply (``surveys.exclusions``),
    as the ledger shows them."""
    return [RuleStep(rule.key, rule.label) for rule in study_exclusion_rules(study=study)]


def exclusion_reason_labels(*, study: Study) -> dict[str, str]:
    """Every value ``exclusion_reason`` can take in this study -> what it means (for
    codebooks and legends); "" is the analysed."""
    steps = [*FIXED_STEPS, *exclusion_rule_steps(study=study)]
    return {"": "analysed", **{step.key: step.label for step in steps}}


def analysed_mask(participants: pd.DataFrame) -> pd.Series:
    """Participants who count in the analysis: not a test session, completed, and not
    removed by any exclusion rule. Input: a :func:`participants_frame`."""
    return (
        ~participants["is_test"]
        & (participants["status"] == Participant.Status.COMPLETED)
        & (participants["exclusion_reason"] == "")
    )


def exclusion_ledger(
    participants: pd.DataFrame, *, rules: Sequence[RuleStep] = ()
) -> list[LedgerStep]:
    """The exclusions in the order they are applied, from everyone recruited to the
    participants analysed: test sessions, incomplete, screened out, then one step per
    exclusion rule (``rules``: :func:`exclusion_rule_steps` of the study), each counting
    the participants whose ``exclusion_reason`` is its key. Input: a
    :func:`participants_frame`. The final count equals ``analysed_mask(participants).sum()``;
    a rule key in the frame that ``rules`` does not list raises ValueError (the ledger
    would not add up)."""
    reasons = participants["exclusion_reason"]
    unknown = set(reasons) - {"", *(step.key for step in [*FIXED_STEPS, *rules])}
    if unknown:
        raise ValueError(
            f"Exclusion reasons without a ledger step: {', '.join(sorted(unknown))}. "
            "Pass the study's exclusion_rule_steps as rules."
        )
    remaining = len(participants)
    ledger = [LedgerStep("recruited", "Recruited (all participations)", 0, remaining)]
    for step in FIXED_STEPS:
        excluded = int((reasons == step.key).sum())
        remaining -= excluded
        ledger.append(LedgerStep(step.key, step.label, excluded, remaining))
    for step in rules:
        excluded = int((reasons == step.key).sum())
        remaining -= excluded
        ledger.append(LedgerStep(step.key, f"{step.label}, excluded", excluded, remaining))
    ledger.append(LedgerStep("analysed", "Analysed", 0, remaining))
    return ledger


PARTICIPANT_ANSWER_COLUMNS = ["participant_id", "question_key", "value", "value_numeric"]


def participant_answers_frame(*, study: Study, keys: list[str]) -> pd.DataFrame:
    """The answers to once-per-participant questions (``Question.Scope.PARTICIPANT``,
    e.g. the demographics' ``party_id`` and ``ideology``) with the given keys: one row per
    participant and question (``PARTICIPANT_ANSWER_COLUMNS``), test sessions included
    (join it to an analysed frame to leave them out)."""
    frame = pd.DataFrame.from_records(
        Response.objects.filter(
            participant__study=study,
            trial__isnull=True,
            question__scope=Question.Scope.PARTICIPANT,
            question__key__in=keys,
        )
        .order_by("participant_id", "question__key")
        .values_list("participant_id", "question__key", "value", "value_numeric")
        .iterator(chunk_size=CHUNK_SIZE),
        columns=PARTICIPANT_ANSWER_COLUMNS,
    )
    frame["value_numeric"] = frame["value_numeric"].astype(float)
    return frame
