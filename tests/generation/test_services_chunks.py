"""Runs split into chunks: planning, executing (in the foreground and as queue tasks),
resuming, redelivery."""

from __future__ import annotations

from typing import Any

import pytest

from generation import engine
from generation.models import GenerationChunk, GenerationRun, Sample
from generation.services import (
    chunk_execute,
    run_create,
    run_execute,
    run_plan,
    worker_name,
)
from generation.tasks import run_chunk_execute, run_enqueue
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
def test_execute_stops_after_max_chunks_and_leaves_the_run_running(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = run_execute(run=_run(tiny_model_name, source_articles), progress=False, max_chunks=1)
    assert run.status == GenerationRun.Status.RUNNING
    assert run.samples_done == 2
    assert GenerationChunk.objects.filter(run=run, status="pending").count() == 2
    run = run_execute(run=run, progress=False)
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
def test_a_chunk_left_running_by_a_dead_process_is_made_again_with_only_its_missing_samples(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = run_execute(run=_run(tiny_model_name, source_articles), progress=False)
    chunk = GenerationChunk.objects.get(run=run, index=1)
    article_id, index = chunk.units[0]
    Sample.objects.filter(run=run, source_article_id=article_id, sample_index=index).delete()
    # As a process killed mid-chunk leaves it: running, nobody to finish it.
    GenerationChunk.objects.filter(pk=chunk.pk).update(status="running", worker="gone:1")
    texts = dict(Sample.objects.filter(run=run).values_list("seed", "raw_text"))
    run = run_execute(run=run, progress=False)
    assert run.status == GenerationRun.Status.DONE
    assert _pairs(run) == _expected(run)
    chunk.refresh_from_db()
    assert (chunk.status, chunk.worker, chunk.attempts) == ("done", worker_name(), 2)
    assert set(GenerationChunk.objects.filter(run=run).values_list("attempts", flat=True)) == {
        1,
        2,
    }
    again = dict(Sample.objects.filter(run=run).values_list("seed", "raw_text"))
    assert {seed: again[seed] for seed in texts} == texts


# ---------------------------------------------------------------------------------------
# The task queue, with Celery executing tasks in this process


@pytest.fixture
def eager_celery(settings: Any) -> Any:
    from studyplatform.celery import app

    settings.CELERY_BROKER_URL = "memory://"  # a queue is configured; eager never uses it

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

    assert run_chunk_execute.delay(987654, 0).get() == 0


@pytest.mark.django_db
def test_a_redelivered_task_of_a_done_chunk_makes_nothing(
    tiny_model_name: str, source_articles: list[Article], eager_celery: Any
) -> None:
    run = _run(tiny_model_name, source_articles)
    run_plan(run=run)
    assert run_chunk_execute.delay(run.pk, 0).get() == 2
    chunk = GenerationChunk.objects.get(run=run, index=0)
    assert (chunk.status, chunk.attempts) == ("done", 1)
    # Delivered again (the worker died before the acknowledgement reached the broker).
    assert run_chunk_execute.delay(run.pk, 0).get() == 0
    chunk.refresh_from_db()
    assert chunk.attempts == 1
    assert Sample.objects.filter(run=run).count() == 2
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.RUNNING  # chunks 1 and 2 are still to do


@pytest.mark.django_db
def test_two_deliveries_of_one_chunk_at_once_keep_one_copy_of_each_sample(
    tiny_model_name: str, source_articles: list[Article], monkeypatch: pytest.MonkeyPatch
) -> None:
    from generation.services import execution

    run = _run(tiny_model_name, source_articles)
    run_plan(run=run)
    chunk = GenerationChunk.objects.select_related("run").get(run=run, index=0)
    late = GenerationChunk.objects.select_related("run").get(pk=chunk.pk)
    # What a second delivery sees when it starts before the first saved: both missing.
    seen_early = execution._chunk_jobs(run, chunk)
    assert chunk_execute(chunk=chunk, worker="first:1") == 2
    texts = dict(Sample.objects.filter(run=run).values_list("seed", "raw_text"))
    # The second delivery started then, too: its chunk was not done yet.
    GenerationChunk.objects.filter(pk=chunk.pk).update(status="running")
    monkeypatch.setattr(execution, "_chunk_jobs", lambda run, chunk: seen_early)
    # It makes both again, from the same seeds; the unique constraint keeps the first's.
    assert chunk_execute(chunk=late, worker="second:2") == 2
    assert dict(Sample.objects.filter(run=run).values_list("seed", "raw_text")) == texts
    late.refresh_from_db()
    assert (late.status, late.attempts, late.worker) == ("done", 2, "second:2")


# ---------------------------------------------------------------------------------------
# One chunk per worker process


@pytest.fixture
def two_workers_in_process(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Runs behave as with two worker processes (one chunk per worker at a time), but
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
def test_chunks_made_together_are_saved_one_by_one_and_given_back_on_error(
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
