"""Detector scores stored per article x scorer (``generation.scoring``)."""

from __future__ import annotations

import math

import pytest
from django.core.exceptions import ValidationError

from generation.scoring import article_score, scorers_for_articles
from surveys.models import Article, ArticleScore
from tests.factories import GeneratedArticleFactory, RealArticleFactory

pytestmark = pytest.mark.django_db


def test_article_score_stores_one_row_per_article_and_model(tiny_model_name: str) -> None:
    article = GeneratedArticleFactory.create()
    score = article_score(article=article, model_name=tiny_model_name)
    score.refresh_from_db()
    assert score.n_tokens > 10
    assert score.perplexity == pytest.approx(math.exp(-score.mean_logprob), rel=1e-6)
    assert 0 <= score.rank_lt_10 <= score.rank_lt_100 <= score.rank_lt_1000 == 1.0  # vocab 500
    assert score.scorer_identity["param_count"] > 0
    assert score.scorer_version
    again = article_score(article=article, model_name=tiny_model_name)
    assert again.pk == score.pk
    assert ArticleScore.objects.filter(article=article).count() == 1


def test_article_score_refuses_an_unknown_model_and_writes_nothing() -> None:
    article = RealArticleFactory.create()
    with pytest.raises(ValidationError, match='Unknown model "gpt5"'):
        article_score(article=article, model_name="gpt5")
    assert not ArticleScore.objects.exists()


def test_article_score_refuses_an_empty_article(tiny_model_name: str) -> None:
    article = RealArticleFactory.create()
    Article.objects.filter(pk=article.pk).update(body="  ")
    article.refresh_from_db()
    with pytest.raises(ValidationError, match="no text to score"):
        article_score(article=article, model_name=tiny_model_name)
    assert not ArticleScore.objects.exists()


def test_scores_are_deleted_with_their_article(tiny_model_name: str) -> None:
    article = RealArticleFactory.create()
    article_score(article=article, model_name=tiny_model_name)
    article.delete()
    assert not ArticleScore.objects.exists()


def test_the_generating_model_is_the_scorer_when_it_loads(tiny_model_name: str) -> None:
    articles = [
        RealArticleFactory.create(),
        GeneratedArticleFactory.create(model_name=tiny_model_name),
        GeneratedArticleFactory.create(model_name=tiny_model_name),
    ]
    choice = scorers_for_articles(articles=articles, fallback="gpt2")
    assert choice.scorers == [tiny_model_name]
    assert choice.notes == []


def test_a_generating_model_that_cannot_load_falls_back(tiny_model_name: str) -> None:
    articles = [
        GeneratedArticleFactory.create(model_name="gpt5"),
        GeneratedArticleFactory.create(model_name=tiny_model_name),
    ]
    choice = scorers_for_articles(articles=articles, fallback=tiny_model_name)
    assert choice.scorers == [tiny_model_name]  # the fallback once, not twice
    assert len(choice.notes) == 1
    assert '"gpt5" cannot be loaded here' in choice.notes[0]


def test_real_articles_only_are_scored_with_the_fallback() -> None:
    choice = scorers_for_articles(articles=[RealArticleFactory.create()], fallback="embedded")
    assert choice.scorers == ["embedded"]
