"""Comprehension questions after the instructions: tries, the neutral retry message, and
screening out (with its code, a general debrief, and the place given back)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from surveys.instruments import instrument_apply
from surveys.models import Participant, Question, Response, Study
from surveys.services import conditions_with_fill, study_set_status
from surveys.simulation import simulate
from tests.factories import QuestionFactory, StudyFactory

pytestmark = pytest.mark.django_db

GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}
RIGHT = {
    "understood_task": "Read news articles and answer questions about each one",
    "understood_answers": "No: I give my own judgement",
}
WRONG = {**RIGHT, "understood_answers": "Yes: each question has one right answer"}


def comprehension_study(**kwargs: object) -> Study:
    """The live two-condition study with the comprehension instrument added before launch."""
    study = StudyFactory.create_live(**kwargs)
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT)
    study.refresh_from_db()
    instrument_apply(study=study, name="comprehension")
    return study_set_status(study=study, status=Study.Status.LIVE)


@pytest.fixture
def study() -> Study:
    return comprehension_study(screened_out_code="SCREENED1", comprehension_attempts=2)


def enrol(client: Client, study: Study, pid: str = "P1") -> tuple[Participant, str]:
    response = client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": pid})
    assert response.status_code == 302
    participant = Participant.objects.get(study=study, panel_pid=pid)
    return participant, f"/p/{participant.token}/"


def test_comprehension_page_follows_the_instructions_and_guards_the_articles(study):
    client = Client()
    _, base = enrol(client, study)
    assert client.post(base + "instructions/")["Location"] == base + "comprehension/"
    assert client.get(base + "article/1/")["Location"] == base + "comprehension/"
    page = client.get(base + "comprehension/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-step="comprehension"' in html
    assert 'name="attempt" value="1"' in html
    assert "What will you do in this study?" in html
    assert study.instructions_text in html  # to read again
    assert "data-retry" not in html


def test_right_answers_lead_to_the_articles_and_cannot_be_retaken(study):
    client = Client()
    participant, base = enrol(client, study)
    client.post(base + "instructions/")
    response = client.post(base + "comprehension/", {**RIGHT, "attempt": "1"})
    assert response.status_code == 302
    assert response["Location"] == base + "article/1/"
    participant.refresh_from_db()
    assert participant.comprehension_tries == 1
    assert participant.status == Participant.Status.IN_PROGRESS
    stored = dict(
        Response.objects.filter(participant=participant, trial__isnull=True).values_list(
            "question__key", "value"
        )
    )
    assert stored == RIGHT
    # Passed: the page is behind the participant for good.
    assert client.get(base + "comprehension/")["Location"] == base + "article/1/"
    client.post(base + "comprehension/", {**WRONG, "attempt": "2"})
    participant.refresh_from_db()
    assert participant.comprehension_tries == 1
    assert (
        participant.responses.get(question__key="understood_answers").value
        == (RIGHT["understood_answers"])
    )


def test_a_wrong_try_shows_the_page_again_with_a_neutral_message(study):
    client = Client()
    participant, base = enrol(client, study)
    client.post(base + "instructions/")
    response = client.post(base + "comprehension/", {**WRONG, "attempt": "1"})
    assert response.status_code == 302
    assert response["Location"] == base + "comprehension/"
    html = client.get(base + "comprehension/").content.decode()
    assert "data-retry" in html
    assert "Not all of your answers matched the instructions" in html
    assert "This is your last try." in html
    assert 'name="attempt" value="2"' in html
    # Neither which answer was wrong nor the previous answers are shown.
    assert "checked" not in html
    assert 'id="err-' not in html
    response = client.post(base + "comprehension/", {**RIGHT, "attempt": "2"})
    assert response["Location"] == base + "article/1/"
    participant.refresh_from_db()
    assert participant.comprehension_tries == 2
    assert participant.responses.filter(question__scope="comprehension").count() == 2
    assert (
        participant.responses.get(question__key="understood_answers").value
        == (RIGHT["understood_answers"])
    )


def test_a_double_submit_uses_one_try(study):
    client = Client()
    participant, base = enrol(client, study)
    client.post(base + "instructions/")
    for _ in range(3):
        client.post(base + "comprehension/", {**WRONG, "attempt": "1"})
    participant.refresh_from_db()
    assert participant.comprehension_tries == 1
    assert participant.status == Participant.Status.IN_PROGRESS
    # A form without its try number counts for nothing either.
    client.post(base + "comprehension/", WRONG)
    participant.refresh_from_db()
    assert participant.comprehension_tries == 1


def test_malformed_answers_re_render_and_use_no_try(study):
    client = Client()
    participant, base = enrol(client, study)
    client.post(base + "instructions/")
    response = client.post(
        base + "comprehension/", {**RIGHT, "understood_task": "Juggle", "attempt": "1"}
    )
    assert response.status_code == 200
    assert 'id="err-understood_task"' in response.content.decode()
    participant.refresh_from_db()
    assert participant.comprehension_tries == 0
    assert not participant.responses.exists()


def test_failing_every_try_screens_out_with_the_code_and_a_general_debrief(study):
    client = Client()
    participant, base = enrol(client, study)
    client.post(base + "instructions/")
    client.post(base + "comprehension/", {**WRONG, "attempt": "1"})
    response = client.post(base + "comprehension/", {**WRONG, "attempt": "2"})
    assert response.status_code == 302
    assert response["Location"] == base + "debrief/"
    participant.refresh_from_db()
    assert participant.status == Participant.Status.SCREENED_OUT
    assert participant.completion_code == "SCREENED1"
    assert participant.comprehension_tries == 2
    assert (
        dict(participant.responses.values_list("question__key", "value")) == WRONG
    )  # the last try's answers
    assert participant.trials.filter(first_shown_at__isnull=False).count() == 0
    page = client.get(base + "debrief/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-step="screened-out"' in html
    assert '<span class="code" data-completion-code>SCREENED1</span>' in html
    assert 'href="https://example.org/complete?cc=SCREENED1"' in html
    assert "This study looks at whether people can tell" in html  # the debrief text
    assert "Machine-generated" not in html  # no articles to reveal
    # Every page of the flow now leads to that page; nothing more can be answered.
    for step in ("", "instructions/", "comprehension/", "article/1/", "check/", "finish/"):
        assert client.get(base + step)["Location"] == base + "debrief/", step
    assert client.post(base + "article/1/", GOOD)["Location"] == base + "debrief/"
    assert client.post(base + "finish/")["Location"] == base + "debrief/"
    participant.refresh_from_db()
    assert participant.status == Participant.Status.SCREENED_OUT
    assert not participant.responses.filter(trial__isnull=False).exists()
    # The same panel id cannot start again: the link leads back to this page.
    again = Client().get(f"/s/{study.slug}/?PROLIFIC_PID=P1", follow=True)
    assert again.redirect_chain[-1][0] == base + "debrief/"
    assert Participant.objects.filter(study=study).count() == 1


def test_without_a_screened_out_code_no_code_and_no_link_are_shown():
    study = comprehension_study(comprehension_attempts=1)
    client = Client()
    participant, base = enrol(client, study)
    client.post(base + "instructions/")
    client.post(base + "comprehension/", {**WRONG, "attempt": "1"})
    participant.refresh_from_db()
    assert participant.status == Participant.Status.SCREENED_OUT
    assert participant.completion_code == ""
    html = client.get(base + "debrief/").content.decode()
    assert "data-completion-code" not in html
    assert "data-completion-url" not in html


def test_a_screened_out_participant_gives_their_place_back():
    study = comprehension_study(comprehension_attempts=1, screened_out_code="OUT")
    for condition in study.conditions.all():
        condition.quota = 1
        condition.save()
    client = Client()
    first, base = enrol(client, study, pid="A")
    held = first.condition.name
    fill = {c.name: c.filled for c in conditions_with_fill(study=study)}
    assert fill[held] == 1
    client.post(base + "instructions/")
    client.post(base + "comprehension/", {**WRONG, "attempt": "1"})
    # Neither their condition nor their articles count any more.
    assert {c.name: c.filled for c in conditions_with_fill(study=study)} == {
        "real": 0,
        "generated": 0,
    }
    assert first not in Participant.objects.real().holding_a_place(study)
    # Two newcomers fill both quotas, one of them in the condition the first one left.
    second, _ = enrol(Client(), study, pid="B")
    third, _ = enrol(Client(), study, pid="C")
    assert {second.condition.name, third.condition.name} == {"real", "generated"}


def test_launch_refuses_comprehension_questions_nobody_can_pass():
    study = StudyFactory.create_live()
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT, comprehension_attempts=0)
    study.refresh_from_db()
    QuestionFactory.create(
        study=study,
        key="task",
        text="What will you do?",
        kind=Question.Kind.CHOICE,
        scope=Question.Scope.COMPREHENSION,
        choices=["Read", "Write"],
        expected_answer="",
    )
    with pytest.raises(ValidationError) as error:
        study_set_status(study=study, status=Study.Status.LIVE)
    messages = " ".join(error.value.messages)
    assert 'Comprehension question "task" has no expected answer.' in messages
    assert "at least one try" in messages
    assert Study.objects.get(pk=study.pk).status == Study.Status.DRAFT


def test_the_simulation_bot_passes_or_fails_the_comprehension_page():
    study = comprehension_study(screened_out_code="OUT")
    rates = {"real": 0.8, "generated": 0.6}
    passing = simulate(study=study, n=3, rates=rates, seed=1, progress=False)
    assert passing.errors == []
    assert passing.completed_now == 3
    failing = simulate(
        study=study, n=3, rates=rates, seed=2, fail_comprehension=1.0, progress=False
    )
    assert failing.errors == []
    assert (failing.completed_now, failing.screened_out) == (0, 3)
    screened = Participant.objects.filter(study=study, status=Participant.Status.SCREENED_OUT)
    assert screened.count() == 3
    assert set(screened.values_list("comprehension_tries", flat=True)) == {2}
    assert set(screened.values_list("completion_code", flat=True)) == {"OUT"}
