"""Withdrawal: the footer link, the confirmation page, and what is deleted and kept."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from surveys.models import Article, Participant, Response, Study, Trial, WithdrawalLog
from surveys.privacy import keyed_hash
from surveys.services import participant_withdraw
from tests.factories import StudyFactory

GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}


def enrol(client: Client, study: Study, **panel: str) -> Participant:
    response = client.post(f"/s/{study.slug}/", {"consent": "yes", **panel})
    assert response.status_code == 302
    return Participant.objects.get(token=response["Location"].split("/")[2])


def url(participant: Participant, step: str = "") -> str:
    return f"/p/{participant.token}/{step}"


def answer_first_article(client: Client, participant: Participant) -> None:
    assert client.post(url(participant, "instructions/")).status_code == 302
    assert client.post(url(participant, "article/1/"), GOOD).status_code == 302


def complete(client: Client, participant: Participant, attention: str = "Blue") -> None:
    answer_first_article(client, participant)
    for position in range(2, participant.trials.count() + 1):
        assert client.post(url(participant, f"article/{position}/"), GOOD).status_code == 302
    assert client.post(url(participant, "check/"), {"attention": attention}).status_code == 302
    assert client.post(url(participant, "finish/")).status_code == 302


@pytest.fixture
def study(db):  # type: ignore[no-untyped-def]
    return StudyFactory.create_live(articles_per_participant=2)


@pytest.mark.django_db
def test_every_flow_page_offers_withdrawal_in_the_footer(study):
    client = Client()
    participant = enrol(client, study, PROLIFIC_PID="P1")
    link = f'href="/p/{participant.token}/withdraw/"'
    assert link in client.get(url(participant, "instructions/")).content.decode()
    answer_first_article(client, participant)
    assert link in client.get(url(participant, "article/1/")).content.decode()
    assert link in client.get(url(participant, "article/2/")).content.decode()
    client.post(url(participant, "article/2/"), GOOD)
    assert link in client.get(url(participant, "check/")).content.decode()
    client.post(url(participant, "check/"), {"attention": "Blue"})
    assert link in client.get(url(participant, "finish/")).content.decode()
    client.post(url(participant, "finish/"))
    assert link in client.get(url(participant, "debrief/")).content.decode()
    # The consent page has no participation yet, so nothing to withdraw.
    assert "withdraw" not in Client().get(f"/s/{study.slug}/").content.decode().lower()


@pytest.mark.django_db
def test_get_confirmation_page_writes_nothing(study):
    client = Client()
    participant = enrol(client, study, PROLIFIC_PID="P1")
    answer_first_article(client, participant)
    response = client.get(url(participant, "withdraw/"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Withdraw from the study?" in html
    assert "Withdraw and delete my answers" in html
    assert f'href="/p/{participant.token}/article/2/"' in html  # back to where they were
    participant.refresh_from_db()
    assert participant.status == "in_progress"
    assert Response.objects.filter(participant=participant).count() == 4
    assert WithdrawalLog.objects.count() == 0


@pytest.mark.django_db
def test_post_withdraws_deletes_answers_keeps_the_row_and_logs_it(study):
    Study.objects.filter(pk=study.pk).update(withdrawn_code="WDRAWN")
    client = Client()
    participant = enrol(client, study, PROLIFIC_PID="P1")
    other = enrol(Client(), study, PROLIFIC_PID="P2")
    answer_first_article(client, participant)
    answer_first_article(Client(), other)
    article_ids = list(participant.trials.order_by("position").values_list("article_id", flat=True))

    response = client.post(url(participant, "withdraw/"))
    assert response.status_code == 302
    assert response["Location"] == url(participant, "debrief/")

    participant.refresh_from_db()
    assert participant.status == "withdrawn"
    assert participant.completion_code == "WDRAWN"
    assert participant.user_agent == ""
    assert Trial.objects.filter(participant=participant).count() == 0
    assert Response.objects.filter(participant=participant).count() == 0
    log = WithdrawalLog.objects.get()
    assert log.participant_id == participant.pk
    # The panel id is kept neither on the row nor in the log; only its hash, which keeps
    # the same id from entering again.
    assert (log.study_id, log.panel_pid, log.token) == (study.pk, "", participant.token)
    assert participant.panel_pid == ""
    assert participant.panel_pid_hash == keyed_hash(value="P1", purpose="panel")
    assert log.design_hash == study.design_hash != ""
    assert log.previous_status == "in_progress"
    assert log.condition_name == participant.condition.name
    assert log.article_ids == article_ids
    # The other participant is untouched.
    assert Response.objects.filter(participant=other).count() == 4
    assert Trial.objects.filter(participant=other).count() == 2

    response = client.get(response["Location"])
    assert response.status_code == 200
    html = response.content.decode()
    assert "You have withdrawn from the study" in html
    assert "WDRAWN" in html
    assert "https://example.org/complete?cc=WDRAWN" in html
    articles = list(Article.objects.filter(pk__in=article_ids))
    assert len(articles) == 2
    for article in articles:
        assert article.title in html
        assert html.count(f'data-origin="{article.origin}"') == 2  # both from one condition
    assert "/withdraw/" not in html


@pytest.mark.django_db
def test_withdrawn_without_a_code_sees_no_code_and_no_panel_link(study):
    client = Client()
    participant = enrol(client, study, PROLIFIC_PID="P1")
    assert client.post(url(participant, "withdraw/")).status_code == 302
    html = client.get(url(participant, "debrief/")).content.decode()
    assert "data-completion-code" not in html
    assert "Return to the study panel" not in html
    participant.refresh_from_db()
    assert participant.completion_code == ""


@pytest.mark.django_db
def test_a_completed_participant_may_withdraw(study):
    client = Client()
    participant = enrol(client, study, PROLIFIC_PID="P1")
    complete(client, participant)
    assert client.post(url(participant, "withdraw/")).status_code == 302
    participant.refresh_from_db()
    assert participant.status == "withdrawn"
    assert Response.objects.filter(participant=participant).count() == 0
    assert WithdrawalLog.objects.get().previous_status == "completed"


@pytest.mark.django_db
def test_second_withdrawal_is_idempotent(study):
    client = Client()
    participant = enrol(client, study, PROLIFIC_PID="P1")
    answer_first_article(client, participant)
    first = participant_withdraw(participant=participant)
    assert client.post(url(participant, "withdraw/")).status_code == 302
    response = client.get(url(participant, "withdraw/"))
    assert response.status_code == 302
    assert response["Location"] == url(participant, "debrief/")
    again = participant_withdraw(participant=participant)
    assert again.pk == first.pk
    assert WithdrawalLog.objects.count() == 1
    assert len(first.article_ids) == 2
    participant.refresh_from_db()
    assert participant.status == "withdrawn"


@pytest.mark.django_db
def test_the_panel_id_cannot_enter_again_and_the_place_is_freed(study):
    client = Client()
    participant = enrol(client, study, PROLIFIC_PID="P1")
    client.post(url(participant, "withdraw/"))
    response = Client().post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "P1"})
    assert response.status_code == 302
    assert response["Location"] == url(participant)
    assert Participant.objects.filter(study=study).count() == 1
    assert Trial.objects.count() == 0
    # A withdrawn participant holds no place in their condition.
    holding = Participant.objects.real().holding_a_place(study)
    assert not holding.exists()


@pytest.mark.django_db
def test_withdrawn_participant_cannot_answer_any_more(study):
    client = Client()
    participant = enrol(client, study)
    client.post(url(participant, "instructions/"))
    client.post(url(participant, "withdraw/"))
    response = client.post(url(participant, "article/1/"), GOOD)
    assert response.status_code == 404  # the trial no longer exists
    for step in ["instructions/", "check/", "finish/"]:
        response = client.get(url(participant, step))
        assert response.status_code == 302, step
        assert response["Location"] == url(participant, "debrief/")
    assert client.post(url(participant, "finish/")).status_code == 302
    participant.refresh_from_db()
    assert participant.status == "withdrawn"
    assert Response.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "token", [str(uuid.UUID("00000000-0000-4000-8000-000000000000")), "not-a-token"]
)
def test_unknown_or_malformed_token_is_404_and_writes_nothing(study, token):
    client = Client()
    participant = enrol(client, study)
    client.post(url(participant, "instructions/"))
    assert client.get(f"/p/{token}/withdraw/").status_code == 404
    assert client.post(f"/p/{token}/withdraw/").status_code == 404
    participant.refresh_from_db()
    assert participant.status == "in_progress"
    assert WithdrawalLog.objects.count() == 0


@pytest.mark.django_db
def test_withdraw_wrong_methods_and_csrf(study):
    participant = enrol(Client(), study)
    assert Client().put(url(participant, "withdraw/")).status_code == 405
    assert Client().delete(url(participant, "withdraw/")).status_code == 405
    assert Client(enforce_csrf_checks=True).post(url(participant, "withdraw/")).status_code == 403
    participant.refresh_from_db()
    assert participant.status == "in_progress"
    assert WithdrawalLog.objects.count() == 0


@pytest.mark.django_db
def test_confirmation_promises_the_reveal_only_to_those_who_read_an_article(study):
    client = Client()
    participant = enrol(client, study, PROLIFIC_PID="P1")
    # Before any article was shown (as for someone screened out): nothing to reveal.
    html = client.get(url(participant, "withdraw/")).content.decode()
    assert "what the study is about" in html
    assert "which of the articles you read" not in html
    assert client.post(url(participant, "instructions/")).status_code == 302
    assert client.get(url(participant, "article/1/")).status_code == 200
    html = client.get(url(participant, "withdraw/")).content.decode()
    assert "which of the articles you read were written by a machine" in html
