"""The per-process memo of a live study's frozen design (surveys.selectors.study_design):
it is used for live and closed studies only, keyed by the study and its design hash, so a
changed design is never served from it."""

from __future__ import annotations

import pytest
from django.test import Client

from surveys.models import Question, Study
from surveys.selectors import questions_for, study_design
from surveys.selectors.participation import _frozen_design
from surveys.services import study_design_hash, study_set_status
from tests.factories import (
    ConditionFactory,
    QuestionFactory,
    RealArticleFactory,
    StudyFactory,
)

GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}


def _keys(study: Study, scope: str = Question.Scope.PER_ARTICLE) -> list[str]:
    return [q.key for q in questions_for(study=study, scope=scope)]


@pytest.fixture
def draft(db: None) -> Study:
    study = StudyFactory.create(articles_per_participant=1)
    condition = ConditionFactory.create(study=study, name="real", is_reference=True)
    condition.articles.add(RealArticleFactory.create())
    QuestionFactory.create_kreps_set(study=study)
    return study


@pytest.mark.parametrize("status", [Study.Status.DRAFT, Study.Status.PILOT])
def test_an_editable_design_is_read_afresh_every_time(draft: Study, status: str) -> None:
    study = study_set_status(study=draft, status=status) if status != draft.status else draft
    assert status == Study.Status.DRAFT or study.design_hash  # a pilot has a hash too
    before = _frozen_design.cache_info().currsize
    assert "extra" not in _keys(study)
    QuestionFactory.create(study=study, key="extra", position=99)
    assert _keys(study)[-1] == "extra"
    assert _frozen_design.cache_info().currsize == before


def test_a_live_design_is_read_once_per_process(draft: Study) -> None:
    study = study_set_status(study=draft, status=Study.Status.LIVE)
    _frozen_design.cache_clear()
    first = study_design(study=study)
    assert study_design(study=study) is first
    assert _frozen_design.cache_info().misses == 1
    # Closing keeps the design (and its hash): still the memo.
    closed = study_set_status(study=study, status=Study.Status.CLOSED)
    assert closed.design_hash == study.design_hash
    assert study_design(study=closed) is first


def test_a_changed_design_comes_with_a_new_hash_and_is_never_served_stale(draft: Study) -> None:
    study = study_set_status(study=draft, status=Study.Status.LIVE)
    assert "extra" not in _keys(study)
    # A design can only change with its hash (study_set_status stores the hash of what
    # goes live; the admin locks live designs). Simulate a change behind the locks: a
    # question added and the hash recomputed, as going live again would store it.
    QuestionFactory.create(study=study, key="extra", position=99)
    study.design_hash = study_design_hash(study=study)
    Study.objects.filter(pk=study.pk).update(design_hash=study.design_hash)
    assert _keys(study)[-1] == "extra"


def test_a_study_without_a_stored_hash_bypasses_the_memo(draft: Study) -> None:
    study = study_set_status(study=draft, status=Study.Status.LIVE)
    Study.objects.filter(pk=study.pk).update(design_hash="")
    study.refresh_from_db()
    assert "extra" not in _keys(study)
    QuestionFactory.create(study=study, key="extra", position=99)
    assert _keys(study)[-1] == "extra"


def test_callers_cannot_change_the_memoised_design(draft: Study) -> None:
    study = study_set_status(study=draft, status=Study.Status.LIVE)
    questions = questions_for(study=study, scope=Question.Scope.PER_ARTICLE)
    questions.clear()
    assert _keys(study) == ["credible", "believable", "accurate", "clear"]


def test_a_pilot_edited_before_launch_shows_the_launched_design(draft: Study) -> None:
    """The flow through the real pages: a pilot participant reads the pilot's design;
    the researcher adds a required question and launches; a participant of the live
    study is asked it (and cannot get past the article without it), while the earlier
    read of the pilot left nothing behind."""
    pilot = study_set_status(study=draft, status=Study.Status.PILOT)
    client = Client()
    response = client.post(f"/s/{pilot.slug}/", {"consent": "yes", "PROLIFIC_PID": "PILOT1"})
    token = response["Location"].split("/")[2]
    assert client.post(f"/p/{token}/instructions/").status_code == 302
    page = client.get(f"/p/{token}/article/1/").content.decode()
    assert 'name="credible"' in page
    assert 'name="late"' not in page

    QuestionFactory.create(study=pilot, key="late", text="Would you share it?", position=99)
    live = study_set_status(study=pilot, status=Study.Status.LIVE)

    client = Client()
    response = client.post(f"/s/{live.slug}/", {"consent": "yes", "PROLIFIC_PID": "LIVE1"})
    token = response["Location"].split("/")[2]
    assert client.post(f"/p/{token}/instructions/").status_code == 302
    assert 'name="late"' in client.get(f"/p/{token}/article/1/").content.decode()
    # Without the new required answer the article is not done.
    response = client.post(f"/p/{token}/article/1/", GOOD)
    assert response.status_code == 200
    assert 'name="late"' in response.content.decode()
    response = client.post(f"/p/{token}/article/1/", {**GOOD, "late": "yes"})
    assert response.status_code == 302
    assert "/article/" not in response["Location"]
