"""`manage.py score_articles`: detector scores for every article of a study."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from surveys.models import Article, ArticleScore, Study
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
    scores = ArticleScore.objects.all()
    assert {s.article for s in scores} == articles
    assert {s.scorer for s in scores} == {tiny_model_name}
    assert not ArticleScore.objects.filter(article__conditions__study=other).exists()
    assert f"Scored 4 article(s) of {study.slug}" in output

    _call(study.slug, "--model", tiny_model_name)  # rescoring replaces, never duplicates
    assert ArticleScore.objects.count() == 4


def test_without_a_model_the_generating_model_scores_every_article(tiny_model_name: str) -> None:
    study = StudyFactory.create_live(articles_per_condition=2)
    Article.objects.filter(conditions__study=study, origin=Article.Origin.GENERATED).update(
        model_name=tiny_model_name
    )
    output = _call(study.slug)
    scores = ArticleScore.objects.all()
    # Real articles too, by the same scorer: an AUC compares the two origins.
    assert {s.article for s in scores} == set(Article.objects.filter(conditions__study=study))
    assert {s.scorer for s in scores} == {tiny_model_name}
    assert f"with {tiny_model_name}." in output


def test_an_unknown_study_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match='There is no study "nope"'):
        _call("nope")


def test_an_unknown_model_is_a_clear_error_and_writes_nothing() -> None:
    study = StudyFactory.create_live(articles_per_condition=1)
    with pytest.raises(CommandError, match='Unknown model "gpt5"'):
        _call(study.slug, "--model", "gpt5")
    assert not ArticleScore.objects.exists()


def test_a_study_without_articles_is_a_clear_error(tiny_model_name: str) -> None:
    study = StudyFactory.create(status=Study.Status.DRAFT)
    with pytest.raises(CommandError, match="has no articles"):
        _call(study.slug, "--model", tiny_model_name)
