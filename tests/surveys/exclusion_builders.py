"""Studies with exclusion rules and hand-made participants (their timings, ratings and
attention-check answers), for the exclusion-rule and ledger tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.utils import timezone

from surveys.models import Condition, ExclusionRule, Participant, Question, Response, Study, Trial
from tests.factories import ConditionFactory, QuestionFactory, RealArticleFactory, StudyFactory

WORDS = 60  # every article of these studies is exactly 60 words long


def rules_study(*, attention: bool = True, articles_per_participant: int = 2) -> Study:
    """A draft between-subjects study, two conditions of 60-word articles, the Kreps
    questions (credible yes/no; believable, accurate, clear on 1-4), optionally the
    attention check (expected "Blue")."""
    study = StudyFactory.create(articles_per_participant=articles_per_participant)
    for name, reference in (("real", True), ("generated", False)):
        condition = ConditionFactory.create(study=study, name=name, is_reference=reference)
        for i in range(3):
            condition.articles.add(
                RealArticleFactory.create(title=f"{name} {i} {study.slug}", body="word " * WORDS)
            )
    QuestionFactory.create_kreps_set(study=study)
    if attention:
        QuestionFactory.create(
            study=study,
            key="attention",
            kind=Question.Kind.CHOICE,
            scope=Question.Scope.ATTENTION_CHECK,
            choices=["Red", "Blue", "Green"],
            expected_answer="Blue",
        )
    return study


def person(
    study: Study,
    *,
    believable: Sequence[int] = (3, 2),
    accurate: Sequence[int] | None = None,
    seconds: Sequence[float | None] = (60, 60),
    visible_ms: Sequence[int | None] | None = None,
    attention: str | None = "Blue",
    status: str = Participant.Status.COMPLETED,
    is_test: bool = False,
    condition: str = "real",
) -> Participant:
    """A participant who read one article per entry of ``believable`` (their answer on
    1-4), spending ``seconds`` between first showing and answering each (None: the page
    was never timed) and ``visible_ms`` of visible time (None: no JavaScript)."""
    now = timezone.now()
    group = Condition.objects.get(study=study, name=condition)
    participant = Participant.objects.create(
        study=study,
        condition=group,
        status=status,
        is_test=is_test,
        seed=0,
        consented_at=now,
        last_seen_at=now,
        completed_at=now if status == Participant.Status.COMPLETED else None,
    )
    questions = {q.key: q for q in study.questions.all()}
    articles = list(group.articles.order_by("id"))
    accurate = accurate or [3] * len(believable)
    visible = visible_ms or [None] * len(believable)
    for position, (belief, accuracy, spent, shown_ms) in enumerate(
        zip(believable, accurate, seconds, visible, strict=True), start=1
    ):
        trial = Trial.objects.create(
            participant=participant,
            article=articles[position - 1],
            condition=group,
            position=position,
            first_shown_at=None if spent is None else now,
            answered_at=None if spent is None else now + timedelta(seconds=spent),
            visible_ms=shown_ms,
        )
        for key, value in (("credible", "yes"), ("believable", belief), ("accurate", accuracy)):
            Response.objects.create(
                participant=participant,
                trial=trial,
                question=questions[key],
                value=str(value),
                value_numeric=1.0 if value == "yes" else float(value),
            )
    if attention is not None:
        Response.objects.create(
            participant=participant, question=questions["attention"], value=attention
        )
    return participant


def add_rule(study: Study, kind: str, position: int = 0, **fields: object) -> ExclusionRule:
    return ExclusionRule.objects.create(study=study, kind=kind, position=position, **fields)
