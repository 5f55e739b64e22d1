"""Reads of the participant pages: the study's design (kept per process once frozen), a
participant's progress and next step, which steps they may open, their trials and codes."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote
from uuid import UUID

from surveys.models import (
    Article,
    Condition,
    Participant,
    Question,
    Study,
    Trial,
    WithdrawalLog,
    completion_url_is_safe,
)


@dataclass(frozen=True)
class Step:
    """Where a participant is in the flow. ``position`` is set for trial steps (the
    article's position) and check steps (the position of the article they follow)."""

    # "instructions" | "comprehension" | "trial" | "check" | "about" | "finish" | "done"
    # | "withdrawn" | "screened_out"
    name: str
    position: int | None = None


@dataclass(frozen=True)
class StudyDesign:
    """What the participant pages need of a study's design: its questions by scope (in
    the order asked), which questions are required, and whether every condition has a
    quota. Immutable once built; see :func:`study_design`."""

    study_id: int
    by_scope: Mapping[str, tuple[Question, ...]]
    required_ids: frozenset[int]
    # True when the study has conditions and each has a quota: only then can completing
    # a participation fill the study (services.study_close_if_full).
    every_condition_has_quota: bool

    def questions(self, scope: str) -> list[Question]:
        return list(self.by_scope.get(scope, ()))

    @functools.cached_property
    def keys_by_id(self) -> Mapping[int, str]:
        """Every question's key, by its id."""
        return {q.pk: q.key for questions in self.by_scope.values() for q in questions}


def _design_build(study_id: int) -> StudyDesign:
    by_scope: dict[str, list[Question]] = {}
    for question in Question.objects.filter(study_id=study_id).order_by("position", "id"):
        by_scope.setdefault(question.scope, []).append(question)
    # Unordered: the default ordering (by study) would join the study table for nothing.
    quotas = list(
        Condition.objects.filter(study_id=study_id).order_by().values_list("quota", flat=True)
    )
    return StudyDesign(
        study_id=study_id,
        by_scope={scope: tuple(questions) for scope, questions in by_scope.items()},
        required_ids=frozenset(q.pk for qs in by_scope.values() for q in qs if q.required),
        every_condition_has_quota=bool(quotas) and all(q is not None for q in quotas),
    )


@functools.lru_cache(maxsize=128)
def _frozen_design(study_id: int, design_hash: str) -> StudyDesign:
    # ``design_hash`` is only part of the key: a study whose frozen design were ever
    # replaced (it cannot be: live and closed designs are locked) would get a new entry.
    return _design_build(study_id)


def study_design(*, study: Study) -> StudyDesign:
    """The study's design as the participant pages use it.

    A live or closed study's design is frozen (its hash was stored when it went live and
    the admin locks it), so it is read from the database once per process and kept,
    keyed by the study and its design hash: derived, immutable data that every process
    computes alike, so no process holds anything another one needs. Drafts and pilots
    (editable designs) and any study without a stored hash are read afresh every time."""
    if study.is_design_locked and study.design_hash:
        return _frozen_design(study.pk, study.design_hash)
    return _design_build(study.pk)


def study_articles_per_participant(*, study: Study) -> int:
    """How many articles each participant reads: the study's setting in a between-subjects
    design, the sum of the conditions' ``per_participant`` in a within-subjects one."""
    if study.design == Study.Design.WITHIN:
        return sum(study.conditions.values_list("per_participant", flat=True))
    return study.articles_per_participant


def questions_for(*, study: Study, scope: str) -> list[Question]:
    return study_design(study=study).questions(scope)


def check_slot(*, after_article: int | None, n_articles: int) -> int:
    """The position of the article an attention check follows for a participant with
    ``n_articles`` articles: its ``after_article``, or the last article when that is
    empty or beyond the participant's articles (a design edited during a pilot)."""
    if after_article is None or after_article > n_articles:
        return n_articles
    return max(after_article, 1)


def check_pages(*, study: Study, n_articles: int) -> dict[int, list[Question]]:
    """The attention checks by the article position they follow; checks at the same
    point share one page. Ordered as the questions are."""
    return _check_pages(study_design(study=study), n_articles)


def _check_pages(design: StudyDesign, n_articles: int) -> dict[int, list[Question]]:
    pages: dict[int, list[Question]] = {}
    for question in design.questions(Question.Scope.ATTENTION_CHECK):
        slot = check_slot(after_article=question.after_article, n_articles=n_articles)
        pages.setdefault(slot, []).append(question)
    return dict(sorted(pages.items()))


def answer_matches(*, question: Question, value: str) -> bool:
    """Whether a stored answer is a check's expected answer (case and surrounding
    spaces aside)."""
    return value.strip().lower() == question.expected_answer.strip().lower()


def comprehension_passed(*, participant: Participant) -> bool:
    """True when the study asks no comprehension questions, or when the stored answers
    (those of the participant's last try) are all right."""
    questions = questions_for(study=participant.study, scope=Question.Scope.COMPREHENSION)
    if not questions:
        return True
    stored = dict(
        participant.responses.filter(trial__isnull=True, question__in=questions).values_list(
            "question_id", "value"
        )
    )
    return _comprehension_passed(questions, stored)


def _comprehension_passed(questions: list[Question], stored: Mapping[int, str]) -> bool:
    return all(q.pk in stored and answer_matches(question=q, value=stored[q.pk]) for q in questions)


# A stored answer's place: (its trial's id, or None for a once-asked question; the
# question's id).
AnswerKey = tuple[int | None, int]


@dataclass(frozen=True)
class ParticipantProgress:
    """Where a participant is (their next step) and how many articles they have, with
    what that was derived from: their trials' (id, position) and their stored answers.
    A page prefills its form from those, and after storing answers derives the next
    step from them (:func:`progress_after_answers`) instead of reading them back."""

    step: Step
    n_articles: int
    trials: tuple[tuple[int, int], ...] = ()
    answers: Mapping[AnswerKey, str] = field(default_factory=dict)

    def values(self, *, design: StudyDesign, trial_id: int | None) -> dict[str, str]:
        """The stored answers of one trial (or, for None, the once-asked questions'),
        by question key: what a form is prefilled with."""
        keys = design.keys_by_id
        return {
            keys[question_id]: value
            for (answer_trial, question_id), value in self.answers.items()
            if answer_trial == trial_id and question_id in keys
        }


def participant_progress(*, participant: Participant) -> ParticipantProgress:
    """The participant's next step (:func:`participant_next_step`) and their number of
    articles, from two queries (their trials, their answers) and the study's design."""
    trials = tuple(participant.trials.order_by("position").values_list("pk", "position"))
    # order_by(): the models' default orderings (a response by participant, trial and
    # question, each by its own ordering) would join four tables for nothing.
    answers: dict[AnswerKey, str] = {
        (trial_id, question_id): value
        for trial_id, question_id, value in participant.responses.order_by().values_list(
            "trial_id", "question_id", "value"
        )
    }
    return _progress(participant, trials, answers)


def progress_after_answers(
    *,
    participant: Participant,
    progress: ParticipantProgress,
    trial_id: int | None,
    answers: Iterable[tuple[Question, str]],
) -> ParticipantProgress:
    """The progress once ``answers`` (to one trial, or once-asked for None) are stored:
    ``progress`` (read before they were) with them added, for ``participant`` as it is
    now (its status and flags as the writing service left them). No query: a page that
    has just stored its answers knows them. Answers another tab stored meanwhile are
    not seen, which at worst sends the participant to a page they have already
    answered, shown prefilled."""
    merged: dict[AnswerKey, str] = dict(progress.answers)
    merged.update({(trial_id, question.pk): value for question, value in answers})
    return _progress(participant, progress.trials, merged)


def _progress(
    participant: Participant,
    trials: tuple[tuple[int, int], ...],
    answers: Mapping[AnswerKey, str],
) -> ParticipantProgress:
    def progress(step: Step) -> ParticipantProgress:
        return ParticipantProgress(step, len(trials), trials, answers)

    if participant.status == Participant.Status.COMPLETED:
        return progress(Step("done"))
    if participant.status == Participant.Status.WITHDRAWN:
        return progress(Step("withdrawn"))
    if participant.status == Participant.Status.SCREENED_OUT:
        return progress(Step("screened_out"))
    if participant.instructions_seen_at is None:
        return progress(Step("instructions"))
    design = study_design(study=participant.study)
    once: dict[int, str] = {}
    answered: dict[int, int] = defaultdict(int)
    for (trial_id, question_id), value in answers.items():
        if trial_id is None:
            once[question_id] = value
        elif question_id in design.required_ids:
            answered[trial_id] += 1
    return progress(_next_step(participant, design, list(trials), once, answered))


def _next_step(
    participant: Participant,
    design: StudyDesign,
    trials: list[tuple[int, int]],
    once: Mapping[int, str],
    answered: Mapping[int, int],
) -> Step:
    if not _comprehension_passed(design.questions(Question.Scope.COMPREHENSION), once):
        return Step("comprehension")
    required = sum(
        1 for q in design.questions(Question.Scope.PER_ARTICLE) if q.pk in design.required_ids
    )
    pages = _check_pages(design, len(trials))
    for trial_id, position in trials:
        if answered.get(trial_id, 0) < required:
            return Step("trial", position)
        if any(q.required and q.pk not in once for q in pages.get(position, [])):
            return Step("check", position)
    about = design.questions(Question.Scope.PARTICIPANT)
    # Submitted once (its questions may all be optional) and every required one in: a
    # required question added by a pilot's edit brings the page back.
    if about and (
        participant.about_submitted_at is None
        or any(q.required and q.pk not in once for q in about)
    ):
        return Step("about")
    return Step("finish")


def participant_next_step(*, participant: Participant) -> Step:
    """The first thing this participant still has to do. Derived from stored answers
    only, so a refresh, a second tab or a return visit all land on the same step.

    The sequence: instructions, comprehension questions (when the study has any), the
    articles with the attention-check pages among them (after the article each check
    names), the "about you" page, finish."""
    return participant_progress(participant=participant).step


def participant_trial(*, participant: Participant, position: int) -> Trial | None:
    """The participant's trial at ``position``, with its article and condition; None
    when they have no article there."""
    rows = Trial.objects.select_related("article", "condition").filter(
        participant=participant, position=position
    )
    return next(iter(rows.order_by()[:1]), None)


def participant_trials(*, participant: Participant) -> list[Trial]:
    return list(participant.trials.select_related("article").order_by("position"))


def participant_passed_checks(*, participant: Participant) -> bool:
    """True when every attention check answered was answered with its expected answer
    (``surveys.querysets.check_passed``)."""
    checks = study_design(study=participant.study).questions(Question.Scope.ATTENTION_CHECK)
    return not participant.responses.order_by().failing(checks).exists()


# Rank of each step in the sequence; articles and the check pages among them share a
# rank and are ordered by position, a check page right after the article it follows.
_STEP_ORDER = {
    "instructions": 0,
    "comprehension": 1,
    "trial": 2,
    "check": 2,
    "about": 3,
    "finish": 4,
}
_FINAL_STEPS = ("done", "withdrawn", "screened_out")


def _step_key(step: Step) -> tuple[int, int, int]:
    return (_STEP_ORDER[step.name], step.position or 0, 1 if step.name == "check" else 0)


def step_is_reachable(*, requested: Step, current: Step) -> bool:
    """Whether a participant whose next step is ``current`` may open ``requested``:
    any step up to the current one (going back is allowed), nothing beyond it. Once
    the comprehension questions are passed they cannot be retaken; after the end (done,
    withdrawn, screened out) only that end is reachable."""
    if current.name in _FINAL_STEPS or requested.name in _FINAL_STEPS:
        return requested.name == current.name
    if requested.name == "comprehension":
        return current.name == "comprehension"
    return _step_key(requested) <= _step_key(current)


def participant_by_token(*, token: UUID | str) -> Participant | None:
    # Unordered: the token is unique, and the default ordering (by study, whose own is
    # by creation) would only cost compiling and sorting.
    rows = Participant.objects.select_related("study", "condition").filter(token=token)
    return next(iter(rows.order_by()[:1]), None)


def withdrawal_articles(*, participant: Participant) -> list[Article]:
    """The articles a withdrawn participant read, in the order shown (from their
    WithdrawalLog; their trials are gone). Empty when there is no log."""
    log = WithdrawalLog.objects.filter(participant=participant).first()
    if log is None:
        return []
    by_id = Article.objects.in_bulk(log.article_ids)
    return [by_id[pk] for pk in log.article_ids if pk in by_id]


def completion_link(*, study: Study, code: str) -> str:
    """The study's completion URL with ``{code}`` filled in; empty without a URL or code,
    and empty when the stored URL is not http(s) (a row written before the validator):
    participants then see their code without a link. Only the study's own URL is ever
    linked; nothing from the request takes part."""
    if not study.completion_url or not code or not completion_url_is_safe(study.completion_url):
        return ""
    return study.completion_url.replace("{code}", quote(code, safe=""))
