"""Reading time measured in the browser: stored when sane, ignored when not, never an error."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from surveys.forms import MAX_VISIBLE_MS, timing_parse
from surveys.models import Participant, Response, Trial
from tests.factories import StudyFactory

GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", 0),
        ("1234", 1234),
        (" 42 ", 42),
        (str(MAX_VISIBLE_MS), MAX_VISIBLE_MS),
        (str(MAX_VISIBLE_MS + 1), None),
        ("", None),
        (None, None),
        ("-5", None),
        ("12.5", None),
        ("1e9", None),
        ("abc", None),
        ("١٢٣", None),  # Arabic-Indic digits: isdigit() is true, but not what we sent
        ("9" * 40, None),
    ],
)
def test_timing_parse_accepts_only_small_non_negative_integers(raw, expected):
    assert timing_parse(raw=raw, maximum=MAX_VISIBLE_MS) == expected


@pytest.fixture
def participant(db):  # type: ignore[no-untyped-def]
    study = StudyFactory.create_live(articles_per_participant=2)
    client = Client()
    response = client.post(f"/s/{study.slug}/", {"consent": "yes"})
    participant = Participant.objects.get(token=response["Location"].split("/")[2])
    assert client.post(f"/p/{participant.token}/instructions/").status_code == 302
    return participant


def article_url(participant: Participant, position: int = 1) -> str:
    return f"/p/{participant.token}/article/{position}/"


@pytest.mark.django_db
def test_article_page_has_the_hidden_inputs_and_the_script(participant):
    response = Client().get(article_url(participant))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<input type="hidden" name="visible_ms" value="">' in html
    assert '<input type="hidden" name="tab_aways" value="">' in html
    assert "surveys/timing.js" in html
    assert "data-timing" in html


@pytest.mark.django_db
def test_measurements_are_stored_with_the_first_answer_only(participant):
    client = Client()
    response = client.post(
        article_url(participant), {**GOOD, "visible_ms": "5321", "tab_aways": "2"}
    )
    assert response.status_code == 302
    trial = Trial.objects.get(participant=participant, position=1)
    assert (trial.visible_ms, trial.tab_aways) == (5321, 2)
    # Going back and answering again does not overwrite the first reading.
    response = client.post(
        article_url(participant), {**GOOD, "credible": "no", "visible_ms": "99", "tab_aways": "0"}
    )
    assert response.status_code == 302
    trial.refresh_from_db()
    assert (trial.visible_ms, trial.tab_aways) == (5321, 2)
    assert trial.responses.get(question__key="credible").value == "no"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "timing",
    [
        {},
        {"visible_ms": "", "tab_aways": ""},
        {"visible_ms": "-1", "tab_aways": "x"},
        {"visible_ms": "NaN", "tab_aways": "3.5"},
        {"visible_ms": "99999999999999", "tab_aways": "1" * 20},
    ],
)
def test_missing_or_garbled_measurements_are_ignored_and_the_answers_kept(participant, timing):
    response = Client().post(article_url(participant), {**GOOD, **timing})
    assert response.status_code == 302
    assert response["Location"] == article_url(participant, 2)
    trial = Trial.objects.get(participant=participant, position=1)
    assert (trial.visible_ms, trial.tab_aways) == (None, None)
    assert trial.answered_at is not None
    assert Response.objects.filter(trial=trial).count() == 4


@pytest.mark.django_db
def test_one_garbled_value_does_not_discard_the_other(participant):
    Client().post(article_url(participant), {**GOOD, "visible_ms": "800", "tab_aways": "-2"})
    trial = Trial.objects.get(participant=participant, position=1)
    assert (trial.visible_ms, trial.tab_aways) == (800, None)


@pytest.mark.django_db
def test_a_page_re_rendered_after_an_error_carries_the_measurement_so_far(participant):
    response = Client().post(
        article_url(participant),
        {**GOOD, "credible": "", "visible_ms": "2500", "tab_aways": "1"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert '<input type="hidden" name="visible_ms" value="2500">' in html
    assert '<input type="hidden" name="tab_aways" value="1">' in html
    trial = Trial.objects.get(participant=participant, position=1)
    assert (trial.visible_ms, trial.tab_aways, trial.answered_at) == (None, None, None)
    # Garbage is not echoed back into the page.
    response = Client().post(
        article_url(participant), {**GOOD, "credible": "", "visible_ms": '"><script>'}
    )
    assert '<input type="hidden" name="visible_ms" value="">' in response.content.decode()


def test_timing_script_is_a_static_file():
    path = finders.find("surveys/timing.js")
    assert path is not None
    with open(path, encoding="utf-8") as script:
        assert "visibilitychange" in script.read()
