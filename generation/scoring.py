"""Detector scores for articles: the engine's scoring model meets the database here.

Scores are a property of the stimulus, so they are stored as ``surveys.ArticleScore``
(analysis reads them from there and never imports generation). The arithmetic lives in
``generation.detectors`` (no Django); this module picks the scoring model (and the
Binoculars performer beside it), loads them through the engine and writes one row per
article x scorer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from generation import detectors, engine
from generation.services import model_dir
from surveys.models import Article, ArticleScore


def _default_scorer_loader(model_name: str) -> Any:
    return engine.load_model(model_name, model_dir=model_dir())


# Binoculars pairs two models sharing a tokenizer, a base model and its instruction-tuned
# sibling in the paper (Falcon-7B / Falcon-7B-instruct). Without ``--performer``, a
# scorer's known sibling is tried; any other scorer has none.
BINOCULARS_SIBLINGS: dict[str, str] = {
    engine.EMBEDDED: "HuggingFaceTB/SmolLM2-135M",  # the base of SmolLM2-135M-Instruct
    "gpt2": "gpt2-medium",
    "gpt2-medium": "gpt2",
    "gpt2-large": "gpt2-xl",
    "gpt2-xl": "gpt2-large",
}


@dataclass(frozen=True)
class BinocularsPlan:
    """The performer loaded beside a scorer for Binoculars, or why there is none
    (``reason``, one line a report can show)."""

    performer: Any = None  # the engine's loaded model, None when unavailable
    reason: str = ""


def binoculars_plan(
    *,
    model_name: str,
    performer: str | None = None,
    engine_loader: Callable[[str], Any] | None = None,
) -> BinocularsPlan:
    """Load the Binoculars performer for the scorer ``model_name``: ``performer`` when
    named, else the scorer's sibling in :data:`BINOCULARS_SIBLINGS`. Never raises for a
    missing or unsuitable performer: the plan then carries the reason, stored with each
    score, so the report can say why Binoculars is missing."""
    load = engine_loader or _default_scorer_loader
    named = (performer or "").strip()
    name = named or BINOCULARS_SIBLINGS.get(model_name.strip(), "")
    if name and not named and not _has_local_copy(name):
        # A sibling nobody asked for is never downloaded: scoring stays offline.
        return BinocularsPlan(
            reason=f'the performer "{name}" (sharing the tokenizer of "{model_name}") has '
            "no local copy here (CREDENCE_MODEL_DIR or the Hugging Face cache); name one "
            "with score_articles --performer"
        )
    if not name:
        return BinocularsPlan(
            reason=f'no second model sharing the tokenizer of "{model_name}" was named '
            "(score_articles --performer); Binoculars needs two related models"
        )
    if name == model_name.strip():
        return BinocularsPlan(reason="the performer must be another model than the scorer")
    loaded_observer = load(model_name)  # a missing scorer is the caller's error, not a reason
    try:
        loaded_performer = load(name)
    except (engine.UnknownModelError, engine.ModelUnavailableError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        return BinocularsPlan(
            reason=f'the performer "{name}" (sharing the tokenizer of "{model_name}") '
            f"cannot be loaded here: {first_line}"
        )
    mismatch = detectors.tokenizer_mismatch(loaded_observer.tokenizer, loaded_performer.tokenizer)
    if mismatch:
        return BinocularsPlan(
            reason=f'"{name}" cannot be the performer of "{model_name}": {mismatch}'
        )
    return BinocularsPlan(performer=loaded_performer)


def _has_local_copy(name: str) -> bool:
    """Whether ``name`` loads without a download: the embedded model, a directory, or a
    hub model already in ``CREDENCE_MODEL_DIR`` or the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        spec = engine.resolve_model(name, model_dir=model_dir())
    except engine.UnknownModelError:
        return False
    if spec.kind != "hub":
        return True
    return isinstance(try_to_load_from_cache(spec.source, "config.json"), str)


def _binoculars_fields(
    *, text: str, loaded: Any, plan: BinocularsPlan, unavailable: dict[str, str]
) -> dict[str, Any]:
    if plan.performer is None:
        unavailable["binoculars"] = plan.reason
        return {"binoculars": None, "binoculars_performer": {}}
    try:
        result = detectors.binoculars_text(
            text,
            observer=loaded.model,
            performer=plan.performer.model,
            tokenizer=loaded.tokenizer,
            context_length=loaded.identity.context_length,
        )
    except ValueError as error:  # e.g. output layers of different sizes
        unavailable["binoculars"] = str(error)
        return {"binoculars": None, "binoculars_performer": plan.performer.identity.as_dict()}
    if math.isnan(result.score):
        unavailable["binoculars"] = "the cross-perplexity is 0 (both models are certain)"
        return {"binoculars": None, "binoculars_performer": plan.performer.identity.as_dict()}
    return {"binoculars": result.score, "binoculars_performer": plan.performer.identity.as_dict()}


def article_score(
    *,
    article: Article,
    model_name: str,
    binoculars: BinocularsPlan | None = None,
    engine_loader: Callable[[str], Any] | None = None,
) -> ArticleScore:
    """Score an article's text with a language model and store it: GLTR-style scores
    (mean token log-probability, perplexity, top-10/100/1000 rank shares), Fast-DetectGPT
    (the scorer as its own sampling model) and Binoculars (the scorer as observer and the
    performer of ``binoculars``, by default :func:`binoculars_plan`'s choice).

    The text scored is the article's body as participants read it. Rescoring with the
    same model name replaces the earlier row. A detector that cannot be computed is
    stored empty, with its reason in ``unavailable``. Raises ValidationError, writing
    nothing, for an unknown model name or an article with no text; ModelUnavailableError
    when the scoring model's weights are missing.
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
    unavailable: dict[str, str] = {}
    if math.isnan(scores.fast_detectgpt):
        unavailable["fast_detectgpt"] = "the model's next-token distributions have no variance"
    plan = binoculars or binoculars_plan(model_name=model_name, engine_loader=engine_loader)
    paired = _binoculars_fields(text=text, loaded=loaded, plan=plan, unavailable=unavailable)
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
            "fast_detectgpt": None if math.isnan(scores.fast_detectgpt) else scores.fast_detectgpt,
            "unavailable": unavailable,
            **paired,
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
