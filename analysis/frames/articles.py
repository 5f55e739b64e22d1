"""The study's articles: the provenance manifest and the detector scores."""

from __future__ import annotations

import json

import pandas as pd
from django.db.models import Count

from analysis.frames.columns import CHUNK_SIZE
from surveys.models import Article, ArticleScore, Condition, Study, Trial

MANIFEST_COLUMNS = [
    "article_id",
    "origin",
    "title",
    "outlet",
    "url",
    "published",
    "license",
    "attribution",
    "source_article_id",
    "source_article_title",
    "source_article_url",
    "model_name",
    "conditions",
    "times_shown",
    "sample_id",
    "sample_index",
    "sample_seed",
    "sample_new_tokens",
    "sample_review",
    "prompt",
    "run_id",
    "run_model_name",
    "run_prompt_kind",
    "run_max_new_tokens",
    "run_top_k",
    "run_top_p",
    "run_temperature",
    "run_seed",
    "sample_settings",
    "run_model_identity",
]
_MANIFEST_INTEGERS = [
    "source_article_id",
    "sample_id",
    "sample_index",
    "sample_seed",
    "sample_new_tokens",
    "run_id",
    "run_max_new_tokens",
    "run_top_k",
    "run_seed",
]
# Filled from a generation sample when one is linked; analysis never imports generation,
# so these are read by attribute name (see _sample_provenance).
_SAMPLE_ATTRIBUTES = {
    "sample_id": "pk",
    "sample_index": "sample_index",
    "sample_seed": "seed",
    "sample_new_tokens": "new_tokens",
    "sample_review": "review",
    "prompt": "prompt",
}
_RUN_ATTRIBUTES = {
    "run_id": "pk",
    "run_model_name": "model_name",
    "run_prompt_kind": "prompt_kind",
    "run_max_new_tokens": "max_new_tokens",
    "run_top_k": "top_k",
    "run_top_p": "top_p",
    "run_temperature": "temperature",
    "run_seed": "seed",
}


def _sample_provenance(article: Article) -> dict[str, object]:
    """The generation record behind a machine-written article, read defensively: the
    reverse accessor ``article.sample`` exists only when the generation app is installed,
    and raises (an AttributeError subclass) when no sample is linked."""
    empty: dict[str, object] = dict.fromkeys(
        [*_SAMPLE_ATTRIBUTES, *_RUN_ATTRIBUTES, "sample_settings", "run_model_identity"]
    )
    sample = getattr(article, "sample", None)
    if sample is None:
        return empty
    row = {column: getattr(sample, name, None) for column, name in _SAMPLE_ATTRIBUTES.items()}
    row["sample_settings"] = json.dumps(getattr(sample, "settings", None), sort_keys=True)
    run = getattr(sample, "run", None)
    if run is not None:
        row.update({column: getattr(run, name, None) for column, name in _RUN_ATTRIBUTES.items()})
        row["run_model_identity"] = json.dumps(getattr(run, "model_identity", None), sort_keys=True)
    return {**empty, **row}


def articles_manifest_frame(*, study: Study) -> pd.DataFrame:
    """Every article the study uses (in a condition's pool, or shown in a trial, test
    sessions included) with its full provenance: origin, outlet, URL, license and
    attribution, the real article a generated one was prompted with, the model, and -
    when a generation sample is linked - the sample and its run's decoding settings.
    ``conditions`` lists the condition names separated by ";"; ``times_shown`` counts
    trials. One row per article, by id."""
    in_pool = Condition.articles.through.objects.filter(condition__study=study)
    pool_names = pd.DataFrame.from_records(
        in_pool.values_list("article_id", "condition__name").order_by("condition__name"),
        columns=["article_id", "condition"],
    )
    shown = (
        Trial.objects.filter(participant__study=study)
        .values("article_id")
        .annotate(times=Count("id"))
        .values_list("article_id", "times")
    )
    times_shown = dict(shown)
    ids = set(pool_names["article_id"]) | set(times_shown)
    articles = Article.objects.filter(pk__in=ids).select_related("source_article").order_by("pk")
    if any(rel.name == "sample" for rel in Article._meta.related_objects):
        # One query instead of one per article when generation is installed.
        articles = articles.select_related("sample__run")
    conditions = pool_names.groupby("article_id")["condition"].agg(lambda c: ";".join(c))
    rows = []
    for article in articles.iterator(chunk_size=CHUNK_SIZE):
        source = article.source_article
        rows.append(
            {
                "article_id": article.pk,
                "origin": article.origin,
                "title": article.title,
                "outlet": article.outlet,
                "url": article.url,
                "published": article.published.isoformat() if article.published else "",
                "license": article.license,
                "attribution": article.attribution,
                "source_article_id": source.pk if source else None,
                "source_article_title": source.title if source else "",
                "source_article_url": source.url if source else "",
                "model_name": article.model_name,
                "conditions": conditions.get(article.pk, ""),
                "times_shown": times_shown.get(article.pk, 0),
                **_sample_provenance(article),
            }
        )
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    # Nullable integers: real articles have no source, sample or run.
    for column in _MANIFEST_INTEGERS:
        frame[column] = frame[column].astype("Int64")
    return frame


SCORE_METRICS: list[str] = list(ArticleScore.METRICS)
ARTICLE_SCORE_COLUMNS = [
    "article_id",
    "article_origin",
    "title",
    "condition",
    "scorer",
    "n_tokens",
    *SCORE_METRICS,
]


def _article_conditions(*, study: Study) -> dict[int, str]:
    """Article id -> the names of the study's conditions it belongs to (its pool, or the
    condition of a trial that showed it), sorted and joined with ";"."""
    pairs = set(
        Condition.articles.through.objects.filter(condition__study=study).values_list(
            "article_id", "condition__name"
        )
    )
    pairs |= set(
        Trial.objects.filter(participant__study=study, condition__isnull=False)
        .values_list("article_id", "condition__name")
        # Without order_by() the model's default ordering joins in and DISTINCT keeps
        # every trial: 2 s instead of 0.4 s at 10^6 trials.
        .order_by()
        .distinct()
    )
    names: dict[int, set[str]] = {}
    for article_id, name in pairs:
        names.setdefault(article_id, set()).add(name)
    return {article_id: ";".join(sorted(found)) for article_id, found in names.items()}


def article_scores_frame(*, study: Study) -> pd.DataFrame:
    """Detector scores of the study's articles: one row per article x scorer
    (``ARTICLE_SCORE_COLUMNS``), ordered by scorer then article id. ``condition`` is the
    study condition the article belongs to (several joined with ";", sorted). Articles
    without any stored score are absent; an empty frame means nothing was scored."""
    conditions = _article_conditions(study=study)
    fields = ["article_id", "article__origin", "article__title", "scorer", "n_tokens"]
    frame = pd.DataFrame.from_records(
        ArticleScore.objects.filter(article_id__in=conditions)
        .order_by("scorer", "article_id")
        .values_list(*fields, *SCORE_METRICS)
        .iterator(chunk_size=CHUNK_SIZE),
        columns=["article_id", "article_origin", "title", "scorer", "n_tokens", *SCORE_METRICS],
    )
    frame["condition"] = frame["article_id"].map(conditions).astype(object)
    frame["n_tokens"] = frame["n_tokens"].astype(int)
    for column in SCORE_METRICS:
        frame[column] = frame[column].astype(float)
    return frame[ARTICLE_SCORE_COLUMNS]


DETECTOR_GAP_COLUMNS = ["scorer", "detector", "reason", "articles"]


def detector_gaps(*, study: Study) -> pd.DataFrame:
    """Why a detector has no score for some of the study's articles
    (``ArticleScore.unavailable``): one row per scorer x detector x reason with how many
    articles it concerns (``DETECTOR_GAP_COLUMNS``), ordered by scorer, detector, reason."""
    conditions = _article_conditions(study=study)
    counts: dict[tuple[str, str, str], int] = {}
    for scorer, unavailable in (
        ArticleScore.objects.filter(article_id__in=conditions)
        .exclude(unavailable={})
        .values_list("scorer", "unavailable")
        .iterator(chunk_size=CHUNK_SIZE)
    ):
        for detector, reason in (unavailable or {}).items():
            key = (str(scorer), str(detector), str(reason))
            counts[key] = counts.get(key, 0) + 1
    rows = [(*key, n) for key, n in sorted(counts.items())]
    return pd.DataFrame(rows, columns=DETECTOR_GAP_COLUMNS)
