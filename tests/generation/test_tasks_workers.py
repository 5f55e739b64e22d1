"""Two real Celery workers on a real redis-server share one run's chunks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from generation.models import GenerationChunk, GenerationRun, Sample
from generation.services import run_create
from tests.generation.subprocesses import ROOT, child_env, free_port, stop, stories, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
CELERY = str(Path(ROOT) / ".venv" / "bin" / "celery")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway redis-server on a free port, no persistence."""
    if not Path(REDIS).exists():
        pytest.fail("redis-server is missing: apt-get install redis-server")
    import redis

    port = free_port()
    log = (tmp_path / "redis.log").open("wb")
    server = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, timeout=30, what="redis-server to answer", processes=(server,))
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        stop(server)
        log.close()


@pytest.fixture
def celery_app(redis_url: str) -> Iterator[Any]:
    """A Celery client of the test broker, to ping the workers. Separate from the
    project's app, whose broker connections outlive a test."""
    from celery import Celery

    with Celery("probe", broker=redis_url, set_as_current=False) as app:
        yield app


def queue_when_both_answer(
    *,
    run: GenerationRun,
    env: dict[str, str],
    probe: Any,
    workers: tuple[subprocess.Popen[bytes], ...],
    chunks: int,
) -> None:
    """Wait until both workers answer a ping, then queue ``run`` from another process,
    as `manage.py generate --queue` does it."""
    wait_until(
        lambda: len(probe.control.ping(timeout=0.5)) == 2,
        timeout=120,
        what="both workers to answer a ping",
        processes=workers,
        interval=0.2,
    )
    queued = subprocess.run(
        [sys.executable, "manage.py", "generate", str(run.pk), "--queue"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert queued.returncode == 0, queued.stderr
    assert f"Queued run {run.pk}: {chunks} chunk(s) for the workers." in queued.stdout


def test_two_workers_share_a_run_and_make_every_sample_once(
    tiny_model_name: str, redis_url: str, celery_app: Any, tmp_path: Path
) -> None:
    articles = stories(6)
    run = run_create(
        model_name=tiny_model_name,
        source_articles=articles,
        samples_per_prompt=2,
        max_new_tokens=24,
        batch_size=1,
        seed=3,
    )
    env = child_env(CELERY_BROKER_URL=redis_url, CREDENCE_VAR_DIR=str(tmp_path))
    workers: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for name in ("w1", "w2"):
            logs.append((tmp_path / f"{name}.log").open("wb"))
            workers.append(
                subprocess.Popen(
                    [CELERY, "-A", "studyplatform", "worker", "--pool", "solo", "-c", "1",
                     "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
                     "--loglevel", "INFO"],
                    cwd=ROOT,
                    env=env,
                    stdout=logs[-1],
                    stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        queue_when_both_answer(
            run=run, env=env, probe=celery_app, workers=tuple(workers), chunks=12
        )

        chunks = GenerationChunk.objects.filter(run=run)
        wait_until(
            lambda: not chunks.exclude(status="done").exists(),
            timeout=240,
            what="every chunk to be done",
            processes=tuple(workers),
            interval=0.2,
        )
    finally:
        for worker in workers:
            stop(worker)
        for log in logs:
            log.close()

    run.refresh_from_db()
    assert run.status == GenerationRun.Status.DONE
    pairs = sorted(Sample.objects.filter(run=run).values_list("source_article_id", "sample_index"))
    assert pairs == sorted((a.pk, i) for a in articles for i in range(2))
    assert run.samples_done == 12
    by_worker = {w.split("@")[0] for w in chunks.values_list("worker", flat=True)}
    # Each worker takes one task at a time (prefetch 1), so both get chunks.
    assert by_worker == {"w1", "w2"}, by_worker
