"""Concurrent participants through the real pages, on PostgreSQL (row locks matter).

Threads start together on a barrier; each closes its own database connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest
from django.db import connection
from django.test import Client

from surveys.models import Participant, Response, Study
from tests.factories import StudyFactory

T = TypeVar("T")

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}


def run_together(count: int, work: Callable[[int], T]) -> list[T]:
    """Run work(i) in ``count`` threads released at the same moment; re-raise errors."""
    barrier = threading.Barrier(count)
    results: list[T | None] = [None] * count
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]


def consent(study: Study, **panel: str) -> int:
    return Client().post(f"/s/{study.slug}/", {"consent": "yes", **panel}).status_code


def test_simultaneous_arrivals_are_balanced_across_conditions():
    study = StudyFactory.create_live(articles_per_condition=3)
    statuses = run_together(20, lambda i: consent(study, PROLIFIC_PID=f"P{i}"))
    assert statuses == [302] * 20
    counts = [
        Participant.objects.filter(study=study, condition__name=name).count()
        for name in ("real", "generated")
    ]
    assert sum(counts) == 20
    assert abs(counts[0] - counts[1]) <= 1


def test_the_same_panel_id_arriving_eight_times_at_once_gets_one_participation():
    study = StudyFactory.create_live()
    statuses = run_together(8, lambda i: consent(study, PROLIFIC_PID="SAME"))
    assert statuses == [302] * 8
    participant = Participant.objects.get(study=study)
    assert participant.panel_pid == "SAME"
    assert participant.trials.count() == 1


def test_concurrent_double_submission_of_a_trial_writes_one_row_per_question():
    study = StudyFactory.create_live()
    client = Client()
    response = client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "P1"})
    participant = Participant.objects.get()
    client.post(f"/p/{participant.token}/instructions/")
    page = f"/p/{participant.token}/article/1/"

    def submit(i: int) -> int:
        # Each thread has its own client, like several tabs sharing nothing but the token.
        return Client().post(page, {**GOOD, "clear": str(1 + i % 4)}).status_code

    statuses = run_together(8, submit)
    assert response.status_code == 302
    assert statuses == [302] * 8
    rows = Response.objects.filter(participant=participant)
    assert rows.count() == 4
    assert sorted(rows.values_list("question__key", flat=True)) == [
        "accurate",
        "believable",
        "clear",
        "credible",
    ]
    assert rows.get(question__key="clear").value in {"1", "2", "3", "4"}


def test_concurrent_finish_completes_once():
    study = StudyFactory.create_live()
    client = Client()
    client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "P1"})
    participant = Participant.objects.get()
    base = f"/p/{participant.token}/"
    client.post(base + "instructions/")
    client.post(base + "article/1/", GOOD)
    client.post(base + "check/", {"attention": "Blue"})

    statuses = run_together(6, lambda i: Client().post(base + "finish/").status_code)
    assert statuses == [302] * 6
    participant.refresh_from_db()
    assert participant.status == "completed"
    assert Response.objects.filter(participant=participant).count() == 5


def test_simultaneous_arrivals_never_overshoot_the_quotas():
    study = StudyFactory.create_live(articles_per_condition=3)
    study.conditions.filter(name="real").update(quota=3)
    study.conditions.filter(name="generated").update(quota=2)
    statuses = run_together(12, lambda i: consent(study, PROLIFIC_PID=f"P{i}"))
    assert sorted(statuses) == [302] * 5 + [503] * 7
    counts = {
        name: Participant.objects.filter(study=study, condition__name=name).count()
        for name in ("real", "generated")
    }
    assert counts == {"real": 3, "generated": 2}


def test_the_last_two_completions_at_once_close_the_study():
    study = StudyFactory.create_live()
    study.conditions.update(quota=1)
    bases = []
    for pid in ("P1", "P2"):
        client = Client()
        client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": pid})
        participant = Participant.objects.get(panel_pid=pid)
        base = f"/p/{participant.token}/"
        client.post(base + "instructions/")
        client.post(base + "article/1/", GOOD)
        client.post(base + "check/", {"attention": "Blue"})
        bases.append(base)

    statuses = run_together(2, lambda i: Client().post(bases[i] + "finish/").status_code)
    assert statuses == [302, 302]
    assert Participant.objects.filter(study=study, status="completed").count() == 2
    study.refresh_from_db()
    assert study.status == "closed"


def test_withdrawal_racing_an_answer_leaves_no_answers():
    study = StudyFactory.create_live()
    client = Client()
    client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "P1"})
    participant = Participant.objects.get()
    base = f"/p/{participant.token}/"
    client.post(base + "instructions/")

    def act(i: int) -> int:
        if i % 2:
            return Client().post(base + "withdraw/").status_code
        return Client().post(base + "article/1/", GOOD).status_code

    statuses = run_together(6, act)
    assert all(status in (302, 404) for status in statuses)
    participant.refresh_from_db()
    assert participant.status == "withdrawn"
    assert Response.objects.filter(participant=participant).count() == 0
    assert participant.trials.count() == 0


def test_simultaneous_arrivals_in_a_within_design_get_balanced_story_disjoint_articles():
    from collections import Counter

    from surveys.models import Trial
    from tests.surveys.builders import story_of, within_study

    study = within_study(stories=10, real_each=3, generated_each=3)
    statuses = run_together(16, lambda i: consent(study, PROLIFIC_PID=f"P{i}"))
    assert statuses == [302] * 16
    participants = Participant.objects.filter(study=study)
    assert participants.count() == 16
    for participant in participants:
        assert participant.condition_id is None
        trials = list(participant.trials.select_related("article", "condition"))
        assert Counter(t.condition.name for t in trials) == {"real": 3, "generated": 3}
        assert len({story_of(t.article) for t in trials}) == 6
    # Each enrolment saw the ones before it (the study row is locked while assigning).
    for condition in study.conditions.all():
        shown = Counter(
            Trial.objects.filter(condition=condition).values_list("article_id", flat=True)
        )
        counts = [shown.get(a.pk, 0) for a in condition.articles.all()]
        assert sum(counts) == 48
        assert max(counts) - min(counts) <= 1, sorted(counts)
