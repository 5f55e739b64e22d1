"""Celery tasks of the generation workers (see ``services.run_enqueue``)."""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import shared_task

from generation import services
from generation.models import GenerationRun


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_chunk_execute(self: Any, run_id: int) -> int:
    """Claim and generate the next open chunk of a run, if any; returns chunks done.

    Tasks do not name a chunk: each takes whichever is next, so a redelivered or surplus
    task finds nothing left and returns 0.
    """
    run = GenerationRun.objects.filter(pk=run_id).first()
    if run is None:
        return 0
    # "<worker name>@<host>:<pid>": which worker did a chunk, and a dead local worker
    # is recognised by its pid.
    worker = f"{self.request.hostname or socket.gethostname()}:{os.getpid()}"
    before = run.chunks.filter(status="done", worker=worker).count()
    services.run_work(run=run, worker=worker, max_chunks=1)
    return run.chunks.filter(status="done", worker=worker).count() - before
