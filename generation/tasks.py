"""The task queue's side of generation: the Celery task that works on a run, and
``run_enqueue``, which hands a run to it. This module imports the services; they never
import it."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any, Protocol

from celery import shared_task
from django.db import transaction

from generation import services
from generation.models import GenerationChunk, GenerationRun


class ChunkTask(Protocol):
    """What callers use of ``run_chunk_execute``. Celery ships no type hints, so without
    this its decorator would make the task ``Any`` and hide mistakes in its callers."""

    def __call__(self, run_id: int) -> int: ...

    def delay(self, run_id: int) -> Any: ...  # a celery AsyncResult


def _task(**options: Any) -> Callable[[Callable[[Any, int], int]], ChunkTask]:
    """``shared_task(**options)`` with the type of the task it makes."""
    decorator: Callable[[Callable[[Any, int], int]], ChunkTask] = shared_task(**options)
    return decorator


@_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_chunk_execute(self: Any, run_id: int) -> int:
    """Generate a run's open chunks until none is left, as one of its workers; returns
    the chunks this task did.

    Tasks do not name a chunk: each claims whichever is next, so a redelivered or surplus
    task finds nothing left and returns 0. A task stays until the run is done, waiting
    for chunks other workers hold: a worker killed mid-chunk loses its task with it (it
    is only acknowledged at the end, and Redis hands it back after an hour), so the
    workers still running take its chunk over once the chunk's heartbeat lease runs out
    (``CREDENCE_CHUNK_STALE_SECONDS``), or at once for a dead process of this machine.
    """
    run = GenerationRun.objects.filter(pk=run_id).first()
    if run is None:
        return 0
    # "<worker name>@<host>:<pid>": which worker did a chunk, and a dead local worker
    # is recognised by its pid.
    worker = f"{self.request.hostname or socket.gethostname()}:{os.getpid()}"
    before = run.chunks.filter(status="done", worker=worker).count()
    services.run_work(run=run, worker=worker, wait=True)
    return run.chunks.filter(status="done", worker=worker).count() - before


def run_enqueue(*, run: GenerationRun) -> int:
    """Hand a run to the task queue's workers: one task per open chunk, sent when the
    surrounding transaction commits. Each task claims whichever chunks are next until the
    run is done (see ``run_chunk_execute``), so the work spreads over however many
    workers there are, up to one per chunk. Returns the number of tasks."""
    services.run_plan(run=run)
    open_chunks = (
        GenerationChunk.objects.filter(run=run).exclude(status=GenerationChunk.Status.DONE).count()
    )
    if not open_chunks:
        services.run_finish_if_complete(run=run)
        return 0
    GenerationRun.objects.filter(pk=run.pk).exclude(status=GenerationRun.Status.RUNNING).update(
        status=GenerationRun.Status.QUEUED, error=""
    )
    run_id = run.pk
    transaction.on_commit(lambda: [run_chunk_execute.delay(run_id) for _ in range(open_chunks)])
    return open_chunks
