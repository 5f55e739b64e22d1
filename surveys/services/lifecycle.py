"""The study lifecycle: its design as a document and hash, design validation before
piloting or launch, editability, and status changes."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypedDict

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from surveys.exclusions import exclusion_rule_problems
from surveys.models import Article, Condition, Question, Study
from surveys.selectors import study_articles_per_participant
from surveys.services.assignment import within_assignment

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


# The attributes .annotate() adds to conditions and articles below (for WithAnnotations).
class _ArticleCount(TypedDict):
    n: int


def study_design_document(*, study: Study) -> dict[str, object]:
    """Everything that defines what participants see and are asked, as plain data.

    The design and the per-condition counts are included for within-subjects designs
    only, so that between-subjects designs keep the hash they had before designs
    existed."""
    within = study.design == Study.Design.WITHIN
    return {
        **({"design": study.design} if within else {}),
        "articles_per_participant": study_articles_per_participant(study=study),
        "seed": study.seed,
        "texts": [study.consent_text, study.instructions_text, study.debrief_text],
        "conditions": [
            {
                "name": c.name,
                "reference": c.is_reference,
                "articles": sorted(c.articles.values_list("content_hash", flat=True)),
                # Only when set, so that designs without quotas keep the hash they had
                # before quotas existed.
                **({"quota": c.quota} if c.quota is not None else {}),
                **({"per_participant": c.per_participant} if within else {}),
                # Manipulations, likewise only when set.
                **({"branding": c.branding} if c.branding else {}),
                **({"disclaimer": c.disclaimer} if c.disclaimer else {}),
                # The published result this study replicates, likewise only when set.
                **({"original_rate": c.original_rate} if c.original_rate is not None else {}),
                **({"original_n": c.original_n} if c.original_n is not None else {}),
            }
            for c in study.conditions.order_by("name")
        ],
        # ``Question.scoring`` (how analysis scores a question) is deliberately left out:
        # adding it would change the hash of every live study, and the question inline is
        # locked once a study is live, which freezes the definition anyway.
        "questions": [
            {
                "key": q.key,
                "text": q.text,
                "kind": q.kind,
                "scope": q.scope,
                "scale": [q.scale_min, q.scale_max],
                "labels": [q.min_label, q.max_label],
                "choices": q.choices,
                "required": q.required,
                "expected": q.expected_answer,
                "position": q.position,
                **({"after_article": q.after_article} if q.after_article is not None else {}),
            }
            for q in study.questions.order_by("scope", "position", "key")
        ],
        # Exclusion rules are part of the pre-registered design; only when there are any,
        # so that studies without them keep their hash.
        **(
            {
                "exclusion_rules": [
                    [r.kind, r.threshold, r.question_key]
                    for r in study.exclusion_rules.order_by("position", "id")
                ]
            }
            if study.exclusion_rules.exists()
            else {}
        ),
        # Only when set, so that earlier designs keep their hash.
        **({"require_panel_id": True} if study.require_panel_id else {}),
        **(
            {"comprehension_attempts": study.comprehension_attempts}
            if study.questions.filter(scope=Question.Scope.COMPREHENSION).exists()
            else {}
        ),
        # Only when set, so that existing designs keep their hash (surveys.fraud).
        **({"flagged_hold_no_place": True} if study.flagged_hold_no_place else {}),
        # The preregistered correction, only when not the default (Holm), so that
        # existing designs keep their hash.
        **(
            {"multiple_comparisons": study.multiple_comparisons}
            if study.multiple_comparisons != Study.MultipleComparisons.HOLM
            else {}
        ),
        # The preregistration's own words, likewise only when filled in.
        **({"hypotheses": study.hypotheses} if study.hypotheses else {}),
        **({"primary_comparison": study.primary_comparison} if study.primary_comparison else {}),
        # The replication plan (analysis.stats.replication), only when set.
        **({"original_citation": study.original_citation} if study.original_citation else {}),
        **(
            {"equivalence_bound": study.equivalence_bound}
            if study.equivalence_bound is not None
            else {}
        ),
    }


def study_design_hash(*, study: Study) -> str:
    document = json.dumps(study_design_document(study=study), sort_keys=True)
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def _within_problems(
    study: Study, conditions: Sequence[WithAnnotations[Condition, _ArticleCount]]
) -> list[str]:
    problems: list[str] = []
    for condition in conditions:
        if condition.per_participant < 1:
            problems.append(
                f'Condition "{condition.name}": set how many of its articles each participant '
                "reads (per participant, at least 1) in a within-subjects design."
            )
        elif condition.n < condition.per_participant:
            problems.append(
                f'Condition "{condition.name}" has {condition.n} article(s); each '
                f"participant reads {condition.per_participant} of them."
            )
        if condition.quota is not None:
            problems.append(
                f'Condition "{condition.name}" has a quota: quotas apply to between-subjects '
                "designs only (in a within-subjects design everyone sees every condition)."
            )
    if not problems and conditions:
        need = sum(c.per_participant for c in conditions)
        got = len(within_assignment(conditions=conditions, exposures={}, rng=random.Random(0)))
        if got < need:
            problems.append(
                f"Each participant reads {need} articles, no two of the same story (a real "
                "article and a version generated from its lede are the same story), but the "
                f"conditions' articles allow only {got}. Add articles about other stories."
            )
    return problems


def study_validate_design(*, study: Study) -> None:
    """Raise ValidationError listing every reason the study cannot take participants."""
    problems: list[str] = []
    conditions = list(study.conditions.annotate(n=Count("articles")))
    if not conditions:
        problems.append("The study has no conditions.")
    if study.design == Study.Design.WITHIN:
        problems.extend(_within_problems(study, conditions))
    else:
        for condition in conditions:
            if condition.n < study.articles_per_participant:
                problems.append(
                    f'Condition "{condition.name}" has {condition.n} article(s); each '
                    f"participant sees {study.articles_per_participant}."
                )
    if len([c for c in conditions if c.is_reference]) != 1 and len(conditions) > 1:
        problems.append("Mark exactly one condition as the reference (e.g. the real articles).")
    if not study.questions.filter(scope=Question.Scope.PER_ARTICLE).exists():
        problems.append("The study has no questions about the articles.")
    primary = study.primary_comparison
    if primary and primary not in {c.name for c in conditions if not c.is_reference}:
        problems.append(
            f'The primary comparison names "{primary}", which is not a condition compared '
            "with the reference."
        )
    problems.extend(_check_problems(study))
    problems.extend(exclusion_rule_problems(study=study))
    if problems:
        raise ValidationError(problems)


def _expected_problem(question: Question, label: str) -> str | None:
    """Why a check's expected answer cannot pass, or None."""
    if not question.expected_answer.strip():
        return f'{label} "{question.key}" has no expected answer.'
    offered = {
        Question.Kind.BINARY: ["yes", "no"],
        Question.Kind.CHOICE: [str(c) for c in question.choices],
    }.get(Question.Kind(question.kind))
    expected = question.expected_answer.strip().lower()
    if offered is not None and expected not in [o.strip().lower() for o in offered]:
        return (
            f'{label} "{question.key}" expects "{question.expected_answer}", which is not '
            f"one of its options ({', '.join(offered)}): nobody could pass it."
        )
    return None


def _check_problems(study: Study) -> list[str]:
    """Attention checks: a passable expected answer, placed after an article every
    participant reads. Comprehension questions: a passable expected answer, at least one
    try."""
    problems: list[str] = []
    n_articles = study_articles_per_participant(study=study)
    for check in study.questions.filter(scope=Question.Scope.ATTENTION_CHECK):
        if (problem := _expected_problem(check, "Attention check")) is not None:
            problems.append(problem)
        after = check.after_article
        if after is not None and not 1 <= after <= max(n_articles, 1):
            problems.append(
                f'Attention check "{check.key}" is asked after article {after}, but each '
                f"participant reads {n_articles}: choose a number from 1 to "
                f"{max(n_articles, 1)}, or leave it empty to ask it after the last article."
            )
    comprehension = study.questions.filter(scope=Question.Scope.COMPREHENSION)
    for question in comprehension:
        if (problem := _expected_problem(question, "Comprehension question")) is not None:
            problems.append(problem)
    if comprehension.exists() and study.comprehension_attempts < 1:
        problems.append(
            "Give participants at least one try at the comprehension questions "
            "(comprehension attempts)."
        )
    return problems


def study_assert_editable(*, study: Study) -> None:
    """Raise ValidationError when the study's design is locked (live or closed).

    Reads the status from the database, not from the instance passed in: an admin form
    opened while the study was a draft must not write after someone launched it.
    """
    status = Study.objects.filter(pk=study.pk).values_list("status", flat=True).first()
    if status in (Study.Status.LIVE, Study.Status.CLOSED):
        raise ValidationError(
            f'The study "{study.slug}" is {status}: its design (texts, conditions, questions, '
            "articles per participant, seed) is locked. Copy it into a new study to change it."
        )


@transaction.atomic
def condition_add_articles(*, condition: Condition, articles: Iterable[Article]) -> int:
    """Add ``articles`` to ``condition``'s pool (those already in it stay once); returns
    how many were new. Raises ValidationError when the study's design is locked."""
    study_assert_editable(study=condition.study)
    wanted = {article.pk for article in articles}
    present = set(condition.articles.filter(pk__in=wanted).values_list("pk", flat=True))
    condition.articles.add(*(wanted - present))
    return len(wanted - present)


def study_sync_articles_per_participant(*, study: Study) -> None:
    """In a within-subjects design, store the derived articles-per-participant count (the
    sum of the conditions' ``per_participant``) so that every reader of the field agrees.
    Does nothing for between-subjects designs or locked studies."""
    if study.design != Study.Design.WITHIN or study.is_design_locked:
        return
    total = study_articles_per_participant(study=study)
    if total != study.articles_per_participant:
        study.articles_per_participant = total
        Study.objects.filter(pk=study.pk).update(articles_per_participant=total)


@transaction.atomic
def study_set_status(*, study: Study, status: str) -> Study:
    """Move a study through draft -> pilot -> live -> closed.

    Going live freezes the design: its hash is stored, and every participation records
    the hash it ran under. A live or closed study cannot return to draft or pilot.
    """
    study = Study.objects.select_for_update().get(pk=study.pk)
    allowed = {
        Study.Status.DRAFT: {Study.Status.PILOT, Study.Status.LIVE},
        Study.Status.PILOT: {Study.Status.DRAFT, Study.Status.LIVE, Study.Status.CLOSED},
        Study.Status.LIVE: {Study.Status.CLOSED},
        Study.Status.CLOSED: set(),
    }
    if status == study.status:
        return study
    if status not in allowed[Study.Status(study.status)]:
        raise ValidationError(f"A {study.status} study cannot be set to {status}.")
    if status in (Study.Status.PILOT, Study.Status.LIVE):
        study_validate_design(study=study)
        study_sync_articles_per_participant(study=study)
    study.design_hash = study_design_hash(study=study)
    study.status = status
    now = timezone.now()
    if status == Study.Status.LIVE:
        study.launched_at = now
    if status == Study.Status.CLOSED:
        study.closed_at = now
    study.save(update_fields=["status", "design_hash", "launched_at", "closed_at"])
    return study
