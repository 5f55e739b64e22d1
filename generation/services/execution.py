"""Execution: generate a run's chunks and save their samples."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from django.db.models import Q, Value
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


def default_engine_loader(model_name: str, *, dtype: str = "auto") -> Generator:
    return engine.load_model(model_name, model_dir=model_dir(), dtype=dtype)


def default_workers() -> int:
    """Worker processes for a run on the CPU: ``CREDENCE_GENERATION_WORKERS`` (setting or
    environment variable); 0 (the default) means one per physical core, 1 one process."""
    configured = getattr(settings, "CREDENCE_GENERATION_WORKERS", None)
    if configured is None:
        configured = os.environ.get("CREDENCE_GENERATION_WORKERS", "") or 0
    return max(int(configured), 0)


def chunk_size_for(units: int, *, largest: int = 32) -> int:
    """A batch size that cuts ``units`` into one chunk for each worker process a run
    gets here by default (see ``run_workers``), at most ``largest``."""
    workers = run_workers(requested=default_workers(), open_chunks=units)
    return max(1, min(largest, -(-units // workers)))


def worker_name() -> str:
    """This process as a chunk's worker: ``host:pid``, so a dead local worker is
    recognised at once instead of after its heartbeat goes stale."""
    return f"{socket.gethostname()}:{os.getpid()}"


def chunk_stale_after() -> timedelta:
    """How long a running chunk may go without a heartbeat before others reclaim it."""
    return timedelta(seconds=settings.CREDENCE_CHUNK_STALE_SECONDS)


def _concurrent_claims() -> bool:
    # SQLite has no row locks: there chunks are claimed one process at a time, and a
    # "running" chunk is taken to be a leftover of a process that died.
    return bool(connection.features.has_select_for_update_skip_locked)


def _dead_local_workers(run: GenerationRun) -> list[str]:
    """Workers holding a running chunk of the run that are processes of this machine
    which no longer exist (killed, crashed)."""
    host = socket.gethostname()
    dead = []
    running = GenerationChunk.objects.filter(run=run, status=GenerationChunk.Status.RUNNING)
    for worker in set(running.values_list("worker", flat=True)):
        name, _, pid = worker.rpartition(":")
        if name.rpartition("@")[2] != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            dead.append(worker)
        except PermissionError:
            pass  # alive, another user's
    return dead


def chunk_claim(
    *,
    run: GenerationRun,
    worker: str,
    stale_after: timedelta | None = None,
    skip: Sequence[int] = (),
) -> GenerationChunk | None:
    """Claim the next chunk of the run for ``worker``: a pending one, or a running one
    whose worker is gone (no heartbeat for ``stale_after``, or a dead local process),
    other than the chunks ``skip`` names (those the caller holds already). Returns None
    when there is nothing to claim."""
    now = timezone.now()
    stale_after = chunk_stale_after() if stale_after is None else stale_after
    with transaction.atomic():
        chunks = GenerationChunk.objects.filter(run=run).exclude(pk__in=skip)
        if _concurrent_claims():
            chunks = chunks.filter(
                Q(status=GenerationChunk.Status.PENDING)
                | Q(status=GenerationChunk.Status.RUNNING, heartbeat__lt=now - stale_after)
                | Q(status=GenerationChunk.Status.RUNNING, worker__in=_dead_local_workers(run))
            ).select_for_update(skip_locked=True)
        else:
            chunks = chunks.exclude(status=GenerationChunk.Status.DONE)
        chunk = chunks.order_by("index").first()
        if chunk is None:
            return None
        chunk.status = GenerationChunk.Status.RUNNING
        chunk.worker = worker[:200]
        chunk.claimed_at = chunk.heartbeat = now
        chunk.attempts += 1
        chunk.save(update_fields=["status", "worker", "claimed_at", "heartbeat", "attempts"])
    return chunk


class _Heartbeat:
    """Refreshes a claimed chunk's heartbeat from a thread while the model works, so a
    long chunk is not mistaken for an abandoned one."""

    def __init__(self, chunk: GenerationChunk, interval: float) -> None:
        self.chunk, self.interval = chunk, interval
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.interval > 0:
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def _beat(self) -> None:
        try:
            while not self.stop.wait(self.interval):
                try:
                    GenerationChunk.objects.filter(
                        pk=self.chunk.pk,
                        worker=self.chunk.worker,
                        status=GenerationChunk.Status.RUNNING,
                    ).update(heartbeat=timezone.now())
                except DatabaseError:
                    continue  # a missed beat is harmless; the next one may get through
        finally:
            connections.close_all()  # this thread's connections only


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
    or one pool of worker processes holding it (for the whole ``run_work`` call)."""

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
        # PostgreSQL text cannot hold NUL, which byte-level models can emit;
        # U+FFFD marks where it was.
        raw = result.raw_text.replace("\x00", "\ufffd")
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


def _chunks_execute(*, session: _Session, chunks: list[GenerationChunk]) -> tuple[int, int]:
    """Generate the missing samples of the claimed chunks in one call to the model, then
    save each chunk, and mark it done, in its own transaction. Returns (samples made,
    tokens generated).

    A chunk is one batch, in one process, however many chunks are claimed together and
    however many workers there are: in bfloat16, where rounding makes a sample depend on
    its batch, re-running the chunk remakes its texts. With several worker processes,
    this process claims a chunk per worker, so each decodes a whole chunk's
    ``run.batch_size`` rows, not a share of them.
    """
    run = session.run
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
        now = timezone.now()
        with transaction.atomic():
            # A worker that was wrongly presumed dead may have saved some of these
            # already: same seeds, same texts, and the unique constraint keeps one of each.
            Sample.objects.bulk_create(samples, ignore_conflicts=True)
            GenerationChunk.objects.filter(pk=chunk.pk).update(
                status=GenerationChunk.Status.DONE, finished_at=now, heartbeat=now
            )
            GenerationRun.objects.filter(pk=run.pk).update(
                samples_done=Sample.objects.filter(run=run).count()
            )
        samples_made += len(samples)
        tokens += sum(s.new_tokens for s in samples)
    return samples_made, tokens


def _release(chunk: GenerationChunk) -> None:
    """Give a chunk back after an error in this process, so the next worker takes it at
    once rather than after its heartbeat goes stale."""
    GenerationChunk.objects.filter(
        pk=chunk.pk, worker=chunk.worker, status=GenerationChunk.Status.RUNNING
    ).update(status=GenerationChunk.Status.PENDING, heartbeat=None)


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


def run_work(
    *,
    run: GenerationRun,
    worker: str | None = None,
    max_chunks: int | None = None,
    wait: bool = False,
    stale_after: timedelta | None = None,
    engine_loader: EngineLoader | None = None,
    progress: bool = False,
    poll_interval: float = 0.5,
    workers: int | None = None,
) -> GenerationRun:
    """Work on a run's chunks in this process until none is left to claim.

    Plans the run's chunks if needed, then claims chunks one at a time (see
    ``chunk_claim``), generates their missing samples and saves each chunk in one
    transaction. Several processes may work on one run at once on PostgreSQL. Stops
    after ``max_chunks`` chunks; with ``wait``, also waits for chunks other workers hold
    until they are done or reclaimable. The run is marked done by whoever finishes its
    last chunk. On an error the chunk is released, the run marked failed with the error
    text and the error raised again; working on the run again resumes it.

    ``workers`` (default ``default_workers()``; see ``run_workers``) generates on that
    many processes on the CPU, one pool for this whole call: this process claims a chunk
    per worker, each worker decodes one chunk as one batch, and this process saves the
    chunks one at a time. The progress bar
    counts the token budget (samples x max_new_tokens) step by step, so it moves while
    a batch runs and its ETA holds; its postfix shows tokens generated per second.
    """
    from tqdm import tqdm

    worker = worker or worker_name()
    run = GenerationRun.objects.get(pk=run.pk)
    run_plan(run=run)
    samples_total = run.source_articles.count() * run.samples_per_prompt
    GenerationRun.objects.filter(pk=run.pk).update(
        status=GenerationRun.Status.RUNNING,
        error="",
        samples_total=samples_total,
        started_at=Coalesce("started_at", Value(timezone.now())),
        finished_at=None,
    )
    run.refresh_from_db()
    stale = chunk_stale_after() if stale_after is None else stale_after
    beat = max(stale.total_seconds() / 5, 0.05) if _concurrent_claims() else 0.0
    open_chunks = (
        GenerationChunk.objects.filter(run=run).exclude(status=GenerationChunk.Status.DONE).count()
    )
    processes = run_workers(
        requested=default_workers() if workers is None else workers,
        open_chunks=open_chunks,
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
    chunks_done = tokens = 0
    try:
        while max_chunks is None or chunks_done < max_chunks:
            # One chunk per worker process (see _chunks_execute).
            wanted = session.workers
            if max_chunks is not None:
                wanted = min(wanted, max_chunks - chunks_done)
            claimed: list[GenerationChunk] = []
            while len(claimed) < wanted:
                chunk = chunk_claim(
                    run=run, worker=worker, stale_after=stale, skip=[c.pk for c in claimed]
                )
                if chunk is None:
                    break
                claimed.append(chunk)
            if not claimed:
                others = GenerationChunk.objects.filter(run=run).exclude(
                    status=GenerationChunk.Status.DONE
                )
                if not wait or not others.exists():
                    break
                time.sleep(poll_interval)  # another worker holds the rest; see who finishes
                continue
            count["moved"] = 0
            try:
                with contextlib.ExitStack() as beats:
                    for chunk in claimed:
                        beats.enter_context(_Heartbeat(chunk, beat))
                    made, chunk_tokens = _chunks_execute(session=session, chunks=claimed)
            except BaseException:
                for chunk in claimed:
                    _release(chunk)  # those saved already are done, and stay so
                raise
            chunks_done += len(claimed)
            tokens += chunk_tokens
            # The exact count replaces the step reports, some of which may still be in
            # flight from worker processes; the bar takes up what they did not report.
            count["tokens"], count["samples"] = tokens, count["samples"] + made
            show()
            bar.update(max(made * run.max_new_tokens - count["moved"], 0))
    except BaseException as error:
        session.close(failed=True)
        GenerationRun.objects.filter(pk=run.pk).update(
            status=GenerationRun.Status.FAILED,
            error=f"{type(error).__name__}: {error}" if str(error) else type(error).__name__,
            samples_done=Sample.objects.filter(run=run).count(),
            finished_at=timezone.now(),
        )
        raise
    finally:
        bar.close()
    session.close(failed=False)
    run_finish_if_complete(run=run)
    run.refresh_from_db()
    return run


def run_execute(
    *,
    run: GenerationRun,
    progress: bool = True,
    engine_loader: EngineLoader | None = None,
    stale_after: timedelta | None = None,
    workers: int | None = None,
) -> GenerationRun:
    """Generate every missing sample of a run in this process, resuming where an earlier
    attempt stopped, and return the run marked done.

    The foreground way to execute a run (``manage.py generate``): works through the
    run's chunks like a queue worker, waiting at the end for chunks that other live
    workers hold, and taking over those of workers that died. On any error (or an
    interrupt) the run is marked failed and the error raised again. ``workers``: see
    ``run_work`` (by default, on a CPU with several cores, one process per core).
    """
    return run_work(
        run=run,
        wait=True,
        stale_after=stale_after,
        engine_loader=engine_loader,
        progress=progress,
        workers=workers,
    )


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
