"""The data step of generation/0005: detector scores stored before scores moved to
surveys.ArticleScore are copied there, field by field, before their table is dropped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.factories import RealArticleFactory

BEFORE = [("generation", "0004_run_dtype_and_decoding_settings")]
AFTER = [("generation", "0005_delete_detectorscore")]
# Where ArticleScore was made; 0005 depends on it, 0004 does not.
ARTICLE_SCORE = ("surveys", "0004_articlescore")

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(targets: list[tuple[str, str]]) -> Any:
    """Migrate to ``targets`` and return the historical apps there, ArticleScore included."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state([*targets, ARTICLE_SCORE]).apps


@pytest.fixture
def before_0005() -> Iterator[Any]:
    """The database with generation at 0004 (surveys stays at its latest, ArticleScore
    included); back to the latest state afterwards for the tests that follow."""
    try:
        yield _migrate(BEFORE)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


def _detector_score(old: Any, article_id: int, model: str, **values: Any) -> Any:
    DetectorScore = old.get_model("generation", "DetectorScore")
    fields: dict[str, Any] = {
        "model_identity": {"name": model, "sha256": "ab" * 8},
        "tokens": 40,
        "mean_logprob": -3.25,
        "perplexity": 25.79,
        "rank_top10": 0.5,
        "rank_top100": 0.75,
        "rank_top1000": 0.9,
        "scorer_version": "gltr-1",
        **values,
    }
    return DetectorScore.objects.create(article_id=article_id, scoring_model=model, **fields)


def test_stored_detector_scores_become_article_scores_field_by_field(before_0005: Any) -> None:
    # Articles are surveys rows, at surveys' latest schema: made with today's factory.
    first, second = RealArticleFactory.create(), RealArticleFactory.create()
    _detector_score(before_0005, first.pk, "gpt2")
    _detector_score(
        before_0005,
        first.pk,
        "embedded",
        model_identity={"name": "embedded", "parameters": 134_515_008},
        tokens=7,
        mean_logprob=-1.5,
        perplexity=4.4817,
        rank_top10=0.0,
        rank_top100=0.25,
        rank_top1000=1.0,
        scorer_version="gltr-2",
    )
    _detector_score(before_0005, second.pk, "gpt2", tokens=12, mean_logprob=-6.0)

    new = _migrate(AFTER)

    fields = (
        "article_id",
        "scorer",
        "scorer_identity",
        "scorer_version",
        "n_tokens",
        "mean_logprob",
        "perplexity",
        "rank_lt_10",
        "rank_lt_100",
        "rank_lt_1000",
    )
    rows = sorted(new.get_model("surveys", "ArticleScore").objects.values_list(*fields))
    assert rows == sorted(
        [
            (first.pk, "embedded", {"name": "embedded", "parameters": 134_515_008}, "gltr-2",
             7, -1.5, 4.4817, 0.0, 0.25, 1.0),
            (first.pk, "gpt2", {"name": "gpt2", "sha256": "ab" * 8}, "gltr-1",
             40, -3.25, 25.79, 0.5, 0.75, 0.9),
            (second.pk, "gpt2", {"name": "gpt2", "sha256": "ab" * 8}, "gltr-1",
             12, -6.0, 25.79, 0.5, 0.75, 0.9),
        ]
    )  # fmt: skip
    assert "generation_detectorscore" not in connection.introspection.table_names()


def test_scores_already_in_surveys_are_kept_and_a_stored_score_for_the_same_scorer_wins(
    before_0005: Any,
) -> None:
    article, other = RealArticleFactory.create(), RealArticleFactory.create()
    ArticleScore = before_0005.get_model("surveys", "ArticleScore")
    shares = {"rank_lt_10": 0.1, "rank_lt_100": 0.2, "rank_lt_1000": 0.3}
    # Scored by another scorer since the move: no detector score touches it.
    kept = ArticleScore.objects.create(
        article_id=article.pk, scorer="embedded", n_tokens=5, mean_logprob=-2.0,
        perplexity=7.389, **shares,
    )  # fmt: skip
    # The same article x scorer in both tables: the migration updates, never duplicates.
    ArticleScore.objects.create(
        article_id=other.pk, scorer="gpt2", n_tokens=5, mean_logprob=-2.0, perplexity=7.389,
        **shares,
    )  # fmt: skip
    _detector_score(before_0005, other.pk, "gpt2", tokens=33, mean_logprob=-4.0)

    new = _migrate(AFTER)

    scores = new.get_model("surveys", "ArticleScore").objects
    assert scores.count() == 2
    unchanged = scores.get(pk=kept.pk)
    assert (unchanged.scorer, unchanged.n_tokens, unchanged.mean_logprob) == ("embedded", 5, -2.0)
    replaced = scores.get(article_id=other.pk, scorer="gpt2")
    assert (replaced.n_tokens, replaced.mean_logprob, replaced.rank_lt_1000) == (33, -4.0, 0.9)


def test_without_stored_detector_scores_the_migration_adds_no_article_score(
    before_0005: Any,
) -> None:
    RealArticleFactory.create()

    new = _migrate(AFTER)

    assert not new.get_model("surveys", "ArticleScore").objects.exists()
    assert "generation_detectorscore" not in connection.introspection.table_names()
