"""Several processes: a pool of spawned workers, each with the model loaded once."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from generation.engine.device import physical_cores
from generation.engine.loading import load_model
from generation.engine.registry import ModelIdentity, ModelSpec, resolve_model
from generation.engine.sampling import (
    GenerationRequest,
    GenerationResult,
    LoadedModel,
    ProgressCallback,
    SamplingSettings,
    StepCallback,
)

_worker_model: LoadedModel | None = None
_worker_steps: Any = None  # the pool's queue of step reports, in a worker process
_worker_barrier: Any = None  # the pool's barrier for worker_pool_start, in a worker process


def _exit_with_parent(parent: int) -> None:
    """End this worker when the process that started it is gone: a ``kill -9`` of the
    parent leaves the pool's queues open, so idle workers would otherwise wait forever."""
    import time

    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker_start(
    spec: ModelSpec,
    model_dir: str | None,
    device: str,
    dtype: str,
    threads: int,
    steps: Any = None,
    parent: int = 0,
    barrier: Any = None,
) -> None:
    import torch

    global _worker_model, _worker_steps, _worker_barrier  # one model per worker process
    if parent:
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(threads)
    _worker_steps = steps
    _worker_barrier = barrier
    _worker_model = load_model(spec, model_dir=model_dir, device=device, dtype=dtype)


def _worker_rendezvous(timeout: float) -> int:
    # Holds this worker until every worker of the pool runs one: see worker_pool_start.
    if _worker_barrier is not None:
        _worker_barrier.wait(timeout)
    return os.getpid()


def _report_step(tokens: int, budget: int) -> None:
    if _worker_steps is not None:
        _worker_steps.put_nowait((tokens, budget))


def _worker_generate(
    requests: list[GenerationRequest], settings: SamplingSettings, batch_size: int
) -> tuple[ModelIdentity, list[GenerationResult]]:
    if _worker_model is None:
        raise RuntimeError("The worker process has no model loaded.")
    results = _worker_model.generate(
        requests,
        settings,
        batch_size=batch_size,
        step_progress=_report_step if _worker_steps is not None else None,
    )
    return _worker_model.identity, results


def worker_pool(
    name: str | ModelSpec,
    *,
    workers: int | None = None,
    model_dir: str | None = None,
    device: str = "cpu",
    dtype: str = "auto",
) -> Any:
    """A pool of ``workers`` spawned processes (default: one per physical core), each with
    ``cores // workers`` torch threads and the model loaded once, for ``generate_parallel``.

    Use it as a context manager; keeping one pool for a whole run pays the start-up
    (importing torch, loading the model) once. Processes are spawned, never forked:
    forking a process that has started torch's thread pools can deadlock. Workers report
    their decoding steps on a queue (for ``generate_parallel``'s ``step_progress``) and
    exit on their own when this process dies.
    """
    import concurrent.futures
    import multiprocessing

    cores = physical_cores()
    workers = workers or cores
    if workers < 1:
        raise ValueError("workers must be at least 1.")
    spec = name if isinstance(name, ModelSpec) else resolve_model(name, model_dir=model_dir)
    context = multiprocessing.get_context("spawn")
    steps = context.Queue()
    # Barriers reach spawned processes only as start-up arguments, not with a task.
    barrier = context.Barrier(workers)
    threads = max(1, cores // workers)
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_worker_start,
        initargs=(spec, model_dir, device, dtype, threads, steps, os.getpid(), barrier),
    )
    pool.credence_workers = workers  # type: ignore[attr-defined]
    pool.credence_threads = threads  # type: ignore[attr-defined]
    pool.credence_steps = steps  # type: ignore[attr-defined]
    return pool


def worker_pool_start(pool: Any, *, timeout: float = 600.0) -> list[int]:
    """Start every process of a ``worker_pool`` and wait until each has loaded its model;
    returns their process ids.

    The pool spawns a process only when a task finds none idle, so a first call with
    fewer batches than workers, or one whose first worker was quicker to load, may
    leave workers still loading while the work is handed out (a benchmark would then
    time one worker doing most of it). One task per worker that waits at a barrier
    until all of them run it spawns them all, since none can take a second one.
    """
    import concurrent.futures

    futures = [pool.submit(_worker_rendezvous, timeout) for _ in range(pool.credence_workers)]
    done, _ = concurrent.futures.wait(futures, timeout=timeout)
    if len(done) < len(futures):
        raise TimeoutError(f"The worker processes did not all start within {timeout:g} s.")
    return sorted(future.result() for future in futures)


def worker_pool_stop(pool: Any) -> None:
    """Stop a ``worker_pool`` at once, abandoning the work it is doing (after an error
    or an interrupt; ``shutdown()`` would wait for the running batches to finish)."""
    pool.shutdown(wait=False, cancel_futures=True)
    # The executor has no public way to stop a running task; its processes are the
    # only handle.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


@dataclass(frozen=True)
class ParallelGeneration:
    identity: ModelIdentity
    results: list[GenerationResult]
    workers: int
    threads_per_worker: int


def deal_chunks(order: Sequence[int], *, workers: int, batch_size: int) -> list[list[int]]:
    """Cut ``order`` (requests sorted by prompt length) into batches for ``workers``
    processes: rounds of ``workers`` equal batches of at most ``batch_size``, each
    round a stretch of the order dealt out like cards.

    Cutting the order into consecutive batches gave one worker the shortest prompts and
    the other the longest, whose prefill and attention cost more: with one batch each,
    the first worker then waited for the second (the benchmark's two workers lost about
    a tenth of their time so). Dealt batches cost alike, and a round stays within a
    stretch of similar lengths, so padding stays small.
    """
    if not order:
        return []
    rounds = -(-len(order) // (workers * batch_size))
    size = -(-len(order) // (rounds * workers))
    chunks: list[list[int]] = []
    for start in range(0, len(order), size * workers):
        stretch = order[start : start + size * workers]
        count = -(-len(stretch) // size)
        chunks.extend(list(stretch[j::count]) for j in range(count))
    return chunks


# Complexity kept: the pool's life cycle (start, deal, collect, shut down) reads in one place; see
# docs/architecture.md.
def generate_parallel(  # noqa: C901
    name: str | ModelSpec,
    requests: Sequence[GenerationRequest],
    settings: SamplingSettings,
    *,
    workers: int | None = None,
    batch_size: int = 32,
    model_dir: str | None = None,
    device: str = "cpu",
    dtype: str = "auto",
    progress: ProgressCallback | None = None,
    step_progress: StepCallback | None = None,
    pool: Any = None,
    batches: Sequence[Sequence[int]] | None = None,
) -> ParallelGeneration:
    """Sample one continuation per request in ``workers`` processes; results in request order.

    On a CPU one process cannot keep every core busy at the small matrix sizes of
    decoding, so ``workers`` processes (default: one per physical core) each get
    ``cores // workers`` threads and load the model once. Requests are sorted by prompt
    length and dealt into batches of at most ``batch_size`` that cost each worker alike
    (``deal_chunks``), so memory stays bounded however many requests there are. Each
    sample depends only on its prompt and seed, so the texts equal those of
    ``LoadedModel.generate`` up to floating-point differences between thread counts (and,
    in bfloat16, batch composition). ``pool`` is a ``worker_pool`` to reuse (its own
    model and dtype settings apply); without one, a pool is started and shut down for
    this call.
    ``step_progress`` gets the workers' decoding steps (see ``StepCallback``), relayed
    in this process while it waits. ``batches`` (lists of indices into ``requests``),
    when given, are the batches to run, each as one batch in one worker, instead of
    ``deal_chunks``'.
    """
    import concurrent.futures

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    spec = name if isinstance(name, ModelSpec) else resolve_model(name, model_dir=model_dir)
    own_pool = pool is None
    if own_pool:
        pool = worker_pool(spec, workers=workers, model_dir=model_dir, device=device, dtype=dtype)
    workers, threads = pool.credence_workers, pool.credence_threads
    # Characters stand in for tokens here: the parent never loads the tokenizer.
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt))
    if batches is None:
        chunks = deal_chunks(order, workers=workers, batch_size=batch_size)
    else:
        chunks = [list(batch) for batch in batches if batch]
        if sorted(i for chunk in chunks for i in chunk) != list(range(len(requests))):
            raise ValueError("batches must hold every request once.")
    results: list[GenerationResult | None] = [None] * len(requests)
    identity: ModelIdentity | None = None
    steps = getattr(pool, "credence_steps", None)

    def relay_steps(report: bool = True) -> None:
        while steps is not None:
            try:
                tokens, budget = steps.get_nowait()
            except queue.Empty:
                return
            if report and step_progress is not None:
                step_progress(tokens, budget)

    # Reports of an earlier call on this pool that arrived late belong to that call.
    relay_steps(report=False)
    try:
        futures = {
            pool.submit(
                _worker_generate,
                [requests[i] for i in chunk],
                settings,
                max(batch_size, len(chunk)),  # each chunk is one batch
            ): chunk
            for chunk in chunks
        }
        waiting = set(futures)
        while waiting:
            # Wake up often enough to relay step reports while batches run.
            finished, waiting = concurrent.futures.wait(
                waiting, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED
            )
            relay_steps()
            for future in finished:
                identity, chunk_results = future.result()
                for i, result in zip(futures[future], chunk_results, strict=True):
                    results[i] = result
                if progress is not None:
                    progress(chunk_results)
    except BaseException:
        if own_pool:
            worker_pool_stop(pool)
        raise
    relay_steps()
    if own_pool:
        pool.shutdown()
    if identity is None:
        identity = load_model(spec, model_dir=model_dir, device=device, dtype=dtype).identity
    return ParallelGeneration(
        identity=identity,
        results=[r for r in results if r is not None],
        workers=workers,
        threads_per_worker=threads,
    )
