"""Sliders, multiple choice, and the once-per-participant "about you" page."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from surveys.forms import answer_parse
from surveys.instruments import DETECTION_OPTIONS, INSTRUMENTS, instrument_apply
from surveys.models import Participant, Question, Response, Study
from surveys.selectors import participant_next_step
from surveys.simulation import simulate
from tests.factories import QuestionFactory, StudyFactory
from tests.surveys.builders import with_demographics_and_detection

pytestmark = pytest.mark.django_db

GOOD = {
    "credible": "yes",
    "believable": "3",
    "accurate": "2",
    "clear": "4",
    "written_by": "I don't know",
}
ABOUT = {
    "age_bracket": "25-34",
    "gender": "Prefer not to say",
    "party_id": "Independent",
    "ideology": "4",
    "seen_before": "No",
    "looked_up": "no",
    "news_sources": ["Social media", "Television"],
    "media_trust": "40",
}


def slider(**kwargs: object) -> Question:
    return QuestionFactory.create(kind=Question.Kind.SLIDER, **kwargs)


def multi(**kwargs: object) -> Question:
    return QuestionFactory.create(
        kind=Question.Kind.MULTI_CHOICE, choices=["A", "B", "C"], **kwargs
    )


# ---------------------------------------------------------------------------------------
# Parsing


def test_slider_accepts_whole_numbers_in_its_range_default_0_to_100():
    question = slider()
    assert question.bounds == (0, 100)
    assert answer_parse(question=question, raw="0") == ("0", 0.0)
    assert answer_parse(question=question, raw=" 100 ") == ("100", 100.0)
    custom = slider(scale_min=-10, scale_max=10)
    assert answer_parse(question=custom, raw="-5") == ("-5", -5.0)


@pytest.mark.parametrize("raw", ["101", "-1", "50.5", "5e1", "abc", "½", "--5", "1000000000"])
def test_slider_refuses_anything_else(raw):
    with pytest.raises(ValidationError, match="whole number from 0 to 100"):
        answer_parse(question=slider(), raw=raw)


def test_empty_slider_is_an_error_only_when_required():
    with pytest.raises(ValidationError, match="Please answer"):
        answer_parse(question=slider(), raw="")
    assert answer_parse(question=slider(required=False), raw="  ") is None


def test_multi_choice_stores_a_json_list_in_the_order_offered():
    question = multi()
    assert answer_parse(question=question, raw=["C", "A"]) == ('["A","C"]', 2.0)
    assert answer_parse(question=question, raw=["B", "B"]) == ('["B"]', 1.0)
    # A stored answer (or an API client) gives the JSON text itself.
    assert answer_parse(question=question, raw='["C","B"]') == ('["B","C"]', 2.0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["A", "D"], "only the options offered"),
        (["a"], "only the options offered"),
        ("A,C", "Tick the options"),
        ('{"A": 1}', "Tick the options"),
        ("[1, 2]", "Tick the options"),
        ([], "at least one"),
        (None, "at least one"),
        ([" "], "at least one"),
    ],
)
def test_multi_choice_refuses_malformed_answers(raw, message):
    with pytest.raises(ValidationError, match=message):
        answer_parse(question=multi(), raw=raw)


def test_optional_multi_choice_may_be_left_empty():
    assert answer_parse(question=multi(required=False), raw=[]) is None


# ---------------------------------------------------------------------------------------
# Instruments


def test_demographics_are_once_per_participant_and_detection_is_per_article():
    study = StudyFactory.create()
    created = instrument_apply(study=study, name="demographics")
    assert [q.key for q in created] == [spec.key for spec in INSTRUMENTS["demographics"].questions]
    assert {q.scope for q in created} == {Question.Scope.PARTICIPANT}
    kinds = {q.key: q.kind for q in created}
    assert kinds["ideology"] == Question.Kind.LIKERT
    assert kinds["news_sources"] == Question.Kind.MULTI_CHOICE
    assert kinds["media_trust"] == Question.Kind.SLIDER
    ideology = Question.objects.get(study=study, key="ideology")
    assert (ideology.scale_min, ideology.scale_max) == (1, 7)
    (detection,) = instrument_apply(study=study, name="detection")
    assert (detection.key, detection.kind, detection.scope) == ("written_by", "choice", "article")
    assert detection.choices == list(DETECTION_OPTIONS)
    assert len(detection.choices) == 6
    assert detection.choices[0] == "Very likely written by a human"
    assert detection.choices[4] == "Very likely written by a machine"
    assert detection.choices[5] == "I don't know"
    assert instrument_apply(study=study, name="demographics") == []


# ---------------------------------------------------------------------------------------
# The about-you page


@pytest.fixture
def about_study(db):  # type: ignore[no-untyped-def]
    study = StudyFactory.create_live()
    Study.objects.filter(pk=study.pk).update(status="draft")
    study.refresh_from_db()
    return with_demographics_and_detection(study)


def start(client: Client, study: Study) -> tuple[Participant, str]:
    assert (
        client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "P1"}).status_code
        == 302
    )
    participant = Participant.objects.get()
    return participant, f"/p/{participant.token}/"


def test_about_you_comes_after_the_articles_and_the_check(about_study):
    client = Client()
    participant, base = start(client, about_study)
    client.post(base + "instructions/")
    # Ahead of the participant: back to the article.
    early = client.get(base + "about-you/")
    assert early.status_code == 302
    assert early["Location"] == base + "article/1/"
    response = client.post(base + "article/1/", GOOD)
    assert response.status_code == 302
    # The attention check is asked among the articles, after the last one here.
    assert response["Location"] == base + "check/1/"
    assert client.get(base + "about-you/")["Location"] == base + "check/1/"
    response = client.post(base + "check/1/", {"attention": "Blue"})
    assert response["Location"] == base + "about-you/"
    page = client.get(base + "about-you/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-step="about"' in html
    assert 'type="checkbox" name="news_sources" value="Social media"' in html
    assert 'type="number" id="id_media_trust" name="media_trust" min="0" max="100"' in html
    assert 'type="range" min="0" max="100"' in html
    assert "slider.js" in html
    # The finish page is still ahead.
    assert client.get(base + "finish/")["Location"] == base + "about-you/"

    response = client.post(base + "about-you/", ABOUT)
    assert response.status_code == 302
    assert response["Location"] == base + "finish/"
    participant.refresh_from_db()
    assert participant.about_submitted_at is not None
    stored = dict(
        Response.objects.filter(participant=participant, trial__isnull=True).values_list(
            "question__key", "value"
        )
    )
    assert stored["news_sources"] == '["Television","Social media"]'
    assert json.loads(stored["news_sources"]) == ["Television", "Social media"]
    assert stored["media_trust"] == "40"
    assert stored["age_bracket"] == "25-34"
    # Going back shows the stored answers.
    again = client.get(base + "about-you/").content.decode()
    assert 'value="Television" checked' in again
    assert 'name="media_trust" min="0" max="100" step="1" inputmode="numeric" value="40"' in again
    assert client.post(base + "finish/").status_code == 302
    participant.refresh_from_db()
    assert participant.status == "completed"


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"media_trust": "150"}, "media_trust", "whole number from 0 to 100"),
        ({"media_trust": "forty"}, "media_trust", "whole number from 0 to 100"),
        ({"news_sources": ["Television", "Carrier pigeon"]}, "news_sources", "only the options"),
        ({"age_bracket": "12-17"}, "age_bracket", "one of the options"),
        ({"looked_up": ""}, "looked_up", "Please answer"),
    ],
)
def test_malformed_about_answers_re_render_and_write_nothing(about_study, change, key, message):
    client = Client()
    participant, base = start(client, about_study)
    client.post(base + "instructions/")
    client.post(base + "article/1/", GOOD)
    client.post(base + "check/1/", {"attention": "Blue"})
    before = Response.objects.count()
    response = client.post(base + "about-you/", {**ABOUT, **change})
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="err-{key}"' in html
    assert message in html
    assert Response.objects.count() == before
    participant.refresh_from_db()
    assert participant.about_submitted_at is None
    assert participant_next_step(participant=participant).name == "about"


def test_optional_questions_left_empty_still_complete_the_page(about_study):
    client = Client()
    participant, base = start(client, about_study)
    client.post(base + "instructions/")
    client.post(base + "article/1/", GOOD)
    client.post(base + "check/1/", {"attention": "Blue"})
    required_only = {
        k: v for k, v in ABOUT.items() if k not in ("ideology", "news_sources", "media_trust")
    }
    response = client.post(base + "about-you/", required_only)
    assert response.status_code == 302
    assert response["Location"] == base + "finish/"
    keys = set(
        Response.objects.filter(
            participant=participant, trial__isnull=True, question__scope="participant"
        ).values_list("question__key", flat=True)
    )
    assert keys == set(required_only)


def test_without_participant_questions_there_is_no_about_page(live_study):
    client = Client()
    _participant, base = start(client, live_study)
    client.post(base + "instructions/")
    response = client.post(base + "article/1/", GOOD | {"written_by": ""})
    assert response["Location"] == base + "check/1/"
    client.post(base + "check/1/", {"attention": "Blue"})
    assert client.get(base + "about-you/")["Location"] == base + "finish/"


def test_about_you_of_an_unknown_participant_is_404_and_put_is_refused(about_study):
    assert Client().get("/p/00000000-0000-4000-8000-000000000000/about-you/").status_code == 404
    client = Client()
    _, base = start(client, about_study)
    assert client.put(base + "about-you/").status_code == 405


def test_per_article_slider_and_multi_choice_are_drawn_and_stored(live_study):
    Study.objects.filter(pk=live_study.pk).update(status="draft")
    live_study.refresh_from_db()
    QuestionFactory.create(
        study=live_study, key="realism", kind="slider", scale_min=1, scale_max=7, position=10
    )
    QuestionFactory.create(
        study=live_study,
        key="topics",
        kind="multi_choice",
        choices=["Politics", "Sport"],
        position=11,
    )
    Study.objects.filter(pk=live_study.pk).update(status="pilot")
    client = Client()
    _participant, base = start(client, live_study)
    client.post(base + "instructions/")
    html = client.get(base + "article/1/").content.decode()
    assert 'name="realism" min="1" max="7"' in html
    assert 'type="checkbox" name="topics" value="Sport"' in html
    bad = client.post(base + "article/1/", {**GOOD, "realism": "8", "topics": ["Sport"]})
    assert bad.status_code == 200
    assert Response.objects.count() == 0
    good = client.post(
        base + "article/1/", {**GOOD, "realism": "7", "topics": ["Sport", "Politics"]}
    )
    assert good.status_code == 302
    stored = dict(Response.objects.values_list("question__key", "value"))
    assert (stored["realism"], stored["topics"]) == ("7", '["Politics","Sport"]')


# ---------------------------------------------------------------------------------------
# The simulation bot


def test_simulated_participants_answer_every_kind_and_complete(about_study):
    summary = simulate(
        study=about_study, n=12, rates={"real": 0.8, "generated": 0.6}, seed=9, progress=False
    )
    assert summary.errors == []
    assert summary.completed_now == 12
    required = about_study.questions.filter(scope="participant", required=True)
    for participant in Participant.objects.filter(study=about_study):
        assert participant.status == "completed"
        about = participant.responses.filter(trial__isnull=True, question__scope="participant")
        assert about.filter(question__in=required).count() == required.count()
        answers = dict(about.values_list("question__key", "value"))
        sources = json.loads(answers["news_sources"])
        assert sources
        assert set(sources) <= set(
            Question.objects.get(study=about_study, key="news_sources").choices
        )
        assert 0 <= int(answers["media_trust"]) <= 100
        assert participant.responses.filter(question__key="written_by").count() == 1


# ---------------------------------------------------------------------------------------
# The admin's question form


def _question_form(study: Study, **fields: object) -> object:
    from surveys.admin import QuestionForm

    data = {
        "study": study.pk,
        "position": 0,
        "key": "q",
        "text": "Question?",
        "scope": "participant",
        "required": True,
        "choices": "[]",
        **fields,
    }
    return QuestionForm(data=data)


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"kind": "multi_choice", "choices": '["Only one"]'}, "choices"),
        ({"kind": "multi_choice", "choices": '["A", 3]'}, "choices"),
        ({"kind": "slider", "scale_min": 10, "scale_max": 5}, "scale_max"),
        ({"kind": "slider", "scale_min": 10}, "scale_max"),
    ],
)
def test_admin_refuses_malformed_slider_and_multi_choice_questions(fields, error_field):
    study = StudyFactory.create()
    form = _question_form(study, **fields)
    assert not form.is_valid()  # type: ignore[attr-defined]
    assert error_field in form.errors  # type: ignore[attr-defined]


def test_admin_accepts_a_slider_without_a_scale_and_a_multi_choice():
    study = StudyFactory.create()
    assert _question_form(study, kind="slider").is_valid()  # type: ignore[attr-defined]
    form = _question_form(study, kind="multi_choice", choices='["A", "B"]')
    assert form.is_valid()  # type: ignore[attr-defined]
