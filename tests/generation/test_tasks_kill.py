"""A Celery worker killed with SIGKILL while it makes a chunk: the run still completes,
every sample made exactly once, the dead worker's chunk made again from its redelivered
task.

A chunk's task is acknowledged only after it ran (``acks_late``). When the pool process
running it dies, its worker hands the task back at once (``reject_on_worker_lost``);
when the whole worker is lost (its host gone), Redis hands the task back once it was
unacknowledged for the visibility timeout, set short here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from generation.models import GenerationChunk, GenerationRun, Sample
from generation.services import run_create
from tests.generation.subprocesses import ROOT, child_env, stop, stories, wait_until
from tests.generation.test_tasks_workers import (  # noqa: F401 (fixtures)
    CELERY,
    celery_app,
    queue_when_both_answer,
    redis_url,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

HOST = socket.gethostname()


@dataclass(frozen=True)
class Killed:
    chunk: GenerationChunk  # a chunk the killed process held when it died
    pid: int  # the killed process
    done_before: frozenset[int]  # indexes of the chunks done before the kill
    at: datetime  # just before the kill


def _run_and_env(
    model_name: str, broker_url: str, tmp_path: Path, *, seed: int, visibility: int
) -> tuple[GenerationRun, dict[str, str]]:
    """A run of 12 one-sample chunks, and the workers' environment with the broker's
    visibility timeout."""
    run = run_create(
        model_name=model_name,
        source_articles=stories(6),
        samples_per_prompt=2,
        max_new_tokens=32,
        batch_size=1,
        seed=seed,
    )
    env = child_env(
        CELERY_BROKER_URL=broker_url,
        CREDENCE_VAR_DIR=str(tmp_path),
        CELERY_VISIBILITY_TIMEOUT=str(visibility),
    )
    return run, env


def _kill_mid_run(
    *,
    run: GenerationRun,
    env: dict[str, str],
    probe: Any,
    tmp_path: Path,
    doomed_node: str,
    pool: str,
    victim: Callable[[subprocess.Popen[bytes], GenerationChunk], int],
) -> Killed:
    """Start the doomed worker and a survivor, queue the run, SIGKILL the process that
    ``victim`` names once the doomed worker holds a chunk mid-run, and wait until the
    run's chunks are all done."""
    chunks = GenerationChunk.objects.filter(run=run)
    doomed_chunks = chunks.filter(worker__startswith=f"{doomed_node}:")
    nodes = {"doomed": doomed_node, "survivor": f"survivor@{HOST}"}
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in nodes}
    workers = {name: _worker(node, pool, env, logs[name]) for name, node in nodes.items()}
    try:
        queue_when_both_answer(
            run=run, env=env, probe=probe, workers=tuple(workers.values()), chunks=12
        )

        # Mid-run: some chunk done, and the doomed worker in the middle of one. The
        # process is frozen (SIGSTOP) before what it holds is read, so that the chunk
        # followed is one it still holds when it dies: read while it runs, that chunk
        # may be saved between the read and the kill. Frozen between two chunks, it
        # holds none: thawed, it is tried again at its next chunk.
        deadline = time.monotonic() + 180
        while True:
            wait_until(
                lambda: (
                    chunks.filter(status="done").exists()
                    and doomed_chunks.filter(status="running").exists()
                ),
                timeout=max(deadline - time.monotonic(), 1),
                what="the doomed worker to hold a chunk mid-run",
                processes=tuple(workers.values()),
                interval=0.02,
            )
            running = doomed_chunks.filter(status="running").order_by("index").first()
            if running is None:  # saved since the look above
                continue
            pid = victim(workers["doomed"], running)
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.3)  # a commit sent just before the stop lands meanwhile
            held = (
                doomed_chunks.filter(status="running", worker__endswith=f":{pid}")
                .order_by("index")
                .first()
            )
            if held is not None:
                break
            os.kill(pid, signal.SIGCONT)
            assert time.monotonic() < deadline, "the doomed worker never froze mid-chunk"
        done_before = frozenset(chunks.filter(status="done").values_list("index", flat=True))
        at = datetime.now().astimezone()
        os.kill(pid, signal.SIGKILL)  # no clean-up: no release, no acknowledgement
        wait_until(
            lambda: not _alive(pid, workers["doomed"]),
            timeout=30,
            what=f"process {pid} to die",
        )
        killed = Killed(chunk=held, pid=pid, done_before=done_before, at=at)
        assert held.worker == f"{doomed_node}:{pid}"
        assert held.attempts == 1
        assert 1 <= len(done_before) < 12

        wait_until(
            lambda: not chunks.exclude(status="done").exists(),
            timeout=240,
            what="every chunk to be done",
            processes=(workers["survivor"],),
            interval=0.2,
        )
    finally:
        for worker in workers.values():
            stop(worker)
        for log in logs.values():
            log.close()
    return killed


def _worker(node: str, pool: str, env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CELERY, "-A", "studyplatform", "worker", "--pool", pool, "-c", "1", "-n", node,
         "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def _alive(pid: int, worker: subprocess.Popen[bytes]) -> bool:
    if pid == worker.pid:
        return worker.poll() is None  # also reaps it
    try:
        os.kill(pid, 0)  # a pool process is the worker's child: reaped by the worker
    except ProcessLookupError:
        return False
    return True


def _assert_complete_and_made_again(run: GenerationRun, killed: Killed) -> GenerationChunk:
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.DONE
    pairs = sorted(Sample.objects.filter(run=run).values_list("source_article_id", "sample_index"))
    assert pairs == sorted((a.pk, i) for a in run.source_articles.all() for i in range(2))
    assert run.samples_done == run.samples_total == 12
    # A second attempt at the dead worker's chunk (its task delivered again), its
    # samples made then; the chunks finished before the kill were not redone.
    chunk = GenerationChunk.objects.get(pk=killed.chunk.pk)
    assert chunk.attempts == 2
    assert chunk.worker != killed.chunk.worker
    assert chunk.started_at >= killed.at
    for done in GenerationChunk.objects.filter(run=run, index__in=killed.done_before):
        assert done.attempts == 1, done
    article_id, index = chunk.units[0]
    sample = Sample.objects.get(run=run, source_article_id=article_id, sample_index=index)
    assert sample.created_at >= chunk.started_at
    assert sample.settings["chunk"] == chunk.index
    return chunk


def test_a_lost_worker_host_s_task_is_redelivered_after_the_visibility_timeout(
    tiny_model_name: str,
    redis_url: str,  # noqa: F811
    celery_app: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The solo pool runs the task in the worker process itself: killing it is losing the
    # whole worker, as when its machine goes, and nobody is left to hand the task back.
    # Redis does, once it was unacknowledged for the visibility timeout (long enough for
    # a first chunk that loads the model, here).
    visibility = 30
    run, env = _run_and_env(tiny_model_name, redis_url, tmp_path, seed=5, visibility=visibility)
    killed = _kill_mid_run(
        run=run,
        env=env,
        probe=celery_app,
        tmp_path=tmp_path,
        doomed_node="doomed@elsewhere",
        pool="solo",
        victim=lambda worker, chunk: worker.pid,
    )

    chunk = _assert_complete_and_made_again(run, killed)
    assert chunk.worker.startswith(f"survivor@{HOST}:"), chunk.worker
    # Not before the timeout: the task was delivered just before the doomed worker
    # started the chunk (a second's slack for that).
    assert killed.chunk.started_at is not None
    assert chunk.started_at >= killed.chunk.started_at + timedelta(seconds=visibility - 1)


def test_a_killed_pool_process_s_task_is_redelivered_at_once(
    tiny_model_name: str,
    redis_url: str,  # noqa: F811
    celery_app: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Celery's default pool, as the compose file's workers run: the task runs in a
    # child of the worker, which survives the child's death and hands the task back
    # (reject_on_worker_lost). The visibility timeout is longer than the test may take:
    # the task comes back because its process is gone.
    visibility = 600
    run, env = _run_and_env(tiny_model_name, redis_url, tmp_path, seed=6, visibility=visibility)
    killed = _kill_mid_run(
        run=run,
        env=env,
        probe=celery_app,
        tmp_path=tmp_path,
        doomed_node=f"doomed@{HOST}",
        pool="prefork",
        victim=lambda worker, chunk: int(chunk.worker.rpartition(":")[2]),
    )

    chunk = _assert_complete_and_made_again(run, killed)
    # By either worker: the doomed one lives on with a new pool process.
    assert chunk.worker.rpartition(":")[2] != str(killed.pid)
    assert killed.chunk.started_at is not None
    assert chunk.started_at < killed.chunk.started_at + timedelta(seconds=visibility)
