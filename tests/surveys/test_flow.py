"""The participant pages, endpoint by endpoint, each with its negative cases."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils.html import escape

from surveys.models import (
    WIKINEWS_ATTRIBUTION,
    Participant,
    Response,
    Study,
    Team,
    TeamMembership,
    Trial,
)
from surveys.services import study_set_status
from tests.factories import StudyFactory

UNKNOWN = uuid.UUID("00000000-0000-4000-8000-000000000000")
GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}


def enrol(client: Client, study: Study, **panel: str) -> Participant:
    response = client.post(f"/s/{study.slug}/", {"consent": "yes", **panel})
    assert response.status_code == 302
    token = response["Location"].split("/")[2]
    return Participant.objects.get(token=token)


def url(participant: Participant, step: str = "") -> str:
    return f"/p/{participant.token}/{step}"


def walk_to_check(client: Client, participant: Participant) -> None:
    assert client.post(url(participant, "instructions/")).status_code == 302
    for position in range(1, participant.trials.count() + 1):
        response = client.post(url(participant, f"article/{position}/"), GOOD)
        assert response.status_code == 302


@pytest.fixture
def two_article_study(db):  # type: ignore[no-untyped-def]
    return StudyFactory.create_live(articles_per_participant=2)


# ---------------------------------------------------------------------------------------
# Start page


@pytest.mark.django_db
def test_get_start_shows_consent_and_writes_nothing(live_study):
    client = Client()
    response = client.get(
        f"/s/{live_study.slug}/?PROLIFIC_PID=P1&STUDY_ID=S1&SESSION_ID=X1&utm_source=mail"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert live_study.title in html
    assert "I agree to take part" in html
    assert 'name="PROLIFIC_PID" value="P1"' in html
    assert 'name="SESSION_ID" value="X1"' in html
    assert "utm_source" not in html
    assert Participant.objects.count() == 0
    assert Session.objects.count() == 0


@pytest.mark.django_db
def test_get_start_carries_mturk_ids(live_study):
    response = Client().get(f"/s/{live_study.slug}/?workerId=W1&hitId=H1&assignmentId=A1")
    assert response.status_code == 200
    html = response.content.decode()
    for name, value in [("workerId", "W1"), ("hitId", "H1"), ("assignmentId", "A1")]:
        assert f'name="{name}" value="{value}"' in html
    assert Participant.objects.count() == 0


@pytest.mark.django_db
def test_post_without_consent_shows_error_and_writes_nothing(live_study):
    response = Client().post(f"/s/{live_study.slug}/", {"PROLIFIC_PID": "P1"})
    assert response.status_code == 200
    assert "Please tick the box" in response.content.decode()
    assert Participant.objects.count() == 0
    assert Trial.objects.count() == 0


@pytest.mark.django_db
def test_post_with_consent_enrols_with_panel_ids_and_leads_to_instructions(live_study):
    client = Client()
    response = client.post(
        f"/s/{live_study.slug}/",
        {"consent": "yes", "PROLIFIC_PID": "P1", "STUDY_ID": "S1", "SESSION_ID": "X1"},
        HTTP_USER_AGENT="TestBrowser/1.0",
    )
    assert response.status_code == 302
    participant = Participant.objects.get()
    assert response["Location"] == f"/p/{participant.token}/"
    assert (participant.panel, participant.panel_pid) == ("prolific", "P1")
    assert (participant.panel_study_id, participant.panel_session_id) == ("S1", "X1")
    assert participant.user_agent == "TestBrowser/1.0"
    assert participant.is_test is False
    assert participant.trials.count() == 1
    response = client.get(response["Location"])
    assert response.status_code == 302
    assert response["Location"] == f"/p/{participant.token}/instructions/"


@pytest.mark.django_db
def test_unknown_slug_is_a_404_with_a_clear_message():
    response = Client().get("/s/no-such-study/")
    assert response.status_code == 404
    assert "Study not found" in response.content.decode()
    response = Client().post("/s/no-such-study/", {"consent": "yes"})
    assert response.status_code == 404
    assert Participant.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["draft", "closed"])
def test_study_not_open_refuses_politely_and_writes_nothing(status):
    study = StudyFactory.create_live()
    if status == "draft":
        Study.objects.filter(pk=study.pk).update(status="draft")
    else:
        study_set_status(study=study, status="closed")
    client = Client()
    for response in [
        client.get(f"/s/{study.slug}/?PROLIFIC_PID=P1"),
        client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "P1"}),
    ]:
        assert response.status_code == 410
        assert "This study is not open" in response.content.decode()
    assert Participant.objects.count() == 0


@pytest.mark.django_db
def test_pilot_study_accepts_participants():
    study = StudyFactory.create_live()
    Study.objects.filter(pk=study.pk).update(status="pilot")
    participant = enrol(Client(), study, PROLIFIC_PID="P1")
    assert participant.study_id == study.pk


@pytest.mark.django_db
def test_second_visit_with_same_prolific_id_resumes_same_participation(two_article_study):
    first = enrol(Client(), two_article_study, PROLIFIC_PID="P1")
    articles = list(first.trials.values_list("position", "article_id"))
    other_device = Client()
    response = other_device.get(f"/s/{two_article_study.slug}/?PROLIFIC_PID=P1")
    assert response.status_code == 302
    assert response["Location"] == f"/p/{first.token}/"
    # A second consent POST (double click, second tab) lands on the same participation.
    again = enrol(other_device, two_article_study, PROLIFIC_PID="P1")
    assert again.pk == first.pk
    assert Participant.objects.count() == 1
    assert list(again.trials.values_list("position", "article_id")) == articles


@pytest.mark.django_db
def test_participant_without_panel_id_resumes_through_the_session(live_study):
    client = Client()
    first = enrol(client, live_study)
    response = client.get(f"/s/{live_study.slug}/")
    assert response.status_code == 302
    assert response["Location"] == f"/p/{first.token}/"
    assert enrol(client, live_study).pk == first.pk
    assert Participant.objects.count() == 1
    # Someone else (no session) gets the consent page and their own participation.
    assert Client().get(f"/s/{live_study.slug}/").status_code == 200
    assert enrol(Client(), live_study).pk != first.pk
    assert Participant.objects.count() == 2


@pytest.mark.django_db
def test_a_started_participant_may_resume_after_the_study_closes(live_study):
    participant = enrol(Client(), live_study, PROLIFIC_PID="P1")
    study_set_status(study=live_study, status="closed")
    response = Client().get(f"/s/{live_study.slug}/?PROLIFIC_PID=P1")
    assert response.status_code == 302
    assert response["Location"] == f"/p/{participant.token}/"
    assert Client().get(f"/s/{live_study.slug}/?PROLIFIC_PID=P2").status_code == 410
    assert Participant.objects.count() == 1


# ---------------------------------------------------------------------------------------
# The flow


@pytest.mark.django_db
def test_full_walk_through(two_article_study):
    client = Client()
    participant = enrol(client, two_article_study, PROLIFIC_PID="P1")

    response = client.get(url(participant, "instructions/"))
    assert response.status_code == 200
    assert two_article_study.instructions_text in response.content.decode()
    response = client.post(url(participant, "instructions/"))
    assert response.status_code == 302
    assert response["Location"] == url(participant, "article/1/")
    participant.refresh_from_db()
    assert participant.instructions_seen_at is not None

    for position in (1, 2):
        trial = participant.trials.get(position=position)
        response = client.get(url(participant, f"article/{position}/"))
        assert response.status_code == 200
        html = response.content.decode()
        assert trial.article.title in html
        assert f"Article {position} of 2" in html
        assert 'type="radio" name="credible" value="yes"' in html
        assert "Not at all believable" in html
        trial.refresh_from_db()
        assert trial.first_shown_at is not None
        response = client.post(url(participant, f"article/{position}/"), GOOD)
        assert response.status_code == 302
        trial.refresh_from_db()
        assert trial.answered_at is not None
        assert dict(trial.responses.values_list("question__key", "value")) == GOOD
    # The check comes right after the last article (its after_article is empty).
    assert response["Location"] == url(participant, "check/2/")

    response = client.get(url(participant, "check/"))
    assert response.status_code == 200
    assert "choose &quot;Blue&quot;" in response.content.decode()
    response = client.post(url(participant, "check/"), {"attention": "Blue"})
    assert response.status_code == 302
    assert response["Location"] == url(participant, "finish/")
    assert participant.responses.get(trial__isnull=True).value == "Blue"

    response = client.get(url(participant, "finish/"))
    assert response.status_code == 200
    participant.refresh_from_db()
    assert participant.status == "in_progress"
    response = client.post(url(participant, "finish/"))
    assert response.status_code == 302
    assert response["Location"] == url(participant, "debrief/")
    participant.refresh_from_db()
    assert participant.status == "completed"
    assert participant.completed_at is not None

    response = client.get(url(participant, "debrief/"))
    assert response.status_code == 200
    html = response.content.decode()
    assert participant.completion_code in html
    assert f"https://example.org/complete?cc={participant.completion_code}" in html
    assert escape(WIKINEWS_ATTRIBUTION) in html
    for trial in participant.trials.select_related("article"):
        assert trial.article.title in html
        if trial.article.origin == "generated":
            assert "Machine-generated" in html
            assert trial.article.model_name in html
        else:
            assert trial.article.url in html
    assert Response.objects.filter(participant=participant).count() == 2 * 4 + 1


@pytest.mark.django_db
def test_steps_ahead_of_the_participant_redirect_to_their_step(two_article_study):
    client = Client()
    participant = enrol(client, two_article_study)
    instructions = url(participant, "instructions/")
    for step in ["article/1/", "article/2/", "check/", "finish/", "debrief/"]:
        response = client.get(url(participant, step))
        assert response.status_code == 302, step
        assert response["Location"] == instructions
    client.post(instructions)
    response = client.post(url(participant, "article/2/"), GOOD)
    assert response.status_code == 302
    assert response["Location"] == url(participant, "article/1/")
    assert Response.objects.count() == 0
    response = client.post(url(participant, "finish/"))
    assert response["Location"] == url(participant, "article/1/")
    participant.refresh_from_db()
    assert participant.status == "in_progress"


@pytest.mark.django_db
def test_refresh_and_back_button_update_answers_without_duplicates(two_article_study):
    client = Client()
    participant = enrol(client, two_article_study)
    client.post(url(participant, "instructions/"))
    first = url(participant, "article/1/")
    assert client.post(first, GOOD).status_code == 302
    assert client.post(first, GOOD).status_code == 302  # refresh re-POST
    assert client.post(url(participant, "article/2/"), GOOD).status_code == 302
    answered_at = participant.trials.get(position=1).answered_at

    response = client.get(first)  # back button: earlier pages stay reachable, prefilled
    assert response.status_code == 200
    assert 'value="yes" checked' in response.content.decode()
    changed = {**GOOD, "credible": "no", "clear": "1"}
    response = client.post(first, changed)
    assert response.status_code == 302
    assert response["Location"] == url(participant, "check/2/")

    trial = participant.trials.get(position=1)
    assert dict(trial.responses.values_list("question__key", "value")) == changed
    assert trial.responses.get(question__key="credible").value_numeric == 0.0
    assert trial.answered_at == answered_at
    assert Response.objects.filter(participant=participant).count() == 8


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("believable", "9", "Choose a value from 1 to 4."),
        ("believable", "0", "Choose a value from 1 to 4."),
        ("accurate", "two", "Choose one of the points on the scale."),
        ("credible", "maybe", "Choose yes or no."),
        ("credible", "", "Please answer this question."),
    ],
)
def test_invalid_answer_re_renders_with_message_and_writes_nothing(
    live_study, field, value, message
):
    client = Client()
    participant = enrol(client, live_study)
    client.post(url(participant, "instructions/"))
    response = client.post(url(participant, "article/1/"), {**GOOD, field: value})
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert "Please check your answers" in html
    assert 'name="clear" value="4" checked' in html  # the other answers are kept
    assert Response.objects.count() == 0
    assert participant.trials.get().answered_at is None


@pytest.mark.django_db
def test_attention_check_validates_choice_and_records_a_wrong_but_valid_answer(live_study):
    client = Client()
    participant = enrol(client, live_study)
    walk_to_check(client, participant)
    response = client.post(url(participant, "check/"), {"attention": "Purple"})
    assert response.status_code == 200
    assert "Choose one of the options." in response.content.decode()
    assert participant.responses.filter(trial__isnull=True).count() == 0
    response = client.post(url(participant, "check/"), {"attention": "Red"})
    assert response.status_code == 302
    assert participant.responses.get(trial__isnull=True).value == "Red"


@pytest.mark.django_db
def test_after_completion_every_step_leads_to_debrief_and_answers_are_frozen(live_study):
    client = Client()
    participant = enrol(client, live_study, PROLIFIC_PID="P1")
    walk_to_check(client, participant)
    client.post(url(participant, "check/"), {"attention": "Blue"})
    client.post(url(participant, "finish/"))
    debrief = url(participant, "debrief/")
    for step in ["", "instructions/", "article/1/", "check/", "finish/"]:
        response = client.get(url(participant, step))
        assert response.status_code == 302, step
        assert response["Location"] == debrief
    response = client.post(url(participant, "article/1/"), {**GOOD, "credible": "no"})
    assert response.status_code == 302
    assert response["Location"] == debrief
    response = client.post(url(participant, "check/"), {"attention": "Red"})
    assert response["Location"] == debrief
    assert participant.trials.get().responses.get(question__key="credible").value == "yes"
    assert participant.responses.get(trial__isnull=True).value == "Blue"
    # The study link also leads back to the debrief.
    response = Client().get(f"/s/{live_study.slug}/?PROLIFIC_PID=P1", follow=True)
    assert response.redirect_chain[-1][0] == debrief


@pytest.mark.django_db
def test_positions_outside_the_participants_sequence_are_404(two_article_study):
    client = Client()
    participant = enrol(client, two_article_study)
    client.post(url(participant, "instructions/"))
    for position in (0, 3, 99):
        assert client.get(url(participant, f"article/{position}/")).status_code == 404
        assert client.post(url(participant, f"article/{position}/"), GOOD).status_code == 404
    assert Response.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/p/not-a-token/",
        "/p/12345/instructions/",
        "/p/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz/article/1/",
        f"/p/{UNKNOWN}/",
        f"/p/{UNKNOWN}/article/1/",
        f"/p/{UNKNOWN}/debrief/",
    ],
)
def test_malformed_or_unknown_token_is_404(live_study, path):
    assert Client().get(path).status_code == 404
    # GET-only pages answer a POST with 405 before looking the token up.
    assert Client().post(path, GOOD).status_code in (404, 405)
    assert Response.objects.count() == 0


@pytest.mark.django_db
def test_wrong_methods(live_study):
    client = Client()
    participant = enrol(client, live_study)
    # GET on finish before everything is answered leads back to the participant's step.
    response = client.get(url(participant, "finish/"))
    assert response.status_code == 302
    assert response["Location"] == url(participant, "instructions/")
    assert client.put(url(participant, "finish/")).status_code == 405
    assert client.delete(url(participant, "article/1/")).status_code == 405
    assert client.post(url(participant, "debrief/")).status_code == 405
    assert client.post(url(participant)).status_code == 405
    assert client.post("/about/").status_code == 405
    assert client.put(f"/s/{live_study.slug}/").status_code == 405
    participant.refresh_from_db()
    assert participant.status == "in_progress"
    assert participant.instructions_seen_at is None


@pytest.mark.django_db
def test_csrf_is_enforced_on_participant_posts(live_study):
    client = Client(enforce_csrf_checks=True)
    response = client.post(f"/s/{live_study.slug}/", {"consent": "yes"})
    assert response.status_code == 403
    assert Participant.objects.count() == 0


@pytest.mark.django_db
def test_withdrawn_participant_sees_an_ended_page(live_study):
    client = Client()
    participant = enrol(client, live_study)
    Participant.objects.filter(pk=participant.pk).update(status="withdrawn")
    response = client.get(url(participant, "article/1/"))
    assert response.status_code == 302
    response = client.get(response["Location"])
    assert response.status_code == 200
    assert "participation has ended" in response.content.decode()
    response = client.post(url(participant, "article/1/"), GOOD)
    assert response.status_code == 302
    assert Response.objects.count() == 0


# ---------------------------------------------------------------------------------------
# Preview and about


@pytest.mark.django_db
def test_preview_needs_staff_and_creates_a_flagged_test_participant():
    study = StudyFactory.create_live()
    Study.objects.filter(pk=study.pk).update(status="draft")
    response = Client().get(f"/s/{study.slug}/preview/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert Participant.objects.count() == 0

    user = get_user_model().objects.create_user("plain", password="x")
    client = Client()
    client.force_login(user)
    assert client.get(f"/s/{study.slug}/preview/").status_code == 302
    assert Participant.objects.count() == 0

    # Staff of no team (or another team) do not see the study at all.
    staff = get_user_model().objects.create_user("staff", password="x", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(f"/s/{study.slug}/preview/").status_code == 404
    assert Participant.objects.count() == 0

    team = Team.objects.create(name="Lab")
    Study.objects.filter(pk=study.pk).update(team=team)
    TeamMembership.objects.create(team=team, user=staff, role=TeamMembership.Role.ANALYST)
    # The GET asks for a click (a prefetch must not enrol); the POST enrols.
    confirm = client.get(f"/s/{study.slug}/preview/")
    assert confirm.status_code == 200
    assert Participant.objects.count() == 0
    response = client.post(f"/s/{study.slug}/preview/", follow=True)
    assert response.status_code == 200
    participant = Participant.objects.get()
    assert participant.is_test is True
    assert "Preview — not recorded in results" in response.content.decode()
    # The public start page of the draft study still refuses.
    assert Client().get(f"/s/{study.slug}/").status_code == 410


@pytest.mark.django_db
def test_preview_of_an_incomplete_design_lists_the_problems():
    study = StudyFactory.create()
    staff = get_user_model().objects.create_user(
        "staff", password="x", is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(staff)
    response = client.get(f"/s/{study.slug}/preview/")
    assert response.status_code == 409
    assert "The study has no conditions." in response.content.decode()
    assert Participant.objects.count() == 0
    assert client.get("/s/nope/preview/").status_code == 404


@pytest.mark.django_db
def test_real_participant_pages_have_no_preview_banner(live_study):
    client = Client()
    participant = enrol(client, live_study)
    response = client.get(url(participant, "instructions/"))
    assert "Preview — not recorded" not in response.content.decode()


def test_about_page_names_the_wikinews_source(client):
    response = client.get("/about/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Credence" in html
    assert escape(WIKINEWS_ATTRIBUTION) in html
