"""Runs: validate and create a generation run, build its prompts and seeds, plan its
chunks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum

from generation import cleanup, engine, prompts
from generation.models import GenerationChunk, GenerationRun, Sample
from surveys.models import Article

MAX_BATCH_SIZE = 256
MAX_SAMPLES_PER_PROMPT = 100
MAX_CONTEXT_ARTICLES = 10


def model_dir() -> str | None:
    return settings.CREDENCE_MODEL_DIR or None


def sample_seed(*, run_seed: int, article_id: int, sample_index: int) -> int:
    """The seed of one sample, derived from the run's seed so that it does not depend on
    which other prompts are in the run or in which order they are generated."""
    digest = hashlib.sha256(f"{run_seed}:{article_id}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:7], "big")  # < 2**56: fits BigIntegerField and torch


def _source_text(article: Article) -> prompts.SourceText:
    return prompts.SourceText(title=article.title, body=article.body, published=article.published)


def prompt_build(
    *, article: Article, kind: str, context_articles: int = 0
) -> tuple[prompts.Prompt, list[int]]:
    """The prompt of ``kind`` for ``article`` and the ids of the context articles in it
    (for ``headline_lede_context``: the ``context_articles`` real articles published
    most recently before it, oldest first; fewer when the pool has fewer)."""
    context: list[Article] = []
    if kind == GenerationRun.PromptKind.HEADLINE_LEDE_CONTEXT and context_articles > 0:
        if article.published is not None:
            context = list(
                Article.objects.real()
                .filter(published__lt=article.published)
                .exclude(pk=article.pk)
                .order_by("-published", "-id")[:context_articles]
            )
        context.reverse()
    prompt = prompts.build_prompt(kind, _source_text(article), [_source_text(a) for a in context])
    return prompt, [a.pk for a in context]


def prompt_for(*, article: Article, kind: str, context_articles: int = 0) -> str:
    """The prompt text of ``kind`` for ``article`` (see ``prompt_build``)."""
    return prompt_build(article=article, kind=kind, context_articles=context_articles)[0].text


def sample_word_budget(*, run: GenerationRun, article: Article, prefix: str) -> int | None:
    """The continuation's word budget under the run's length matching."""
    return cleanup.word_budget(
        length_match=run.length_match,
        source_words=article.word_count,
        prefix_words=cleanup.word_count(prefix),
        prepend_lede=run.prepend_lede,
        fixed=run.word_budget,
    )


# Complexity kept: one flat list of independent checks, one per setting, which a reader looks for in
# one place.
def run_validate(  # noqa: C901
    *,
    model_name: str,
    articles: Sequence[Article],
    samples_per_prompt: int,
    max_new_tokens: int,
    top_k: int,
    top_p: float,
    temperature: float,
    batch_size: int,
    prompt_kind: str,
    context_articles: int = 0,
    length_match: str = GenerationRun.LengthMatch.SOURCE,
    word_budget: int | None = None,
    repetition_penalty: float = 1.0,
    min_new_tokens: int = 0,
    dtype: str = GenerationRun.DType.AUTO,
) -> dict[str, list[str]]:
    """Everything wrong with these run settings, by field; empty when they are fine.
    Cheap: the model name is resolved without reading weights."""
    errors: dict[str, list[str]] = {}
    try:
        engine.resolve_model(model_name, model_dir=model_dir())
    except engine.UnknownModelError as error:
        errors["model_name"] = [str(error)]
    problems = engine.validate_settings(
        max_new_tokens=max_new_tokens,
        top_k=top_k,
        top_p=top_p,
        temperature=temperature,
        repetition_penalty=repetition_penalty,
        min_new_tokens=min_new_tokens,
    )
    if problems:
        errors["settings"] = problems
    if dtype not in GenerationRun.DType.values:
        errors["dtype"] = [
            f'Unknown dtype "{dtype}"; use one of {", ".join(GenerationRun.DType.values)}.'
        ]
    if not 1 <= samples_per_prompt <= MAX_SAMPLES_PER_PROMPT:
        errors["samples_per_prompt"] = [
            f"samples_per_prompt must be between 1 and {MAX_SAMPLES_PER_PROMPT}."
        ]
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        errors["batch_size"] = [f"batch_size must be between 1 and {MAX_BATCH_SIZE}."]
    if prompt_kind not in GenerationRun.PromptKind.values:
        errors["prompt_kind"] = [
            f'Unknown prompt kind "{prompt_kind}"; use one of '
            f"{', '.join(GenerationRun.PromptKind.values)}."
        ]
    if not 0 <= context_articles <= MAX_CONTEXT_ARTICLES:
        errors["context_articles"] = [
            f"context_articles must be between 0 and {MAX_CONTEXT_ARTICLES}."
        ]
    elif context_articles and prompt_kind != GenerationRun.PromptKind.HEADLINE_LEDE_CONTEXT:
        errors["context_articles"] = [
            "Context articles are only used by the headline_lede_context prompt kind."
        ]
    if length_match not in GenerationRun.LengthMatch.values:
        errors["length_match"] = [
            f'Unknown length match "{length_match}"; use one of '
            f"{', '.join(GenerationRun.LengthMatch.values)}."
        ]
    elif length_match == GenerationRun.LengthMatch.FIXED and not (word_budget or 0) >= 1:
        errors["word_budget"] = ["A fixed length match needs a word budget of at least 1."]
    if not articles:
        errors["source_articles"] = ["Choose at least one source article."]
    not_real = [a.pk for a in articles if a.origin != Article.Origin.REAL]
    if not_real:
        errors.setdefault("source_articles", []).append(
            f"Prompts come from real articles only; these are not: {not_real}."
        )
    no_lede = [a.pk for a in articles if not (a.lede or "").strip()]
    if no_lede:
        errors.setdefault("source_articles", []).append(f"These articles have no lede: {no_lede}.")
    return errors


@transaction.atomic
def run_create(
    *,
    model_name: str,
    source_articles: Iterable[Article],
    samples_per_prompt: int = 1,
    max_new_tokens: int = 200,
    top_k: int = 40,
    top_p: float = 1.0,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    prompt_kind: str = GenerationRun.PromptKind.LEDE,
    name: str = "",
    context_articles: int = 0,
    length_match: str = GenerationRun.LengthMatch.SOURCE,
    word_budget: int | None = None,
    prepend_lede: bool = True,
    repetition_penalty: float = 1.0,
    min_new_tokens: int = 0,
    dtype: str = GenerationRun.DType.AUTO,
) -> GenerationRun:
    """Create a queued generation run; nothing is loaded or generated yet.

    The model name is checked without reading weights (an unknown name fails here;
    missing weights of a known model fail when the run executes). Raises
    ValidationError, writing nothing, on bad settings or prompts.
    """
    model_name = model_name.strip()
    articles = list(source_articles)
    errors = run_validate(
        model_name=model_name,
        articles=articles,
        samples_per_prompt=samples_per_prompt,
        max_new_tokens=max_new_tokens,
        top_k=top_k,
        top_p=top_p,
        temperature=temperature,
        batch_size=batch_size,
        prompt_kind=prompt_kind,
        context_articles=context_articles,
        length_match=length_match,
        word_budget=word_budget,
        repetition_penalty=repetition_penalty,
        min_new_tokens=min_new_tokens,
        dtype=dtype,
    )
    if errors:
        raise ValidationError(errors)
    run = GenerationRun.objects.create(
        name=name,
        model_name=model_name,
        prompt_kind=prompt_kind,
        samples_per_prompt=samples_per_prompt,
        max_new_tokens=max_new_tokens,
        top_k=top_k,
        top_p=top_p,
        temperature=temperature,
        repetition_penalty=repetition_penalty,
        min_new_tokens=min_new_tokens,
        dtype=dtype,
        seed=seed,
        batch_size=batch_size,
        context_articles=context_articles,
        length_match=length_match,
        word_budget=word_budget,
        prepend_lede=prepend_lede,
        samples_total=len({a.pk for a in articles}) * samples_per_prompt,
    )
    run.source_articles.set(articles)
    return run


def run_pending(*, run: GenerationRun) -> list[tuple[Article, int]]:
    """The (source article, sample index) pairs of the run that have no sample yet."""
    done = set(Sample.objects.filter(run=run).values_list("source_article_id", "sample_index"))
    return [
        (article, index)
        for article in run.source_articles.order_by("id")
        for index in range(run.samples_per_prompt)
        if (article.pk, index) not in done
    ]


def run_plan(*, run: GenerationRun) -> int:
    """Split a run into its chunks of ``batch_size`` units (once; idempotent).

    Units are (source article, sample index) pairs, ordered by prompt length so a chunk's
    prompts need little padding. The plan is a pure function of the run, so two
    processes planning at once write the same rows; the unique (run, index) constraint
    keeps one copy. Returns the number of chunks.
    """
    existing = GenerationChunk.objects.filter(run=run).count()
    if existing:
        return existing
    units = [
        (len(prompt_for(article=article, kind=run.prompt_kind)), article.pk, index)
        for article in run.source_articles.order_by("id")
        for index in range(run.samples_per_prompt)
    ]
    units.sort()
    size = max(int(run.batch_size), 1)
    GenerationChunk.objects.bulk_create(
        [
            GenerationChunk(
                run=run,
                index=number,
                units=[[article_id, index] for _, article_id, index in units[start : start + size]],
            )
            for number, start in enumerate(range(0, len(units), size))
        ],
        ignore_conflicts=True,
    )
    return GenerationChunk.objects.filter(run=run).count()


def run_tokens(*, run: GenerationRun) -> int:
    return int(Sample.objects.filter(run=run).aggregate(n=Sum("new_tokens"))["n"] or 0)
