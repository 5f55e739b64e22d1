"""Execution: a chunk of a run is its unit of work.

``chunks_execute`` is the one way chunks are made, wherever they run: one chunk per
Celery task (``chunk_execute``, called by ``generation.tasks``), or ``run_execute`` in the
foreground (``manage.py generate`` and the demo), which takes the run's chunks that are
not done in order, on a CPU with several cores one chunk per engine worker process at a
time. A chunk makes only the (article, sample index) pairs that have no sample yet and is
saved, and marked done, in one transaction, so a run resumes after a crash or
``kill -9``, and a task delivered twice is harmless: the unique constraint on
run x article x index keeps one copy of each sample.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from generation import cleanup, engine, prompts, selection
from generation.models import GenerationChunk, GenerationRun, Sample
from generation.services.curation import _flag_input, run_flag
from generation.services.runs import (
    model_dir,
    prompt_build,
    run_plan,
    sample_seed,
    sample_word_budget,
)
from surveys.models import Article


class Generator(Protocol):
    """What run_execute needs from a loaded model (engine.LoadedModel fits; only a
    LoadedModel is given ``step_progress``, so simpler stand-ins need not take it)."""

    identity: engine.ModelIdentity

    def generate(
        self,
        requests: Sequence[engine.GenerationRequest],
        settings: engine.SamplingSettings,
        *,
        batch_size: int = ...,
    ) -> list[engine.GenerationResult]: ...


EngineLoader = Callable[[str], Generator]


def storable_text(text: str) -> str:
    """A model's raw text as it is stored: PostgreSQL text cannot hold NUL, which
    byte-level models can emit; U+FFFD marks where it was."""
    return text.replace("\x00", "\ufffd")


def default_engine_loader(model_name: str, *, dtype: str = "auto") -> Generator:
    return engine.load_model(model_name, model_dir=model_dir(), dtype=dtype)


def default_workers() -> int:
    """Worker processes for a run on the CPU: the ``CREDENCE_GENERATION_WORKERS`` setting;
    0 (the default) means one per physical core, 1 one process."""
    return max(int(settings.CREDENCE_GENERATION_WORKERS), 0)


def chunk_size_for(units: int, *, largest: int = 32) -> int:
    """A batch size that cuts ``units`` into one chunk for each worker process a run
    gets here by default (see ``run_workers``), at most ``largest``."""
    workers = run_workers(requested=default_workers(), open_chunks=units)
    return max(1, min(largest, -(-units // workers)))


def worker_name() -> str:
    """This process as the worker of the chunks it makes: ``host:pid`` (bookkeeping:
    which process made a chunk)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_workers(*, requested: int, open_chunks: int, custom_loader: bool = False) -> int:
    """How many processes generate a run's chunks here: 1 means this process alone.

    ``requested`` 0 is automatic: one worker per physical core, but no more than there
    are open chunks (a worker decodes whole chunks, one batch each, so a lone chunk gets
    one process); 1 forces one process; N > 1 asks for N workers. Several processes help
    only on the CPU, where one process leaves cores idle at decoding's small matrix
    sizes: a GPU, a model given by ``engine_loader`` or a daemonic process (a Celery
    prefork worker) gets this process alone.
    """
    if requested == 1 or custom_loader:
        return 1
    import multiprocessing

    if multiprocessing.current_process().daemon:
        # A daemonic process (a Celery prefork worker) may not start processes; the
        # queue spreads a run over its workers instead.
        return 1
    if requested == 0:
        requested = min(engine.physical_cores(), open_chunks)
        if requested < 2:
            return 1
    if engine.pick_device() != "cpu":
        return 1
    return requested


@dataclass(frozen=True)
class _Made:
    results: list[engine.GenerationResult]
    identity: engine.ModelIdentity
    workers: int
    threads_per_worker: int


class _Session:
    """What one process needs while it works on a run: the model, loaded on first use,
    or one pool of worker processes holding it (for the whole ``run_execute`` call)."""

    def __init__(
        self,
        run: GenerationRun,
        loader: EngineLoader | None,
        *,
        workers: int = 1,
        step_progress: engine.StepCallback | None = None,
    ) -> None:
        self.run = run
        self.loader: EngineLoader = loader or (
            lambda name: default_engine_loader(name, dtype=run.dtype)
        )
        self.workers, self.step_progress = workers, step_progress
        self.model: Generator | None = None
        self.pool: Any = None
        self.identity_saved = False
        self.sampling = engine.SamplingSettings(
            max_new_tokens=run.max_new_tokens,
            top_k=run.top_k,
            top_p=run.top_p,
            temperature=run.temperature,
            repetition_penalty=run.repetition_penalty,
            min_new_tokens=run.min_new_tokens,
        )

    def _save_identity(self, identity: engine.ModelIdentity) -> None:
        if not self.identity_saved:
            GenerationRun.objects.filter(pk=self.run.pk).update(model_identity=identity.as_dict())
            self.identity_saved = True

    def get_model(self) -> Generator:
        if self.model is None:
            self.model = self.loader(self.run.model_name)
            self._save_identity(self.model.identity)
        return self.model

    def generate(self, requests: list[engine.GenerationRequest], batches: list[list[int]]) -> _Made:
        """Generate ``requests`` in ``batches`` (lists of their indices, one per chunk)."""
        if self.workers > 1:
            return self._generate_parallel(requests, batches)
        model = self.get_model()
        extra: dict[str, Any] = {}
        if self.step_progress is not None and isinstance(model, engine.LoadedModel):
            extra["step_progress"] = self.step_progress
        results = model.generate(requests, self.sampling, batch_size=self.run.batch_size, **extra)
        import torch

        return _Made(results, model.identity, 1, torch.get_num_threads())

    def _generate_parallel(
        self, requests: list[engine.GenerationRequest], batches: list[list[int]]
    ) -> _Made:
        from concurrent.futures.process import BrokenProcessPool

        if self.pool is None:
            self.pool = engine.worker_pool(
                self.run.model_name,
                workers=self.workers,
                model_dir=model_dir(),
                device="cpu",
                dtype=self.run.dtype,
            )
        try:
            out = engine.generate_parallel(
                self.run.model_name,
                requests,
                self.sampling,
                batch_size=self.run.batch_size,
                model_dir=model_dir(),
                device="cpu",
                dtype=self.run.dtype,
                step_progress=self.step_progress,
                pool=self.pool,
                batches=batches,
            )
        except BrokenProcessPool:
            # A worker that cannot load the model dies with its error in its own
            # output; loading here raises it again, with the instructions, for the caller.
            engine.load_model(self.run.model_name, model_dir=model_dir(), dtype=self.run.dtype)
            raise
        self._save_identity(out.identity)
        return _Made(out.results, out.identity, out.workers, out.threads_per_worker)

    def close(self, *, failed: bool) -> None:
        if self.pool is not None:
            if failed:
                engine.worker_pool_stop(self.pool)
            else:
                self.pool.shutdown()
            self.pool = None


@dataclass(frozen=True)
class _Job:
    """One missing sample of a claimed chunk: what to generate and where it belongs."""

    article: Article
    index: int
    prompt: prompts.Prompt
    context_article_ids: list[int]
    seed: int


def _chunk_jobs(run: GenerationRun, chunk: GenerationChunk) -> list[_Job]:
    """The chunk's units that have no sample yet."""
    units = [(int(a), int(i)) for a, i in chunk.units]
    existing = set(
        Sample.objects.filter(run=run, source_article_id__in={a for a, _ in units}).values_list(
            "source_article_id", "sample_index"
        )
    )
    missing = [unit for unit in units if unit not in existing]
    if not missing:
        return []
    articles = Article.objects.in_bulk([a for a, _ in missing])
    built = {
        article_id: prompt_build(
            article=articles[article_id],
            kind=run.prompt_kind,
            context_articles=run.context_articles,
        )
        for article_id in {a for a, _ in missing}
    }
    return [
        _Job(
            article=articles[article_id],
            index=index,
            prompt=built[article_id][0],
            context_article_ids=built[article_id][1],
            seed=sample_seed(run_seed=run.seed, article_id=article_id, sample_index=index),
        )
        for article_id, index in missing
    ]


def _chunk_samples(
    session: _Session,
    chunk: GenerationChunk,
    made: _Made,
    jobs: list[_Job],
    results: list[engine.GenerationResult],
) -> list[Sample]:
    run = session.run
    base_settings = {
        **session.sampling.as_dict(),
        "run_seed": run.seed,
        "prompt_kind": run.prompt_kind,
        "batch_size": run.batch_size,
        "chunk": chunk.index,
        "sampler": engine.SAMPLER_VERSION,
        "model": made.identity.as_dict(),
        # The dtype actually used (the run's "auto" resolved) and the one asked for.
        "dtype": made.identity.dtype,
        "dtype_setting": run.dtype,
        "workers": made.workers,
        "threads_per_worker": made.threads_per_worker,
        "length_match": run.length_match,
        "prepend_lede": run.prepend_lede,
    }
    samples: list[Sample] = []
    for job, result in zip(jobs, results, strict=True):
        raw = storable_text(result.raw_text)
        budget = sample_word_budget(run=run, article=job.article, prefix=job.prompt.body_prefix)
        # The stored raw text, so that cleaning the record again gives this text.
        cleaned = cleanup.clean(raw, budget=budget)
        samples.append(
            Sample(
                run=run,
                source_article=job.article,
                sample_index=job.index,
                prompt=job.prompt.text,
                seed=job.seed,
                settings={
                    **base_settings,
                    "prompt_body": job.prompt.body_prefix,
                    "context_article_ids": job.context_article_ids,
                    "prompt_tokens": result.prompt_tokens,
                    "prompt_truncated": result.prompt_truncated,
                    "stopped_at_eos": result.stopped_at_eos,
                    # The padded batch it was drawn in (recorded: in bfloat16 the
                    # rounding of a sample depends on its batch).
                    "batch_rows": result.batch_rows,
                    "batch_width": result.batch_width,
                },
                raw_text=raw,
                clean_text=cleaned.text,
                cleanup_version=cleaned.version,
                cleanup_steps=list(cleaned.steps),
                word_budget=budget,
                new_tokens=result.new_tokens,
            )
        )
    # Flags that need no other sample now; near-duplicates when the run is done.
    flags = selection.quality_flags([_flag_input(s, i) for i, s in enumerate(samples)])
    for position, sample in enumerate(samples):
        sample.flags = flags[position]
    return samples


def _chunks_start(chunks: Sequence[GenerationChunk], worker: str) -> None:
    """Record who works on the chunks now, and one more attempt at each: bookkeeping for
    the admin and the tests, not a lease (nothing waits for or reclaims a chunk; the
    queue redelivers a task whose worker is lost)."""
    GenerationChunk.objects.filter(pk__in=[c.pk for c in chunks]).update(
        status=GenerationChunk.Status.RUNNING,
        worker=worker[:200],
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
    )


def chunks_execute(
    *, session: _Session, chunks: Sequence[GenerationChunk], worker: str
) -> tuple[int, int]:
    """Generate the missing samples of ``chunks`` in one call to the model, then save
    each chunk, and mark it done, in its own transaction: the one way a chunk is made,
    by a queue task (one chunk) or by ``run_execute`` (a chunk per worker process).
    Returns (samples made, tokens generated).

    Idempotent: a chunk done already is skipped, and a chunk started before (a task
    redelivered after its worker died, a run resumed after a ``kill -9``) makes only the
    samples it lacks. Two processes on one chunk at once make the same samples from the
    same seeds; the unique constraint on run x article x index keeps one of each.

    A chunk is one batch, in one process, however many chunks are done together and
    however many workers there are: in bfloat16, where rounding makes a sample depend on
    its batch, re-running the chunk remakes its texts. With several worker processes,
    each decodes a whole chunk's ``run.batch_size`` rows, not a share of them.

    On an error the chunks not saved yet go back to pending and the error is raised.
    """
    run = session.run
    done = set(
        GenerationChunk.objects.filter(
            pk__in=[c.pk for c in chunks], status=GenerationChunk.Status.DONE
        ).values_list("pk", flat=True)
    )
    chunks = [c for c in chunks if c.pk not in done]
    if not chunks:
        return 0, 0
    _chunks_start(chunks, worker)
    saved: set[int] = set()
    try:
        jobs = [_chunk_jobs(run, chunk) for chunk in chunks]
        requests = [
            engine.GenerationRequest(prompt=job.prompt.text, seed=job.seed)
            for chunk_jobs in jobs
            for job in chunk_jobs
        ]
        # Each chunk's requests, as positions in ``requests``: its batch, then its results.
        spans: list[range] = []
        for chunk_jobs in jobs:
            start = spans[-1].stop if spans else 0
            spans.append(range(start, start + len(chunk_jobs)))
        made = session.generate(requests, [list(s) for s in spans if s]) if requests else None
        samples_made = tokens = 0
        for chunk, chunk_jobs, span in zip(chunks, jobs, spans, strict=True):
            samples: list[Sample] = []
            if made is not None and chunk_jobs:
                results = made.results[span.start : span.stop]
                samples = _chunk_samples(session, chunk, made, chunk_jobs, results)
            with transaction.atomic():
                # Another delivery of this chunk may have saved some of these already:
                # same seeds, same texts, and the unique constraint keeps one of each.
                Sample.objects.bulk_create(samples, ignore_conflicts=True)
                GenerationChunk.objects.filter(pk=chunk.pk).update(
                    status=GenerationChunk.Status.DONE, finished_at=timezone.now()
                )
                GenerationRun.objects.filter(pk=run.pk).update(
                    samples_done=Sample.objects.filter(run=run).count()
                )
            saved.add(chunk.pk)
            samples_made += len(samples)
            tokens += sum(s.new_tokens for s in samples)
    except BaseException:
        # Those saved already are done, and stay so; the others are free at once for
        # the next attempt.
        GenerationChunk.objects.filter(
            pk__in=[c.pk for c in chunks if c.pk not in saved],
            worker=worker[:200],
            status=GenerationChunk.Status.RUNNING,
        ).update(status=GenerationChunk.Status.PENDING)
        raise
    return samples_made, tokens


def run_finish_if_complete(*, run: GenerationRun) -> None:
    """Mark the run done (its flags recomputed) once every chunk is done; otherwise
    only update its count of samples."""
    count = Sample.objects.filter(run=run).count()
    runs = GenerationRun.objects.filter(pk=run.pk)
    if GenerationChunk.objects.filter(run=run).exclude(status=GenerationChunk.Status.DONE).exists():
        runs.update(samples_done=count)
        return
    run_flag(run=run)
    runs.update(
        status=GenerationRun.Status.DONE, error="", samples_done=count, finished_at=timezone.now()
    )


def _run_begin(run: GenerationRun, *, keep_failed: bool = False) -> GenerationRun:
    """Plan the run (once) and mark it running; ``keep_failed`` leaves a run that a
    chunk's error marked failed as it is, for the tasks of its other chunks."""
    run_plan(run=run)
    runs = GenerationRun.objects.filter(pk=run.pk)
    if keep_failed:
        runs = runs.exclude(status=GenerationRun.Status.FAILED)
    runs.update(
        status=GenerationRun.Status.RUNNING,
        error="",
        samples_total=run.source_articles.count() * run.samples_per_prompt,
        started_at=Coalesce("started_at", Value(timezone.now())),
        finished_at=None,
    )
    return GenerationRun.objects.get(pk=run.pk)


def _run_fail(run: GenerationRun, error: BaseException) -> None:
    GenerationRun.objects.filter(pk=run.pk).update(
        status=GenerationRun.Status.FAILED,
        error=f"{type(error).__name__}: {error}" if str(error) else type(error).__name__,
        samples_done=Sample.objects.filter(run=run).count(),
        finished_at=timezone.now(),
    )


def chunk_execute(
    *, chunk: GenerationChunk, worker: str, engine_loader: EngineLoader | None = None
) -> int:
    """Make one chunk of a run in this process (a queue task's work; see
    ``generation.tasks``); returns the samples made, 0 for a chunk done already.

    On an error the chunk goes back to pending, the run is marked failed with the error
    text and the error raised again; queueing the run again resumes it. The run is
    marked done by whichever chunk finishes it.
    """
    run = chunk.run
    if GenerationChunk.objects.filter(pk=chunk.pk, status=GenerationChunk.Status.DONE).exists():
        run_finish_if_complete(run=run)
        return 0
    run = _run_begin(run, keep_failed=True)
    session = _Session(run, engine_loader)
    try:
        made, _ = chunks_execute(session=session, chunks=[chunk], worker=worker)
    except BaseException as error:
        _run_fail(run, error)
        raise
    run_finish_if_complete(run=run)
    return made


def run_execute(
    *,
    run: GenerationRun,
    progress: bool = True,
    engine_loader: EngineLoader | None = None,
    workers: int | None = None,
    max_chunks: int | None = None,
) -> GenerationRun:
    """Make every chunk of a run that is not done, in this process (the foreground
    ``manage.py generate`` and the demo), resuming where an earlier attempt stopped; returns
    the run, marked done once its last chunk is.

    Chunks go through ``chunks_execute``, as a queue task's chunk does, in index order,
    ``max_chunks`` at most. ``workers`` (default ``default_workers()``; see
    ``run_workers``) generates on that many processes on the CPU, one pool for this whole
    call: each worker decodes one chunk as one batch, and this process saves the chunks
    one at a time. A chunk another process is making at the same time is made again
    here, to the same samples (see ``chunks_execute``). On any error (or an interrupt)
    the run is marked failed and the error raised again; executing it again resumes it.

    The progress bar counts the token budget (samples x max_new_tokens) step by step, so
    it moves while a batch runs and its ETA holds; its postfix shows tokens generated
    per second.
    """
    from tqdm import tqdm

    worker = worker_name()
    run = _run_begin(run)
    samples_total = run.samples_total
    open_chunks = list(
        GenerationChunk.objects.filter(run=run)
        .exclude(status=GenerationChunk.Status.DONE)
        .order_by("index")
    )
    if max_chunks is not None:
        open_chunks = open_chunks[:max_chunks]
    processes = run_workers(
        requested=default_workers() if workers is None else workers,
        open_chunks=len(open_chunks),
        custom_loader=engine_loader is not None,
    )
    samples_before = Sample.objects.filter(run=run).count()
    bar = tqdm(
        total=samples_total * run.max_new_tokens,
        initial=samples_before * run.max_new_tokens,
        desc=f"Run {run.pk}",
        unit="tok",
        unit_scale=True,
        disable=not progress,
    )
    started = time.monotonic()
    # tokens: generated by this call; moved: budget the bar advanced in the current chunk.
    count = {"tokens": 0, "moved": 0, "samples": samples_before}

    def show() -> None:
        rate = count["tokens"] / max(time.monotonic() - started, 1e-9)
        bar.set_postfix_str(
            f"{count['samples']}/{samples_total} samples, {rate:.0f} new tok/s", refresh=False
        )

    def on_step(new_tokens: int, budget: int) -> None:
        count["tokens"] += new_tokens
        count["moved"] += budget
        show()
        bar.update(budget)

    session = _Session(
        run, engine_loader, workers=processes, step_progress=on_step if progress else None
    )
    tokens = 0
    try:
        # One chunk per worker process at a time (see chunks_execute).
        for start in range(0, len(open_chunks), session.workers):
            count["moved"] = 0
            made, chunk_tokens = chunks_execute(
                session=session, chunks=open_chunks[start : start + session.workers], worker=worker
            )
            tokens += chunk_tokens
            # The exact count replaces the step reports, some of which may still be in
            # flight from worker processes; the bar takes up what they did not report.
            count["tokens"], count["samples"] = tokens, count["samples"] + made
            show()
            bar.update(max(made * run.max_new_tokens - count["moved"], 0))
    except BaseException as error:
        session.close(failed=True)
        _run_fail(run, error)
        raise
    finally:
        bar.close()
    session.close(failed=False)
    run_finish_if_complete(run=run)
    run.refresh_from_db()
    return run
