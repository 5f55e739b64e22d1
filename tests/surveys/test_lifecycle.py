"""Study lifecycle: allowed and refused transitions, design hash, the design lock."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from surveys.models import Study
from surveys.services import (
    condition_add_articles,
    study_assert_editable,
    study_design_hash,
    study_set_status,
)
from tests.factories import ConditionFactory, RealArticleFactory, StudyFactory

pytestmark = pytest.mark.django_db


def _ready_draft() -> Study:
    """A draft that passes validation: the live fixture's design, before launch."""
    live = StudyFactory.create_live()
    Study.objects.filter(pk=live.pk).update(status=Study.Status.DRAFT, design_hash="")
    live.refresh_from_db()
    return live


def test_draft_to_pilot_to_draft_to_live_to_closed():
    study = _ready_draft()
    assert study_set_status(study=study, status="pilot").status == "pilot"
    assert study_set_status(study=study, status="draft").status == "draft"
    live = study_set_status(study=study, status="live")
    assert live.status == "live"
    assert live.launched_at is not None
    closed = study_set_status(study=study, status="closed")
    study.refresh_from_db()
    assert study.status == closed.status == "closed"
    assert study.closed_at is not None
    assert study.closed_at >= study.launched_at


def test_launch_stores_the_design_hash_of_the_launched_design():
    study = _ready_draft()
    expected = study_design_hash(study=study)
    study_set_status(study=study, status="live")
    study.refresh_from_db()
    assert study.design_hash == expected
    assert len(expected) == 64


def test_design_hash_changes_with_the_design():
    study = _ready_draft()
    before = study_design_hash(study=study)
    condition = study.conditions.get(name="real")
    condition.articles.add(RealArticleFactory.create())
    assert study_design_hash(study=study) != before


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (Study.Status.CLOSED, Study.Status.LIVE),
        (Study.Status.CLOSED, Study.Status.DRAFT),
        (Study.Status.LIVE, Study.Status.DRAFT),
        (Study.Status.LIVE, Study.Status.PILOT),
        (Study.Status.DRAFT, Study.Status.CLOSED),
    ],
)
def test_refused_transitions_leave_the_status(start, target):
    study = StudyFactory.create(status=start)
    with pytest.raises(ValidationError, match=f"A {start} study cannot be set to {target}"):
        study_set_status(study=study, status=target)
    study.refresh_from_db()
    assert study.status == start


def test_launching_an_incomplete_study_lists_the_problems_and_stays_draft():
    study = StudyFactory.create()
    ConditionFactory.create(study=study, name="real", label="Real", is_reference=True)
    ConditionFactory.create(study=study, name="generated", label="Generated")
    with pytest.raises(ValidationError) as error:
        study_set_status(study=study, status="live")
    assert (
        'Condition "generated" has 0 article(s); each participant sees 1.' in error.value.messages
    )
    assert "The study has no questions about the articles." in error.value.messages
    study.refresh_from_db()
    assert (study.status, study.design_hash, study.launched_at) == ("draft", "", None)


def test_assert_editable_reads_the_status_from_the_database():
    study = StudyFactory.create()
    study_assert_editable(study=study)  # draft: fine
    Study.objects.filter(pk=study.pk).update(status=Study.Status.LIVE)
    # The stale instance still says draft; the check must not trust it.
    assert study.status == Study.Status.DRAFT
    with pytest.raises(ValidationError, match="is live: its design"):
        study_assert_editable(study=study)


@pytest.mark.django_db
def test_articles_join_a_condition_once_and_only_while_its_design_is_editable():
    study = StudyFactory.create()
    condition = ConditionFactory.create(study=study, name="real")
    first, second = RealArticleFactory.create(), RealArticleFactory.create()
    assert condition_add_articles(condition=condition, articles=[first]) == 1
    assert condition_add_articles(condition=condition, articles=[first, second]) == 1
    assert set(condition.articles.all()) == {first, second}
    live = StudyFactory.create_live()
    locked = live.conditions.get(name="real")
    before = locked.articles.count()
    with pytest.raises(ValidationError):
        condition_add_articles(condition=locked, articles=[RealArticleFactory.create()])
    assert locked.articles.count() == before
