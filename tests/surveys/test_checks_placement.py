"""Attention checks among the articles: each check page comes right after the article its
checks name, and the next page is always derived from what is stored."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from surveys.instruments import instrument_apply
from surveys.models import Participant, Question, Response, Study
from surveys.selectors import check_pages, participant_next_step
from surveys.services import study_set_status
from tests.factories import (
    ConditionFactory,
    GeneratedArticleFactory,
    QuestionFactory,
    RealArticleFactory,
    StudyFactory,
)

pytestmark = pytest.mark.django_db

GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}
RIGHT = {"early": "Blue", "mid_a": "Red", "mid_b": "yes", "late": "Green"}


def _check(study: Study, key: str, expected: str, after: int | None, **kwargs: object) -> None:
    QuestionFactory.create(
        study=study,
        key=key,
        text=f"To show you are reading carefully, choose {expected}.",
        kind=kwargs.pop("kind", Question.Kind.CHOICE),
        scope=Question.Scope.ATTENTION_CHECK,
        choices=kwargs.pop("choices", ["Red", "Blue", "Green"]),
        expected_answer=expected,
        after_article=after,
        **kwargs,
    )


def draft_study(*, articles: int = 3, **kwargs: object) -> Study:
    study = StudyFactory.create(articles_per_participant=articles, **kwargs)
    real = ConditionFactory.create(study=study, name="real", label="Real", is_reference=True)
    generated = ConditionFactory.create(study=study, name="generated", label="Generated")
    for _ in range(articles):
        real.articles.add(RealArticleFactory.create())
        generated.articles.add(GeneratedArticleFactory.create())
    QuestionFactory.create_kreps_set(study=study)
    return study


@pytest.fixture
def study() -> Study:
    """Three articles; a check after the first, two sharing the page after the second,
    and one with no position (after the last)."""
    study = draft_study()
    _check(study, "early", "Blue", 1)
    _check(study, "mid_a", "Red", 2)
    _check(study, "mid_b", "yes", 2, kind=Question.Kind.BINARY, choices=[])
    _check(study, "late", "Green", None)
    return study_set_status(study=study, status=Study.Status.LIVE)


def enrol(client: Client, study: Study, pid: str = "P1") -> tuple[Participant, str]:
    response = client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": pid})
    assert response.status_code == 302
    participant = Participant.objects.get(panel_pid=pid)
    return participant, f"/p/{participant.token}/"


def test_check_pages_come_right_after_the_articles_they_name(study):
    client = Client()
    participant, base = enrol(client, study)
    assert client.post(base + "instructions/")["Location"] == base + "article/1/"
    sequence = []
    response = client.post(base + "article/1/", GOOD)
    sequence.append(response["Location"])
    page = client.get(base + "check/1/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-step="check" data-after="1"' in html
    assert 'name="early"' in html
    assert 'name="mid_a"' not in html
    sequence.append(client.post(base + "check/1/", {"early": "Blue"})["Location"])
    sequence.append(client.post(base + "article/2/", GOOD)["Location"])
    # Two checks placed after the same article share one page.
    html = client.get(base + "check/2/").content.decode()
    assert 'name="mid_a"' in html
    assert 'name="mid_b"' in html
    sequence.append(client.post(base + "check/2/", {"mid_a": "Red", "mid_b": "yes"})["Location"])
    sequence.append(client.post(base + "article/3/", GOOD)["Location"])
    sequence.append(client.post(base + "check/3/", {"late": "Green"})["Location"])
    assert sequence == [
        base + "check/1/",
        base + "article/2/",
        base + "check/2/",
        base + "article/3/",
        base + "check/3/",
        base + "finish/",
    ]
    assert client.post(base + "finish/")["Location"] == base + "debrief/"
    participant.refresh_from_db()
    assert participant.status == Participant.Status.COMPLETED
    stored = dict(
        Response.objects.filter(participant=participant, trial__isnull=True).values_list(
            "question__key", "value"
        )
    )
    assert stored == RIGHT


def test_pages_ahead_redirect_and_earlier_check_pages_can_be_revisited(study):
    client = Client()
    participant, base = enrol(client, study)
    client.post(base + "instructions/")
    client.post(base + "article/1/", GOOD)
    # The check after article 1 is due: article 2 and later check pages wait for it.
    for ahead in ("article/2/", "check/2/", "check/3/", "finish/", "about-you/"):
        response = client.get(base + ahead)
        assert response.status_code == 302, ahead
        assert response["Location"] == base + "check/1/", ahead
    client.post(base + "check/1/", {"early": "Blue"})
    client.post(base + "article/2/", GOOD)
    # Back to the first check page: shown with the stored answer, and a changed answer
    # replaces it (one row) and leads back to where the participant is.
    page = client.get(base + "check/1/")
    assert page.status_code == 200
    assert 'value="Blue" checked' in page.content.decode()
    response = client.post(base + "check/1/", {"early": "Red"})
    assert response["Location"] == base + "check/2/"
    early = Response.objects.filter(participant=participant, question__key="early")
    assert list(early.values_list("value", flat=True)) == ["Red"]


def test_refresh_and_double_submit_of_a_check_page_write_one_answer(study):
    client = Client()
    participant, base = enrol(client, study)
    client.post(base + "instructions/")
    client.post(base + "article/1/", GOOD)
    first = client.post(base + "check/1/", {"early": "Blue"})
    second = client.post(base + "check/1/", {"early": "Blue"})
    assert first["Location"] == second["Location"] == base + "article/2/"
    assert Response.objects.filter(participant=participant, trial__isnull=True).count() == 1
    # Refreshing the next page does not move the participant on.
    for _ in range(3):
        assert client.get(base + "article/2/").status_code == 200
    participant.refresh_from_db()
    step = participant_next_step(participant=participant)
    assert (step.name, step.position) == ("trial", 2)


def test_a_returning_participant_resumes_on_the_check_page(study):
    client = Client()
    _, base = enrol(client, study, pid="RET1")
    client.post(base + "instructions/")
    client.post(base + "article/1/", GOOD)
    client.post(base + "check/1/", {"early": "Blue"})
    client.post(base + "article/2/", GOOD)
    # Another device: the study link with the same panel id leads back to check 2.
    other = Client()
    response = other.get(f"/s/{study.slug}/?PROLIFIC_PID=RET1", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == base + "check/2/"
    assert Participant.objects.filter(study=study).count() == 1


def test_the_plain_check_address_opens_the_page_the_participant_is_at(study):
    client = Client()
    participant, base = enrol(client, study)
    client.post(base + "instructions/")
    # No check reached yet: back to the article.
    assert client.get(base + "check/")["Location"] == base + "article/1/"
    client.post(base + "article/1/", GOOD)
    client.post(base + "check/1/", {"early": "Blue"})
    client.post(base + "article/2/", GOOD)
    page = client.get(base + "check/")
    assert page.status_code == 200
    assert 'data-after="2"' in page.content.decode()
    # A post to it records that page's checks.
    response = client.post(base + "check/", {"mid_a": "Red", "mid_b": "yes"})
    assert response["Location"] == base + "article/3/"
    assert Response.objects.filter(participant=participant, trial__isnull=True).count() == 3


def test_malformed_check_answers_write_nothing(study):
    client = Client()
    participant, base = enrol(client, study)
    client.post(base + "instructions/")
    client.post(base + "article/1/", GOOD)
    client.post(base + "check/1/", {"early": "Blue"})
    client.post(base + "article/2/", GOOD)
    response = client.post(base + "check/2/", {"mid_a": "Purple", "mid_b": "yes"})
    assert response.status_code == 200
    assert 'id="err-mid_a"' in response.content.decode()
    assert not Response.objects.filter(participant=participant, question__key="mid_b").exists()


def test_check_pages_that_do_not_exist_and_wrong_methods(study):
    client = Client()
    _, base = enrol(client, study)
    assert client.get(base + "check/7/").status_code == 404
    assert Client().get(f"/p/{uuid.UUID(int=1)}/check/1/").status_code == 404
    assert client.put(base + "check/1/").status_code == 405


def test_checks_placed_beyond_the_articles_go_after_the_last():
    study = draft_study(articles=2)
    _check(study, "far", "Blue", 5)
    _check(study, "none", "Blue", None)
    _check(study, "first", "Blue", 1)
    pages = check_pages(study=study, n_articles=2)
    assert {slot: [q.key for q in qs] for slot, qs in pages.items()} == {
        1: ["first"],
        2: ["far", "none"],
    }


@pytest.mark.parametrize(
    ("after", "message"),
    [
        (0, "asked after article 0, but each participant reads 3"),
        (4, "asked after article 4, but each participant reads 3"),
    ],
)
def test_launch_refuses_a_check_after_an_article_nobody_reads(after, message):
    study = draft_study(articles=3)
    _check(study, "misplaced", "Blue", after)
    with pytest.raises(ValidationError) as error:
        study_set_status(study=study, status=Study.Status.LIVE)
    assert any(message in m for m in error.value.messages)
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT
    assert study.design_hash == ""


def test_launch_refuses_a_check_nobody_can_pass():
    study = draft_study(articles=1)
    _check(study, "impossible", "Purple", None)
    _check(study, "unset", "", None)
    with pytest.raises(ValidationError) as error:
        study_set_status(study=study, status=Study.Status.LIVE)
    messages = " ".join(error.value.messages)
    assert 'expects "Purple", which is not one of its options (Red, Blue, Green)' in messages
    assert 'Attention check "unset" has no expected answer.' in messages
    assert Study.objects.get(pk=study.pk).status == Study.Status.DRAFT


def test_the_attention_instrument_asks_its_check_after_the_first_article():
    study = draft_study(articles=2)
    (check,) = instrument_apply(study=study, name="attention")
    assert check.after_article == 1
    study = study_set_status(study=study, status=Study.Status.LIVE)
    client = Client()
    _, base = enrol(client, study)
    client.post(base + "instructions/")
    assert client.post(base + "article/1/", GOOD)["Location"] == base + "check/1/"
    response = client.post(base + "check/1/", {"attention": "Somewhat disagree"})
    assert response["Location"] == base + "article/2/"
    assert client.post(base + "article/2/", GOOD)["Location"] == base + "finish/"
