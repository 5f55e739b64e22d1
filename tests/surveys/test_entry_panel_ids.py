"""Who may enter a study: required panel ids, long and blank ids, previews on POST only,
and pages of studies that are not open, which never show the title."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from surveys.forms import answer_parse
from surveys.models import Participant, Question, Response, Study
from surveys.privacy import keyed_hash
from surveys.services import (
    PanelIdRequiredError,
    PanelIds,
    participant_enroll,
    study_design_hash,
    study_set_status,
)
from tests.factories import QuestionFactory, StudyFactory

pytestmark = pytest.mark.django_db


def consent(client: Client, study: Study, **panel: str):  # type: ignore[no-untyped-def]
    return client.post(f"/s/{study.slug}/", {"consent": "yes", **panel})


# ---------------------------------------------------------------------------------------
# Required panel id


def test_a_study_requiring_a_panel_id_turns_away_people_without_one_and_enrols_nobody():
    study = StudyFactory.create_live(require_panel_id=True)
    page = Client().get(f"/s/{study.slug}/")
    assert page.status_code == 403
    html = page.content.decode()
    assert "Please use the link from your panel" in html
    assert 'name="consent"' not in html
    response = consent(Client(), study)
    assert response.status_code == 403
    assert "Please use the link from your panel" in response.content.decode()
    # A blank or whitespace id is no id.
    assert consent(Client(), study, PROLIFIC_PID="   ").status_code == 403
    assert Participant.objects.count() == 0
    with pytest.raises(PanelIdRequiredError):
        participant_enroll(study=study, panel=PanelIds())
    assert Participant.objects.count() == 0

    assert consent(Client(), study, PROLIFIC_PID="P1").status_code == 302
    assert Participant.objects.get().panel_pid == "P1"


def test_requiring_a_panel_id_is_part_of_the_design_only_when_set():
    study = StudyFactory.create_live()
    before = study.design_hash
    assert study_design_hash(study=study) == before  # existing designs keep their hash
    study.require_panel_id = True
    assert study_design_hash(study=study) != before


def test_previews_need_no_panel_id_even_where_the_study_requires_one():
    study = StudyFactory.create_live(require_panel_id=True)
    participant = participant_enroll(study=study, panel=PanelIds(), is_test=True)
    assert participant.is_test


# ---------------------------------------------------------------------------------------
# Long and blank ids


def test_a_panel_id_longer_than_the_column_is_refused_not_cut():
    study = StudyFactory.create_live()
    prefix = "A" * 100
    for pid in (prefix + "1", prefix + "2"):
        response = consent(Client(), study, PROLIFIC_PID=pid)
        assert response.status_code == 400
        assert "longer than 100 characters" in response.content.decode()
        assert Client().get(f"/s/{study.slug}/?PROLIFIC_PID={pid}").status_code == 400
    assert consent(Client(), study, workerId="W", assignmentId="x" * 101).status_code == 400
    assert Participant.objects.count() == 0
    # An id of exactly the column's width is taken whole.
    assert consent(Client(), study, PROLIFIC_PID=prefix).status_code == 302
    assert Participant.objects.get().panel_pid == prefix


def test_a_panel_id_with_stray_whitespace_is_the_same_participant():
    study = StudyFactory.create_live()
    first = consent(Client(), study, PROLIFIC_PID="P1")
    again = consent(Client(), study, PROLIFIC_PID="  P1 ")
    assert again.status_code == 302
    assert again["Location"] == first["Location"]
    participant = Participant.objects.get()
    assert participant.panel_pid == "P1"
    assert participant.panel_pid_hash == keyed_hash(value="P1", purpose="panel")


def test_a_blank_panel_id_is_an_anonymous_participation_not_a_shared_one():
    study = StudyFactory.create_live()
    for _ in range(2):
        assert consent(Client(), study, PROLIFIC_PID=" ", STUDY_ID="S").status_code == 302
    rows = list(Participant.objects.values_list("panel", "panel_pid", "panel_pid_hash"))
    assert rows == [("", "", ""), ("", "", "")]


# ---------------------------------------------------------------------------------------
# Preview


def test_the_preview_link_enrols_nobody_on_a_get():
    study = StudyFactory.create_live()
    staff = get_user_model().objects.create_user(
        "staff", password="x", is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(staff)
    page = client.get(f"/s/{study.slug}/preview/?PROLIFIC_PID=TEST1")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'method="post"' in html
    assert 'name="PROLIFIC_PID" value="TEST1"' in html
    client.head(f"/s/{study.slug}/preview/")
    assert Participant.objects.count() == 0
    response = client.post(f"/s/{study.slug}/preview/", {"PROLIFIC_PID": "TEST1"})
    assert response.status_code == 302
    participant = Participant.objects.get()
    assert (participant.is_test, participant.panel_pid) == (True, "TEST1")


# ---------------------------------------------------------------------------------------
# Studies that are not open


@pytest.mark.parametrize("status", ["draft", "closed"])
def test_a_study_that_is_not_open_never_shows_its_title(status):
    study = StudyFactory.create_live(title="Secret pilot on election deepfakes")
    if status == "draft":
        Study.objects.filter(pk=study.pk).update(status="draft")
    else:
        study_set_status(study=study, status="closed")
    for response in (
        Client().get(f"/s/{study.slug}/"),
        Client().get(f"/s/{study.slug}/?PROLIFIC_PID=P1"),
        consent(Client(), study, PROLIFIC_PID="P1"),
    ):
        assert response.status_code == 410
        assert "election deepfakes" not in response.content.decode()
    assert Participant.objects.count() == 0


def test_a_full_study_does_not_show_its_title_either():
    study = StudyFactory.create_live(title="Secret pilot on election deepfakes")
    study.conditions.update(quota=0)
    response = Client().get(f"/s/{study.slug}/")
    assert response.status_code == 503
    assert "election deepfakes" not in response.content.decode()


# ---------------------------------------------------------------------------------------
# Likert digits


@pytest.mark.parametrize("raw", ["\u0663", "\uff13", "\u0969", "3\u0663", "²", "3.0", "+3"])
def test_likert_answers_take_ascii_digits_only(raw):
    study = StudyFactory.create_live()
    question = Question.objects.get(study=study, key="believable")
    assert answer_parse(question=question, raw="3") == ("3", 3.0)
    with pytest.raises(Exception, match="Choose one of the points"):
        answer_parse(question=question, raw=raw)


def test_a_likert_answer_in_arabic_indic_digits_is_refused_on_the_page():
    study = StudyFactory.create_live()
    QuestionFactory.create(
        study=study, key="extra", kind=Question.Kind.LIKERT, scale_min=1, scale_max=5
    )
    client = Client()
    token = consent(client, study, PROLIFIC_PID="P1")["Location"].split("/")[2]
    client.post(f"/p/{token}/instructions/")
    answers = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}
    response = client.post(f"/p/{token}/article/1/", {**answers, "extra": "\u0663"})
    assert response.status_code == 200
    assert "Choose one of the points on the scale." in response.content.decode()
    assert Response.objects.count() == 0
