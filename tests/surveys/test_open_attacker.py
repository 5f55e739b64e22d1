"""Participant pages tried as an attacker: another participation's pages and trials, a
study closed under a participant, and a whole participation's POSTs replayed (what
tests/surveys/test_flow.py and test_concurrency.py do not already pin)."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from surveys.instruments import instrument_apply
from surveys.models import Participant, Response, Study, Trial, WithdrawalLog
from surveys.services import study_set_status, trial_answer
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}
ABOUT = {
    "age_bracket": "25-34",
    "gender": "Woman",
    "party_id": "Independent",
    "ideology": "4",
    "seen_before": "No",
    "looked_up": "no",
}
FLOW_POSTS = ["instructions/", "article/1/", "article/2/", "check/", "about-you/", "finish/"]


def consent(client: Client, study: Study, **panel: str) -> str:
    response = client.post(f"/s/{study.slug}/", {"consent": "yes", **panel})
    assert response.status_code == 302
    return str(response["Location"])


def full_study() -> Study:
    """Two articles per participant, an attention check, and demographics."""
    study = StudyFactory.create_live(articles_per_participant=2)
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT)
    study.refresh_from_db()
    instrument_apply(study=study, name="demographics")
    return study_set_status(study=study, status=Study.Status.LIVE)


def walk(client: Client, base: str) -> list[tuple[str, dict[str, str]]]:
    """Complete a participation; returns every POST made (path, data)."""
    posts = [
        (base + "instructions/", {}),
        (base + "article/1/", GOOD),
        (base + "article/2/", GOOD),
        (base + "check/", {"attention": "Blue"}),
        (base + "about-you/", ABOUT),
        (base + "finish/", {}),
    ]
    for path, data in posts:
        assert client.post(path, data).status_code == 302, path
    return posts


def snapshot() -> dict[str, object]:
    return {
        "participants": list(Participant.objects.order_by("pk").values()),
        "trials": list(Trial.objects.order_by("pk").values()),
        "responses": list(Response.objects.order_by("pk").values()),
        "withdrawals": list(WithdrawalLog.objects.order_by("pk").values()),
    }


# ---------------------------------------------------------------------------------------
# Another participation


def test_a_participant_cannot_reach_another_participation_without_its_token():
    study = full_study()
    mine = Client()
    my_base = consent(mine, study, PROLIFIC_PID="ME")
    theirs_base = consent(Client(), study, PROLIFIC_PID="THEM")
    their_token = theirs_base.split("/")[2]
    before = snapshot()
    # My pages never carry their token, nor does the study link with my cookie.
    for step in ("", "instructions/", "withdraw/"):
        response = mine.get(my_base + step, follow=True)
        assert their_token not in response.content.decode()
    assert mine.post(f"/s/{study.slug}/", {"consent": "yes"})["Location"] == my_base
    # Guessing: any other token is a 404 for every page and method, and writes nothing.
    guess = f"/p/{uuid.uuid4()}/"
    for step in [*FLOW_POSTS, "withdraw/", "comprehension/", "check/1/"]:
        assert mine.post(guess + step, GOOD).status_code == 404, step
        assert mine.get(guess + step).status_code == 404, step
    assert snapshot() == before


def test_an_answer_cannot_be_written_to_another_participants_trial():
    study = full_study()
    me = Participant.objects.get(token=consent(Client(), study, PROLIFIC_PID="ME").split("/")[2])
    them = Participant.objects.get(
        token=consent(Client(), study, PROLIFIC_PID="THEM").split("/")[2]
    )
    their_trial = them.trials.get(position=1)
    question = study.questions.get(key="credible")
    with pytest.raises(ValidationError):
        trial_answer(participant=me, trial=their_trial, answers={question: ("no", 0.0)})
    assert Response.objects.count() == 0
    assert Trial.objects.get(pk=their_trial.pk).answered_at is None


# ---------------------------------------------------------------------------------------
# A closed study


def test_after_the_study_closes_a_completed_participation_is_frozen_and_nobody_new_enters():
    study = full_study()
    client = Client()
    base = consent(client, study, PROLIFIC_PID="P1")
    posts = walk(client, base)
    study_set_status(study=study, status=Study.Status.CLOSED)
    before = snapshot()
    for path, data in posts:
        changed = {key: "no" if value == "yes" else value for key, value in data.items()}
        assert client.post(path, changed)["Location"] == base + "debrief/"
    assert snapshot() == before
    assert Client().post(f"/s/{study.slug}/", {"consent": "yes"}).status_code == 410
    assert (
        Client().post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "NEW"}).status_code
        == 410
    )
    assert Participant.objects.count() == 1


# ---------------------------------------------------------------------------------------
# Replays


def test_replaying_every_post_of_a_completed_participation_changes_nothing():
    study = full_study()
    client = Client()
    base = consent(client, study, PROLIFIC_PID="P1")
    posts = walk(client, base)
    before = snapshot()
    # The captured requests, replayed from a fresh browser (no cookies), twice over,
    # the consent included.
    for _ in range(2):
        replayer = Client()
        assert consent(replayer, study, PROLIFIC_PID="P1") == base
        for path, data in posts:
            response = replayer.post(path, data)
            assert response.status_code == 302
            assert response["Location"] == base + "debrief/"
    assert snapshot() == before


def test_replaying_answers_during_the_participation_writes_one_row_per_question():
    study = full_study()
    client = Client()
    base = consent(client, study, PROLIFIC_PID="P1")
    client.post(base + "instructions/")
    for _ in range(5):
        assert client.post(base + "article/1/", GOOD).status_code == 302
    participant = Participant.objects.get()
    assert Response.objects.filter(participant=participant).count() == len(GOOD)
    answered = Trial.objects.get(participant=participant, position=1).answered_at
    client.post(base + "article/1/", {**GOOD, "credible": "no"})
    # A revisit may change the answer (as the back button allows), never add a row or
    # move the first answer time.
    assert Response.objects.filter(participant=participant).count() == len(GOOD)
    assert Trial.objects.get(participant=participant, position=1).answered_at == answered


def test_replaying_a_withdrawal_and_then_the_answers_restores_nothing():
    study = full_study()
    client = Client()
    base = consent(client, study, PROLIFIC_PID="P1")
    posts = walk(client, base)
    assert client.post(base + "withdraw/").status_code == 302
    before = snapshot()
    for _ in range(2):
        assert client.post(base + "withdraw/").status_code == 302
        for path, data in posts:
            response = client.post(path, data)
            # The withdrawn participation's trials are gone: their pages are 404.
            if "/article/" in path:
                assert response.status_code == 404
            else:
                assert response.get("Location") == base + "debrief/", path
    assert snapshot() == before
    assert Response.objects.count() == 0
