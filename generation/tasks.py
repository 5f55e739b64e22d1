"""The task queue's side of generation: one Celery task per chunk of a run, and
``run_enqueue``, which hands a run's chunks to the queue. This module imports the
services; they never import it.

Delivery is at least once: a task is acknowledged only after it ran (``acks_late``),
handed back when its pool process dies (``reject_on_worker_lost``), and handed back by
Redis when its whole worker is lost, once it was unacknowledged for the broker's
visibility timeout (``CELERY_BROKER_TRANSPORT_OPTIONS``, longer than the longest chunk).
That is safe because a chunk is idempotent: it makes only the samples it lacks, and a
sample is unique per run x prompt x sample index (see ``services.chunks_execute``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any, Protocol

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from generation import services
from generation.models import GenerationChunk, GenerationRun


class ChunkTask(Protocol):
    """What callers use of ``run_chunk_execute``. Celery ships no type hints, so without
    this its decorator would make the task ``Any`` and hide mistakes in its callers."""

    def __call__(self, run_id: int, chunk_index: int) -> int: ...

    def delay(self, run_id: int, chunk_index: int) -> Any: ...  # a celery AsyncResult


def _task(**options: Any) -> Callable[[Callable[[Any, int, int], int]], ChunkTask]:
    """``shared_task(**options)`` with the type of the task it makes."""
    decorator: Callable[[Callable[[Any, int, int], int]], ChunkTask] = shared_task(**options)
    return decorator


@_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_chunk_execute(self: Any, run_id: int, chunk_index: int) -> int:
    """Make one chunk of a run (``services.chunk_execute``); returns the samples made,
    0 when the run is gone or the chunk done already (a redelivered task)."""
    chunk = (
        GenerationChunk.objects.select_related("run")
        .filter(run_id=run_id, index=chunk_index)
        .first()
    )
    if chunk is None:
        return 0
    # "<worker name>@<host>:<pid>": which worker made a chunk, for the admin.
    worker = f"{self.request.hostname or socket.gethostname()}:{os.getpid()}"
    return services.chunk_execute(chunk=chunk, worker=worker)


def queue_configured() -> bool:
    """Whether this installation has a task queue (``CELERY_BROKER_URL`` is set)."""
    return bool(settings.CELERY_BROKER_URL)


def run_enqueue(*, run: GenerationRun) -> int:
    """Hand a run to the task queue's workers: one task per chunk not done yet, sent
    when the surrounding transaction commits, so the work spreads over however many
    workers there are, up to one per chunk. Returns the number of tasks; raises
    ``ImproperlyConfigured`` where no queue is configured."""
    if not queue_configured():
        raise ImproperlyConfigured(
            f"No task queue is configured (CELERY_BROKER_URL). Run `manage.py generate {run.pk}`."
        )
    services.run_plan(run=run)
    indexes = list(
        GenerationChunk.objects.filter(run=run)
        .exclude(status=GenerationChunk.Status.DONE)
        .order_by("index")
        .values_list("index", flat=True)
    )
    if not indexes:
        services.run_finish_if_complete(run=run)
        return 0
    GenerationRun.objects.filter(pk=run.pk).exclude(status=GenerationRun.Status.RUNNING).update(
        status=GenerationRun.Status.QUEUED, error=""
    )
    run_id = run.pk
    transaction.on_commit(lambda: [run_chunk_execute.delay(run_id, i) for i in indexes])
    return len(indexes)
