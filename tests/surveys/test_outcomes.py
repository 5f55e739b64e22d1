"""Distinct outcome codes for panels: completed, failed the attention check, withdrawn."""

from __future__ import annotations

import pytest
from django.test import Client

from surveys.models import Participant, Study
from tests.factories import StudyFactory

GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}


def take_study(study: Study, *, pid: str, attention: str) -> tuple[Client, Participant]:
    client = Client()
    response = client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": pid})
    assert response.status_code == 302
    participant = Participant.objects.get(panel_pid=pid)
    base = f"/p/{participant.token}/"
    assert client.post(base + "instructions/").status_code == 302
    assert client.post(base + "article/1/", GOOD).status_code == 302
    assert client.post(base + "check/", {"attention": attention}).status_code == 302
    response = client.post(base + "finish/")
    assert response.status_code == 302
    assert response["Location"] == base + "debrief/"
    participant.refresh_from_db()
    return client, participant


@pytest.fixture
def study(db):  # type: ignore[no-untyped-def]
    study = StudyFactory.create_live(
        completion_code="PASSED1",
        failed_check_code="FAILED1",
        withdrawn_code="WITHDRAWN1",
        completion_url="https://app.prolific.com/submissions/complete?cc={code}",
    )
    return study


@pytest.mark.django_db
def test_failing_the_attention_check_completes_with_the_failed_check_code(study):
    client, participant = take_study(study, pid="F1", attention="Red")
    assert participant.status == "completed"
    assert participant.completion_code == "FAILED1"
    response = client.get(f"/p/{participant.token}/debrief/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "FAILED1" in html
    assert "PASSED1" not in html
    assert "https://app.prolific.com/submissions/complete?cc=FAILED1" in html


@pytest.mark.django_db
def test_passing_the_attention_check_gets_the_completion_code(study):
    client, participant = take_study(study, pid="P1", attention="Blue")
    assert participant.completion_code == "PASSED1"
    html = client.get(f"/p/{participant.token}/debrief/").content.decode()
    assert "https://app.prolific.com/submissions/complete?cc=PASSED1" in html
    assert "FAILED1" not in html


@pytest.mark.django_db
def test_the_check_is_compared_ignoring_case_and_spaces(study):
    study.questions.filter(key="attention").update(expected_answer=" blue ")
    _, participant = take_study(study, pid="P1", attention="Blue")
    assert participant.completion_code == "PASSED1"


@pytest.mark.django_db
def test_without_a_failed_check_code_everyone_gets_the_completion_code(db):
    study = StudyFactory.create_live(completion_code="ONLY1")
    _, failed = take_study(study, pid="F1", attention="Green")
    _, passed = take_study(study, pid="P1", attention="Blue")
    assert (failed.completion_code, passed.completion_code) == ("ONLY1", "ONLY1")


@pytest.mark.django_db
def test_unique_codes_stay_unique_when_only_the_failed_code_is_set(db):
    study = StudyFactory.create_live(failed_check_code="FAILED1")
    _, first = take_study(study, pid="P1", attention="Blue")
    _, second = take_study(study, pid="P2", attention="Blue")
    _, failed = take_study(study, pid="F1", attention="Red")
    assert first.completion_code != second.completion_code
    assert len(first.completion_code) == 8
    assert failed.completion_code == "FAILED1"


@pytest.mark.django_db
def test_the_code_given_does_not_change_when_the_study_codes_are_edited_later(study):
    client, participant = take_study(study, pid="F1", attention="Red")
    Study.objects.filter(pk=study.pk).update(failed_check_code="CHANGED", completion_code="NEW")
    html = client.get(f"/p/{participant.token}/debrief/").content.decode()
    assert "FAILED1" in html
    assert "CHANGED" not in html


@pytest.mark.django_db
def test_withdrawing_gets_the_withdrawn_code_and_link(study):
    client = Client()
    client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "W1"})
    participant = Participant.objects.get(panel_pid="W1")
    response = client.post(f"/p/{participant.token}/withdraw/")
    assert response.status_code == 302
    participant.refresh_from_db()
    assert participant.completion_code == "WITHDRAWN1"
    html = client.get(response["Location"]).content.decode()
    assert "https://app.prolific.com/submissions/complete?cc=WITHDRAWN1" in html


@pytest.mark.django_db
def test_no_panel_link_without_a_completion_url(db):
    study = StudyFactory.create_live(completion_url="", completion_code="C1")
    client, participant = take_study(study, pid="P1", attention="Blue")
    html = client.get(f"/p/{participant.token}/debrief/").content.decode()
    assert "C1" in html
    assert "Return to the study panel" not in html
