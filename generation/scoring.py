"""Detector scores for articles: the engine's scoring model meets the database here.

Scores are a property of the stimulus, so they are stored as ``surveys.ArticleScore``
(analysis reads them from there and never imports generation). The arithmetic lives in
``generation.detectors`` (no Django); this module picks the scoring model, loads it
through the engine and writes one row per article x scorer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from generation import detectors, engine
from generation.services import model_dir
from surveys.models import Article, ArticleScore


def _default_scorer_loader(model_name: str) -> Any:
    return engine.load_model(model_name, model_dir=model_dir())


def article_score(
    *, article: Article, model_name: str, engine_loader: Callable[[str], Any] | None = None
) -> ArticleScore:
    """Score an article's text with a language model and store it (GLTR-style scores:
    mean token log-probability, perplexity, top-10/100/1000 rank shares).

    The text scored is the article's body as participants read it. Rescoring with the
    same model name replaces the earlier row. Raises ValidationError, writing nothing,
    for an unknown model name or an article with no text; ModelUnavailableError when the
    model's weights are missing.
    """
    model_name = model_name.strip()
    try:
        engine.resolve_model(model_name, model_dir=model_dir())
    except engine.UnknownModelError as error:
        raise ValidationError({"model_name": [str(error)]}) from None
    text = (article.body or "").strip()
    if not text:
        raise ValidationError(f"Article {article.pk} has no text to score.")
    loaded = (engine_loader or _default_scorer_loader)(model_name)
    try:
        scores = detectors.score_text(
            text,
            model=loaded.model,
            tokenizer=loaded.tokenizer,
            context_length=loaded.identity.context_length,
        )
    except ValueError as error:
        raise ValidationError(f"Article {article.pk}: {error}") from None
    score, _ = ArticleScore.objects.update_or_create(
        article=article,
        scorer=model_name[:300],
        defaults={
            "scorer_identity": loaded.identity.as_dict(),
            "scorer_version": detectors.SCORER_VERSION,
            "n_tokens": scores.tokens,
            "mean_logprob": scores.mean_logprob,
            "perplexity": scores.perplexity,
            "rank_lt_10": scores.rank_top10,
            "rank_lt_100": scores.rank_top100,
            "rank_lt_1000": scores.rank_top1000,
        },
    )
    return score


@dataclass(frozen=True)
class ScorerChoice:
    """The scoring models for a set of articles, and why any generating model was not
    used (one line per model replaced by the fallback)."""

    scorers: list[str]
    notes: list[str]


def scorers_for_articles(
    *,
    articles: Iterable[Article],
    fallback: str = engine.EMBEDDED,
    engine_loader: Callable[[str], Any] | None = None,
) -> ScorerChoice:
    """The models to score a study's articles with when none is named: each model that
    generated one of them (``Article.model_name``), as detectors work best with the model
    that wrote the text; ``fallback`` instead of any that cannot be loaded here, and
    ``fallback`` alone when no article names its model (a study of real articles only).

    Every article of the study is then scored by every chosen model, real ones included:
    an AUC compares scores of generated and real articles, which is only meaningful
    when both come from the same scorer. Loading is cached by the engine, so checking a
    model here costs nothing when it is used next.
    """
    load = engine_loader or _default_scorer_loader
    generating = sorted({a.model_name.strip() for a in articles if a.model_name.strip()})
    scorers: list[str] = []
    notes: list[str] = []
    for name in generating:
        try:
            load(name)
        except (engine.UnknownModelError, engine.ModelUnavailableError) as error:
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            notes.append(f'"{name}" cannot be loaded here ({first_line}); using {fallback}.')
            name = fallback
        if name not in scorers:
            scorers.append(name)
    if not scorers:
        scorers.append(fallback)
    return ScorerChoice(scorers=scorers, notes=notes)
