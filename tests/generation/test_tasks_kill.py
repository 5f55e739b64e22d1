"""A Celery worker killed with SIGKILL while it holds a chunk: the run still completes,
every sample made exactly once, the dead worker's chunk taken over by the other worker.

A killed worker's task dies with it unacknowledged (``acks_late``), and Redis would
hand it back only after an hour; the surviving worker's task stays until the run is
done, so it takes the chunk over: once the chunk's heartbeat lease has run out for a
worker of another machine, at once for a dead process of this one.
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
    model_name: str, broker_url: str, tmp_path: Path, *, seed: int, lease: int
) -> tuple[GenerationRun, dict[str, str]]:
    """A run of 12 one-sample chunks, and the workers' environment with its chunk lease."""
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
        CREDENCE_CHUNK_STALE_SECONDS=str(lease),
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
        os.kill(pid, signal.SIGKILL)  # no clean-up: no release, no ack, no last beat
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


def _assert_complete_and_taken_over(run: GenerationRun, killed: Killed) -> GenerationChunk:
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.DONE
    pairs = sorted(Sample.objects.filter(run=run).values_list("source_article_id", "sample_index"))
    assert pairs == sorted((a.pk, i) for a in run.source_articles.all() for i in range(2))
    assert run.samples_done == run.samples_total == 12
    # A second attempt at the dead worker's chunk, its samples made then; the chunks
    # finished before the kill were not redone.
    chunk = GenerationChunk.objects.get(pk=killed.chunk.pk)
    assert chunk.attempts == 2
    assert chunk.worker != killed.chunk.worker
    assert chunk.claimed_at >= killed.at
    for done in GenerationChunk.objects.filter(run=run, index__in=killed.done_before):
        assert done.attempts == 1, done
    article_id, index = chunk.units[0]
    sample = Sample.objects.get(run=run, source_article_id=article_id, sample_index=index)
    assert sample.created_at >= chunk.claimed_at
    assert sample.settings["chunk"] == chunk.index
    return chunk


def test_a_killed_worker_of_another_machine_loses_its_chunk_when_the_lease_runs_out(
    tiny_model_name: str,
    redis_url: str,  # noqa: F811
    celery_app: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The node name of another host: the pid in the chunk's worker means nothing
    # here, so only the chunk's lease (shortened through the environment) frees it.
    lease = 4
    run, env = _run_and_env(tiny_model_name, redis_url, tmp_path, seed=5, lease=lease)
    killed = _kill_mid_run(
        run=run,
        env=env,
        probe=celery_app,
        tmp_path=tmp_path,
        doomed_node="doomed@elsewhere",
        pool="solo",  # the task runs in the worker process: the whole worker dies
        victim=lambda worker, chunk: worker.pid,
    )

    # Nobody took the chunk while its lease ran: the survivor did, after it ran out.
    assert killed.chunk.heartbeat is not None
    chunk = _assert_complete_and_taken_over(run, killed)
    assert chunk.worker.startswith(f"survivor@{HOST}:"), chunk.worker
    assert chunk.claimed_at >= killed.chunk.heartbeat + timedelta(seconds=lease)


def test_a_killed_pool_process_of_this_machine_loses_its_chunk_at_once(
    tiny_model_name: str,
    redis_url: str,  # noqa: F811
    celery_app: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Celery's default pool, as the compose file's workers run: the task runs in a
    # child of the worker, which survives the child's death and hands the task back
    # (reject_on_worker_lost). The lease is longer than the test may take: the chunk
    # is freed because its process is gone.
    lease = 600
    run, env = _run_and_env(tiny_model_name, redis_url, tmp_path, seed=6, lease=lease)
    killed = _kill_mid_run(
        run=run,
        env=env,
        probe=celery_app,
        tmp_path=tmp_path,
        doomed_node=f"doomed@{HOST}",
        pool="prefork",
        victim=lambda worker, chunk: int(chunk.worker.rpartition(":")[2]),
    )

    assert killed.chunk.heartbeat is not None
    chunk = _assert_complete_and_taken_over(run, killed)
    # By either worker: the doomed one lives on with a new pool process.
    assert chunk.worker.rpartition(":")[2] != str(killed.pid)
    assert chunk.claimed_at < killed.chunk.heartbeat + timedelta(seconds=lease)
