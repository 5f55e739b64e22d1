"""`kill -9` of `manage.py generate` mid-run, then resume: no sample lost, none twice."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from generation.models import GenerationChunk, GenerationRun, Sample
from generation.services import run_create, run_execute, worker_name
from tests.generation.subprocesses import ROOT, child_env, stories, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_run_killed_mid_way_resumes_with_every_sample_exactly_once(
    tiny_model_name: str, tmp_path: Path
) -> None:
    articles = stories(6)
    run = run_create(
        model_name=tiny_model_name,
        source_articles=articles,
        samples_per_prompt=2,
        max_new_tokens=48,
        batch_size=2,
        seed=11,
    )
    chunks = GenerationChunk.objects.filter(run=run)
    log = (tmp_path / "generate.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "generate", str(run.pk), "--no-progress"],
        cwd=ROOT,
        env=child_env(CREDENCE_VAR_DIR=str(tmp_path)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: chunks.filter(status="done").exists(),
            timeout=180,
            what="the first chunk to be done",
            processes=(process,),
        )
        process.kill()  # SIGKILL: no clean-up, no except/finally runs in the child
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    killed_worker = f"{socket.gethostname()}:{process.pid}"
    at_kill = {c.index: (c.status, c.worker) for c in chunks}
    done_at_kill = [i for i, (status, _) in at_kill.items() if status == "done"]
    running_at_kill = [i for i, (status, _) in at_kill.items() if status == "running"]
    assert 1 <= len(done_at_kill) < 6, at_kill  # killed mid-way, not before or after
    assert {at_kill[i][1] for i in done_at_kill} == {killed_worker}
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.RUNNING  # nobody could mark it failed

    resumed = run_execute(run=run, progress=False)

    assert resumed.status == GenerationRun.Status.DONE
    pairs = sorted(Sample.objects.filter(run=run).values_list("source_article_id", "sample_index"))
    assert pairs == sorted((a.pk, i) for a in articles for i in range(2))
    assert resumed.samples_done == resumed.samples_total == 12
    assert set(chunks.values_list("status", flat=True)) == {"done"}
    # The chunk the dead process was making was made again by the resumed run, and the
    # chunks it had finished were not redone.
    for index in running_at_kill:
        chunk = chunks.get(index=index)
        assert (chunk.worker, chunk.attempts) == (worker_name(), 2)
    for index in done_at_kill:
        assert chunks.get(index=index).attempts == 1


def test_two_generate_processes_on_one_run_make_every_sample_once(
    tiny_model_name: str, tmp_path: Path
) -> None:
    articles = stories(6)
    run = run_create(
        model_name=tiny_model_name,
        source_articles=articles,
        samples_per_prompt=2,
        max_new_tokens=24,
        batch_size=1,
        seed=17,
    )
    env = child_env(CREDENCE_VAR_DIR=str(tmp_path))
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "generate", str(run.pk), "--no-progress"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240)[0].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.DONE
    pairs = sorted(Sample.objects.filter(run=run).values_list("source_article_id", "sample_index"))
    assert pairs == sorted((a.pk, i) for a in articles for i in range(2))
    # Sharing a run between processes is the task queue's job: two foreground
    # processes may both make a chunk, from the same seeds, and the unique constraint
    # keeps one copy of each sample.
    assert run.samples_done == 12
    chunks = GenerationChunk.objects.filter(run=run)
    workers = {f"{socket.gethostname()}:{p.pid}" for p in processes}
    assert set(chunks.values_list("worker", flat=True)) <= workers
    assert set(chunks.values_list("status", flat=True)) == {"done"}
