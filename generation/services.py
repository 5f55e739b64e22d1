"""Writes for generation: create and execute runs, curate their samples.

This is the only place where the engine (torch, no Django) meets the database. Runs are
resumable: ``run_execute`` only generates the (article, sample index) pairs that have no
sample yet, saves each chunk in one transaction, and the unique constraint on
run x article x index is the backstop against duplicates.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from generation import engine
from generation.models import GenerationRun, Sample
from surveys.models import Article, content_hash


class Generator(Protocol):
    """What run_execute needs from a loaded model (engine.LoadedModel fits)."""

    identity: engine.ModelIdentity

    def generate(
        self,
        requests: Sequence[engine.GenerationRequest],
        settings: engine.SamplingSettings,
        *,
        batch_size: int = ...,
    ) -> list[engine.GenerationResult]: ...


EngineLoader = Callable[[str], Generator]

MAX_BATCH_SIZE = 256
MAX_SAMPLES_PER_PROMPT = 100


def model_dir() -> str | None:
    return settings.CREDENCE_MODEL_DIR or None


def default_engine_loader(model_name: str) -> Generator:
    return engine.load_model(model_name, model_dir=model_dir())


def sample_seed(*, run_seed: int, article_id: int, sample_index: int) -> int:
    """The seed of one sample, derived from the run's seed so that it does not depend on
    which other prompts are in the run or in which order they are generated."""
    digest = hashlib.sha256(f"{run_seed}:{article_id}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:7], "big")  # < 2**56: fits BigIntegerField and torch


def prompt_for(*, article: Article, kind: str) -> str:
    lede = (article.lede or "").strip()
    if kind == GenerationRun.PromptKind.FIRST_SENTENCE:
        return engine.first_sentence(lede)
    if kind == GenerationRun.PromptKind.HEADLINE_LEDE:
        return f"{article.title.strip()}\n\n{lede}"
    return lede


def run_validate(
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
) -> dict[str, list[str]]:
    """Everything wrong with these run settings, by field; empty when they are fine.
    Cheap: the model name is resolved without reading weights."""
    errors: dict[str, list[str]] = {}
    try:
        engine.resolve_model(model_name, model_dir=model_dir())
    except engine.UnknownModelError as error:
        errors["model_name"] = [str(error)]
    problems = engine.validate_settings(
        max_new_tokens=max_new_tokens, top_k=top_k, top_p=top_p, temperature=temperature
    )
    if problems:
        errors["settings"] = problems
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
        seed=seed,
        batch_size=batch_size,
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


def _mark(run: GenerationRun, **fields: Any) -> None:
    for key, value in fields.items():
        setattr(run, key, value)
    run.save(update_fields=list(fields))


def run_execute(
    *,
    run: GenerationRun,
    progress: bool = True,
    engine_loader: EngineLoader | None = None,
) -> GenerationRun:
    """Generate every missing sample of a run, resuming where an earlier attempt stopped.

    Loads the model (once per process), stores its identity on the run, then works
    through the missing (article, sample index) pairs in chunks of ``batch_size``; each
    chunk's samples are saved in one transaction. Returns the run marked done. On any
    error (or an interrupt) the run is marked failed with the error text and the error
    is raised again; executing the run again resumes it.
    """
    loader = engine_loader or default_engine_loader
    run = GenerationRun.objects.get(pk=run.pk)
    samples_total = run.source_articles.count() * run.samples_per_prompt
    _mark(
        run,
        status=GenerationRun.Status.RUNNING,
        error="",
        samples_total=samples_total,
        started_at=run.started_at or timezone.now(),
        finished_at=None,
    )
    try:
        sampling = engine.SamplingSettings(
            max_new_tokens=run.max_new_tokens,
            top_k=run.top_k,
            top_p=run.top_p,
            temperature=run.temperature,
        )
        pending = run_pending(run=run)
        if pending:
            model = loader(run.model_name)
            _mark(run, model_identity=model.identity.as_dict())
            _generate_pending(
                run=run, model=model, sampling=sampling, pending=pending, progress=progress
            )
    except BaseException as error:
        _mark(
            run,
            status=GenerationRun.Status.FAILED,
            error=f"{type(error).__name__}: {error}" if str(error) else type(error).__name__,
            finished_at=timezone.now(),
        )
        raise
    _mark(
        run,
        status=GenerationRun.Status.DONE,
        samples_done=Sample.objects.filter(run=run).count(),
        finished_at=timezone.now(),
    )
    return run


def _generate_pending(
    *,
    run: GenerationRun,
    model: Generator,
    sampling: engine.SamplingSettings,
    pending: list[tuple[Article, int]],
    progress: bool,
) -> None:
    from tqdm import tqdm

    jobs = [
        (
            article,
            index,
            prompt_for(article=article, kind=run.prompt_kind),
            sample_seed(run_seed=run.seed, article_id=article.pk, sample_index=index),
        )
        for article, index in pending
    ]
    # Similar lengths in one batch: less padding, less wasted compute.
    jobs.sort(key=lambda job: len(job[2]))
    base_settings = {
        **sampling.as_dict(),
        "run_seed": run.seed,
        "prompt_kind": run.prompt_kind,
        "batch_size": run.batch_size,
        "sampler": engine.SAMPLER_VERSION,
        "model": model.identity.as_dict(),
    }
    bar = tqdm(
        total=run.samples_total,
        initial=run.samples_total - len(jobs),
        desc=f"Run {run.pk}",
        unit="sample",
        disable=not progress,
    )
    tokens, started = 0, time.monotonic()
    try:
        for start in range(0, len(jobs), run.batch_size):
            chunk = jobs[start : start + run.batch_size]
            results = model.generate(
                [engine.GenerationRequest(prompt=job[2], seed=job[3]) for job in chunk],
                sampling,
                batch_size=run.batch_size,
            )
            with transaction.atomic():
                Sample.objects.bulk_create(
                    [
                        Sample(
                            run=run,
                            source_article=article,
                            sample_index=index,
                            prompt=prompt,
                            seed=seed,
                            settings={
                                **base_settings,
                                "prompt_tokens": result.prompt_tokens,
                                "prompt_truncated": result.prompt_truncated,
                                "stopped_at_eos": result.stopped_at_eos,
                            },
                            # PostgreSQL text cannot hold NUL, which byte-level
                            # models can emit; U+FFFD marks where it was.
                            raw_text=result.raw_text.replace("\x00", "\ufffd"),
                            clean_text=result.clean_text,
                            new_tokens=result.new_tokens,
                        )
                        for (article, index, prompt, seed), result in zip(
                            chunk, results, strict=True
                        )
                    ],
                    # Another process resuming the same run may have saved some of these.
                    ignore_conflicts=True,
                )
                _mark(run, samples_done=Sample.objects.filter(run=run).count())
            tokens += sum(r.new_tokens for r in results)
            bar.update(len(chunk))
            bar.set_postfix(tokens_per_s=f"{tokens / max(time.monotonic() - started, 1e-9):.0f}")
    finally:
        bar.close()


def run_tokens(*, run: GenerationRun) -> int:
    return int(Sample.objects.filter(run=run).aggregate(n=Sum("new_tokens"))["n"] or 0)


def run_launch(*, run: GenerationRun) -> Path:
    """Start ``manage.py generate <id>`` as a detached process; returns its log file.

    The process outlives the request that started it (its own session), so closing the
    admin page or restarting the web server does not stop it. At scale this is the job
    of the task queue's GPU workers instead.
    """
    log_dir = Path(settings.VAR_DIR) / "generation"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"run-{run.pk}.log"
    with log_path.open("ab") as log:
        subprocess.Popen(
            [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "generate", str(run.pk)],
            cwd=settings.BASE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return log_path


# ---------------------------------------------------------------------------------------
# Curation


def _prompt_in_body(sample: Sample) -> str:
    """The part of the prompt that belongs in the article's text (not the headline)."""
    if sample.run.prompt_kind == GenerationRun.PromptKind.HEADLINE_LEDE:
        return sample.prompt.split("\n\n", 1)[-1].strip()
    return sample.prompt.strip()


@transaction.atomic
def sample_approve(*, sample: Sample, reviewer: str = "") -> Article:
    """Turn a sample into a generated article of the stimulus pool; idempotent.

    The article's text is the prompt followed by the cleaned continuation, under the
    source article's headline. Approving an approved sample returns its article.
    Raises ValidationError for a sample with no usable text or whose text is already in
    the pool.
    """
    sample = (
        Sample.objects.select_for_update().select_related("run", "source_article").get(pk=sample.pk)
    )
    if sample.article_id is not None:
        article = sample.article
        assert article is not None
        if sample.review != Sample.Review.APPROVED:
            _review(sample, Sample.Review.APPROVED, reviewer)
        return article
    continuation = sample.clean_text.strip()
    if not continuation:
        raise ValidationError(
            f"Sample {sample.pk} has no complete sentence after clean-up; reject it instead."
        )
    source = sample.source_article
    body = f"{_prompt_in_body(sample)}\n\n{continuation}"
    duplicate = Article.objects.filter(content_hash=content_hash(source.title, body)).first()
    if duplicate is not None:
        raise ValidationError(
            f"Sample {sample.pk} has the same text as article {duplicate.pk} already in the pool."
        )
    article = Article.objects.create(
        origin=Article.Origin.GENERATED,
        title=source.title,
        body=body,
        source_article=source,
        model_name=sample.run.model_name[:200],
        outlet="",
    )
    sample.article = article
    _review(sample, Sample.Review.APPROVED, reviewer, extra=["article"])
    return article


@transaction.atomic
def sample_reject(*, sample: Sample, reviewer: str = "") -> Sample:
    """Mark a sample rejected. A previously approved sample loses its article, unless
    the article is already in a study, which would change data under participants."""
    sample = Sample.objects.select_for_update().get(pk=sample.pk)
    article = sample.article
    if article is not None:
        if article.conditions.exists() or article.trials.exists():
            raise ValidationError(
                f"Sample {sample.pk} is article {article.pk}, which is already in a study; "
                "remove it from the study's conditions first."
            )
        sample.article = None
        _review(sample, Sample.Review.REJECTED, reviewer, extra=["article"])
        article.delete()
        return sample
    _review(sample, Sample.Review.REJECTED, reviewer)
    return sample


def _review(sample: Sample, review: str, reviewer: str, extra: list[str] | None = None) -> None:
    sample.review = review
    sample.reviewed_by = reviewer[:150]
    sample.reviewed_at = timezone.now()
    sample.save(update_fields=["review", "reviewed_by", "reviewed_at", *(extra or [])])
