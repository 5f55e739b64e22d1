"""Runs split into chunks: planning, claiming, reclaiming, queueing; detector scores."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone

from generation import engine
from generation.models import GenerationChunk, GenerationRun, Sample
from generation.services import (
    chunk_claim,
    run_create,
    run_execute,
    run_plan,
    run_work,
    worker_name,
)
from generation.tasks import run_enqueue
from surveys.models import Article


def _run(model: str, articles: list[Article], **kwargs: Any) -> GenerationRun:
    settings = {"samples_per_prompt": 2, "max_new_tokens": 6, "batch_size": 2, "seed": 5}
    return run_create(model_name=model, source_articles=articles, **{**settings, **kwargs})


def _units(run: GenerationRun) -> list[tuple[int, int]]:
    return [
        (int(a), int(i))
        for chunk in GenerationChunk.objects.filter(run=run)
        for a, i in chunk.units
    ]


def _pairs(run: GenerationRun) -> list[tuple[int, int]]:
    return sorted(Sample.objects.filter(run=run).values_list("source_article_id", "sample_index"))


def _expected(run: GenerationRun) -> list[tuple[int, int]]:
    ids = sorted(run.source_articles.values_list("id", flat=True))
    return [(a, i) for a in ids for i in range(run.samples_per_prompt)]


@pytest.mark.django_db
def test_plan_covers_every_unit_once_in_chunks_of_batch_size_and_is_idempotent(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = _run(tiny_model_name, source_articles, samples_per_prompt=3, batch_size=4)
    assert run_plan(run=run) == 3  # 9 units in chunks of 4, 4, 1
    assert run_plan(run=run) == 3
    sizes = [len(c.units) for c in GenerationChunk.objects.filter(run=run).order_by("index")]
    assert sizes == [4, 4, 1]
    assert sorted(_units(run)) == _expected(run)
    # Shortest prompts first: the first chunk holds the short lede's three samples.
    shortest = source_articles[0].pk
    first = GenerationChunk.objects.get(run=run, index=0)
    assert [a for a, _ in first.units[:3]] == [shortest] * 3


@pytest.mark.django_db
def test_execute_marks_every_chunk_done_by_this_process(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = run_execute(run=_run(tiny_model_name, source_articles), progress=False)
    assert run.status == GenerationRun.Status.DONE
    assert run.samples_done == 6
    chunks = GenerationChunk.objects.filter(run=run)
    assert {c.status for c in chunks} == {GenerationChunk.Status.DONE}
    assert {c.worker for c in chunks} == {worker_name()}
    assert all(c.attempts == 1 and c.finished_at for c in chunks)
    assert _pairs(run) == _expected(run)
    assert {s.settings["chunk"] for s in Sample.objects.filter(run=run)} == {0, 1, 2}


@pytest.mark.django_db
def test_work_stops_after_max_chunks_and_leaves_the_run_running(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = run_work(run=_run(tiny_model_name, source_articles), max_chunks=1)
    assert run.status == GenerationRun.Status.RUNNING
    assert run.samples_done == 2
    assert GenerationChunk.objects.filter(run=run, status="pending").count() == 2
    run = run_work(run=run)
    assert run.status == GenerationRun.Status.DONE
    assert _pairs(run) == _expected(run)


@pytest.mark.django_db
def test_a_chunk_whose_samples_exist_is_done_without_loading_the_model(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = run_execute(run=_run(tiny_model_name, source_articles), progress=False)
    GenerationChunk.objects.filter(run=run).update(status="pending", worker="")

    def must_not_load(name: str) -> Any:
        raise AssertionError("every sample exists; the model must not be loaded")

    run = run_execute(run=run, progress=False, engine_loader=must_not_load)
    assert run.status == GenerationRun.Status.DONE
    assert Sample.objects.filter(run=run).count() == 6


@pytest.mark.django_db
def test_an_error_gives_the_chunk_back_and_fails_the_run(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = _run(tiny_model_name, source_articles)

    def broken(name: str) -> Any:
        raise engine.ModelUnavailableError("no weights here")

    with pytest.raises(engine.ModelUnavailableError):
        run_execute(run=run, progress=False, engine_loader=broken)
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.FAILED
    assert run.error == "ModelUnavailableError: no weights here"
    chunk = GenerationChunk.objects.get(run=run, index=0)
    assert chunk.status == GenerationChunk.Status.PENDING
    assert chunk.attempts == 1


@pytest.mark.django_db
@pytest.mark.skipif(
    connection.vendor == "postgresql", reason="SQLite's fallback: no row locks there"
)
def test_on_sqlite_a_running_chunk_is_a_leftover_and_is_taken_over(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = _run(tiny_model_name, source_articles)
    run_plan(run=run)
    GenerationChunk.objects.filter(run=run, index=0).update(
        status="running", worker="elsewhere:1", heartbeat=timezone.now()
    )
    chunk = chunk_claim(run=run, worker="me:2")
    assert chunk is not None
    assert (chunk.index, chunk.worker, chunk.attempts) == (0, "me:2", 1)


# ---------------------------------------------------------------------------------------
# PostgreSQL: row locks, heartbeats


def _running(run: GenerationRun, index: int, worker: str, age: timedelta) -> None:
    GenerationChunk.objects.filter(run=run, index=index).update(
        status="running", worker=worker, heartbeat=timezone.now() - age
    )


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_live_workers_chunk_is_left_alone_and_a_stale_one_is_reclaimed(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = _run(tiny_model_name, source_articles)
    run_plan(run=run)
    GenerationChunk.objects.filter(run=run).update(status="done")
    _running(run, 0, "other-host:1", timedelta(seconds=10))
    assert chunk_claim(run=run, worker="me:2", stale_after=timedelta(seconds=60)) is None
    _running(run, 0, "other-host:1", timedelta(seconds=61))
    chunk = chunk_claim(run=run, worker="me:2", stale_after=timedelta(seconds=60))
    assert chunk is not None
    assert (chunk.index, chunk.worker) == (0, "me:2")


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_dead_local_process_chunk_is_reclaimed_at_once(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    import socket
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(finished.stdout)
    run = _run(tiny_model_name, source_articles)
    run_plan(run=run)
    GenerationChunk.objects.filter(run=run).update(status="done")
    _running(run, 1, f"{socket.gethostname()}:{dead_pid}", timedelta(0))
    chunk = chunk_claim(run=run, worker="me:2", stale_after=timedelta(hours=1))
    assert chunk is not None
    assert chunk.index == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_hand_out_a_chunk_twice(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = _run(tiny_model_name, source_articles, samples_per_prompt=20, batch_size=1)
    assert run_plan(run=run) == 60
    claimed: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def claim_all(slot: int) -> None:
        try:
            start.wait()
            while (chunk := chunk_claim(run=run, worker=f"thread-{slot}:0")) is not None:
                claimed[slot].append(chunk.index)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    everything = [i for slot in claimed for i in slot]
    assert sorted(everything) == list(range(60))
    for slot, indexes in enumerate(claimed):
        owners = GenerationChunk.objects.filter(run=run, index__in=indexes)
        assert set(owners.values_list("worker", flat=True)) <= {f"thread-{slot}:0"}


# ---------------------------------------------------------------------------------------
# The task queue, with Celery executing tasks in this process


@pytest.fixture
def eager_celery() -> Any:
    from studyplatform.celery import app

    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


@pytest.mark.django_db
def test_enqueue_sends_one_task_per_open_chunk_after_commit(
    tiny_model_name: str,
    source_articles: list[Article],
    eager_celery: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    run = _run(tiny_model_name, source_articles)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert run_enqueue(run=run) == 3
    assert not Sample.objects.filter(run=run).exists()  # nothing sent before the commit
    for callback in callbacks:
        callback()
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.DONE
    assert _pairs(run) == _expected(run)
    workers = set(GenerationChunk.objects.filter(run=run).values_list("worker", flat=True))
    assert len(workers) == 1
    assert workers.pop().endswith(f":{__import__('os').getpid()}")
    assert run_enqueue(run=run) == 0


@pytest.mark.django_db
def test_a_task_for_a_deleted_run_does_nothing(eager_celery: Any) -> None:
    from generation.tasks import run_chunk_execute

    assert run_chunk_execute.delay(987654).get() == 0


# ---------------------------------------------------------------------------------------
# One chunk per worker process


@pytest.fixture
def two_workers_in_process(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Runs behave as with two worker processes (one chunk claimed per worker), but
    generate in this process; returns the number of requests of each model call."""
    from generation.services import execution

    calls: list[int] = []
    in_process = execution._Session.generate

    def generate(
        session: Any, requests: list[engine.GenerationRequest], batches: list[list[int]]
    ) -> Any:
        calls.append(len(requests))
        # One batch per chunk, in the chunks' order.
        assert [i for batch in batches for i in batch] == list(range(len(requests)))
        assert all(len(batch) <= session.run.batch_size for batch in batches)
        workers, session.workers = session.workers, 1
        try:
            made = in_process(session, requests, batches)
        finally:
            session.workers = workers
        return execution._Made(made.results, made.identity, workers, 1)

    monkeypatch.setattr(
        execution, "run_workers", lambda **kwargs: 1 if kwargs["requested"] == 1 else 2
    )
    monkeypatch.setattr(execution._Session, "generate", generate)
    return calls


@pytest.mark.django_db
def test_with_two_workers_a_run_claims_two_chunks_at_a_time(
    tiny_model_name: str, source_articles: list[Article], two_workers_in_process: list[int]
) -> None:
    alone = run_execute(run=_run(tiny_model_name, source_articles, dtype="float32"), workers=1)
    assert two_workers_in_process == [2, 2, 2]
    run = run_execute(run=_run(tiny_model_name, source_articles, dtype="float32"), workers=2)
    assert run.status == GenerationRun.Status.DONE
    # 3 articles x 2 samples in chunks of 2: chunks 0 and 1 together, then chunk 2.
    assert two_workers_in_process == [2, 2, 2, 4, 2]
    assert _pairs(run) == _expected(run)
    assert {s.settings["chunk"] for s in Sample.objects.filter(run=run)} == {0, 1, 2}
    texts = dict(Sample.objects.filter(run=run).values_list("seed", "raw_text"))
    assert texts == dict(Sample.objects.filter(run=alone).values_list("seed", "raw_text"))
    assert set(GenerationChunk.objects.filter(run=run).values_list("status", flat=True)) == {"done"}


@pytest.mark.django_db
def test_chunks_claimed_together_are_saved_one_by_one_and_released_on_error(
    tiny_model_name: str,
    source_articles: list[Article],
    two_workers_in_process: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from generation.services import execution

    run = _run(tiny_model_name, source_articles, dtype="float32")
    samples = execution._chunk_samples

    def second_fails(session: Any, chunk: GenerationChunk, *args: Any) -> Any:
        if chunk.index == 1:
            raise RuntimeError("disk full")
        return samples(session, chunk, *args)

    monkeypatch.setattr(execution, "_chunk_samples", second_fails)
    with pytest.raises(RuntimeError, match="disk full"):
        run_execute(run=run, progress=False, workers=2)
    status = dict(GenerationChunk.objects.filter(run=run).values_list("index", "status"))
    # Chunk 0 was saved before chunk 1 failed; both claimed ones that were not saved are
    # given back at once, for the next worker.
    assert status == {0: "done", 1: "pending", 2: "pending"}
    assert len(_pairs(run)) == 2
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.FAILED
    monkeypatch.setattr(execution, "_chunk_samples", samples)
    run = run_execute(run=run, progress=False, workers=2)
    assert run.status == GenerationRun.Status.DONE
    assert _pairs(run) == _expected(run)
    # Chunks 0 and 1, then 1 and 2: chunk 0's samples were not made again.
    assert two_workers_in_process == [4, 4]


@pytest.mark.django_db
def test_a_claim_skips_the_chunks_the_caller_holds(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = _run(tiny_model_name, source_articles)
    run_plan(run=run)
    first = chunk_claim(run=run, worker="me:1")
    assert first is not None
    second = chunk_claim(run=run, worker="me:1", skip=[first.pk])
    assert second is not None
    third = chunk_claim(run=run, worker="me:1", skip=[first.pk, second.pk])
    assert third is not None
    assert [first.index, second.index, third.index] == [0, 1, 2]
    assert chunk_claim(run=run, worker="me:1", skip=[first.pk, second.pk, third.pk]) is None
