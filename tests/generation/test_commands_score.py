"""`manage.py score_articles`: detector scores for every article of a study."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from generation.models import DetectorScore
from surveys.models import Article, Study
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


def _call(*args: str) -> str:
    out = StringIO()
    call_command("score_articles", *args, stdout=out)
    return out.getvalue()


def test_every_article_of_the_study_gets_one_score(tiny_model_name: str) -> None:
    study = StudyFactory.create_live(articles_per_condition=2)
    other = StudyFactory.create_live(articles_per_condition=1)
    output = _call(study.slug, "--model", tiny_model_name)
    articles = set(Article.objects.filter(conditions__study=study))
    assert len(articles) == 4
    scores = DetectorScore.objects.all()
    assert {s.article for s in scores} == articles
    assert {s.scoring_model for s in scores} == {tiny_model_name}
    assert not DetectorScore.objects.filter(article__conditions__study=other).exists()
    assert f"Scored 4 article(s) of {study.slug}" in output

    _call(study.slug, "--model", tiny_model_name)  # rescoring replaces, never duplicates
    assert DetectorScore.objects.count() == 4


def test_an_unknown_study_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match='There is no study "nope"'):
        _call("nope")


def test_an_unknown_model_is_a_clear_error_and_writes_nothing() -> None:
    study = StudyFactory.create_live(articles_per_condition=1)
    with pytest.raises(CommandError, match='Unknown model "gpt5"'):
        _call(study.slug, "--model", "gpt5")
    assert not DetectorScore.objects.exists()


def test_a_study_without_articles_is_a_clear_error(tiny_model_name: str) -> None:
    study = StudyFactory.create(status=Study.Status.DRAFT)
    with pytest.raises(CommandError, match="has no articles"):
        _call(study.slug, "--model", tiny_model_name)
