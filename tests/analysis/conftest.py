"""Factories and fixtures for the analysis tests: participants with their trials and
answers, built directly (the participant flow is tested in tests/surveys)."""

from __future__ import annotations

from collections.abc import Mapping

import factory
import pytest
from django.utils import timezone

from surveys.models import Article, Condition, Participant, Question, Response, Study, Trial
from surveys.privacy import keyed_hash


class ParticipantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Participant

    study = factory.LazyAttribute(lambda o: o.condition.study)
    condition = None  # always given
    status = Participant.Status.COMPLETED
    panel = Participant.Panel.PROLIFIC
    panel_pid = factory.Sequence(lambda n: f"PID{n:05d}")
    # What enrolment stores with every panel id (lookups and the constraint use it).
    panel_pid_hash = factory.LazyAttribute(lambda o: keyed_hash(value=o.panel_pid, purpose="panel"))
    seed = factory.Sequence(lambda n: n)
    consented_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.LazyFunction(timezone.now)
    completed_at = factory.LazyAttribute(
        lambda o: timezone.now() if o.status == Participant.Status.COMPLETED else None
    )


class TrialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Trial

    participant = None  # always given
    article = None  # always given
    condition = factory.LazyAttribute(lambda o: o.participant.condition)
    position = 1
    first_shown_at = factory.LazyFunction(timezone.now)
    answered_at = factory.LazyFunction(timezone.now)


class ResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Response

    participant = None  # always given
    trial = None
    question = None  # always given
    value = "yes"
    value_numeric = factory.LazyAttribute(
        lambda o: (
            {"yes": 1.0, "no": 0.0}.get(o.value)
            if o.question.kind == Question.Kind.BINARY
            else (float(o.value) if o.question.kind == Question.Kind.LIKERT else None)
        )
    )


def make_participant(
    study: Study,
    condition_name: str,
    ratings: list[Mapping[str, str]],
    *,
    status: str = Participant.Status.COMPLETED,
    is_test: bool = False,
    attention: str | None = "Blue",
) -> Participant:
    """A participant in the named condition who rated one article per entry of
    ``ratings`` (question key -> answer) and answered the attention check with
    ``attention`` (None: not answered)."""
    condition = Condition.objects.get(study=study, name=condition_name)
    participant = ParticipantFactory.create(condition=condition, status=status, is_test=is_test)
    questions = {q.key: q for q in study.questions.all()}
    articles: list[Article] = list(condition.articles.order_by("id"))
    for position, answers in enumerate(ratings, start=1):
        trial = TrialFactory.create(
            participant=participant,
            article=articles[(position - 1) % len(articles)],
            position=position,
        )
        for key, value in answers.items():
            ResponseFactory.create(
                participant=participant, trial=trial, question=questions[key], value=value
            )
    if attention is not None:
        ResponseFactory.create(
            participant=participant, question=questions["attention"], value=attention
        )
    return participant


def rating(credible: str, believable: int = 3, accurate: int = 3, clear: int = 3) -> dict[str, str]:
    return {
        "credible": credible,
        "believable": str(believable),
        "accurate": str(accurate),
        "clear": str(clear),
    }


@pytest.fixture
def rated_study(live_study: Study) -> Study:
    """The live study with a known set of participations:

    analysed: real 4 people (3 credible), generated 5 people (2 credible);
    excluded: 1 test session, 1 in progress, 1 withdrawn, 2 failed attention checks
    (one answered " blue " - which passes: stripped, case-insensitive - is analysed).
    Believable ratings: real 4,4,3,1 (mean 3); generated 2,2,2,3,1 (mean 2).
    """
    for credible, believable in [("yes", 4), ("yes", 4), ("yes", 3), ("no", 1)]:
        make_participant(live_study, "real", [rating(credible, believable)])
    for credible, believable in [("yes", 2), ("yes", 2), ("no", 2), ("no", 3)]:
        make_participant(live_study, "generated", [rating(credible, believable)])
    make_participant(live_study, "generated", [rating("no", 1)], attention=" blue ")
    make_participant(live_study, "real", [rating("yes")], is_test=True)
    make_participant(
        live_study, "real", [rating("no")], status=Participant.Status.IN_PROGRESS, attention=None
    )
    make_participant(live_study, "generated", [rating("yes")], status=Participant.Status.WITHDRAWN)
    make_participant(live_study, "real", [rating("no")], attention="Red")
    make_participant(live_study, "generated", [rating("yes")], attention="green")
    return live_study
