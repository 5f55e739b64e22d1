"""The admin's "Run on workers" action: chunks planned, one task per chunk queued."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from generation.models import GenerationChunk, GenerationRun, Sample
from generation.services import run_create
from surveys.models import Article

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:generation_generationrun_changelist")


@pytest.fixture
def eager_celery(settings: Any) -> Iterator[Any]:
    from studyplatform.celery import app

    settings.CELERY_BROKER_URL = "memory://"  # a queue is configured; eager never uses it

    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


def _post(client: Client, run: GenerationRun) -> str:
    response = client.post(
        RUNS, {"action": "run_on_workers", "_selected_action": [run.pk]}, follow=True
    )
    assert response.status_code == 200
    return response.content.decode()


def test_run_on_workers_queues_the_runs_chunks(
    admin_client: Client,
    tiny_model_name: str,
    source_articles: list[Article],
    eager_celery: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    run = run_create(
        model_name=tiny_model_name, source_articles=source_articles, max_new_tokens=5, batch_size=2
    )
    with django_capture_on_commit_callbacks(execute=True):
        text = _post(admin_client, run)
    assert "2 chunk(s) queued for the workers" in text
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.DONE
    assert Sample.objects.filter(run=run).count() == 3
    assert GenerationChunk.objects.filter(run=run, status="done").count() == 2

    assert "is already done" in _post(admin_client, run)


def test_run_on_workers_reports_a_broker_that_cannot_be_reached(
    admin_client: Client,
    tiny_model_name: str,
    source_articles: list[Article],
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    from generation import tasks

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # configured, nobody there

    def unreachable(*, run: GenerationRun) -> int:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr(tasks, "run_enqueue", unreachable)
    run = run_create(model_name=tiny_model_name, source_articles=source_articles)
    text = _post(admin_client, run)
    assert "Could not queue" in text
    assert "Is Redis running" in text
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.QUEUED


def test_settings_are_read_only_once_a_run_is_split_into_chunks(
    admin_client: Client, tiny_model_name: str, source_articles: list[Article]
) -> None:
    from generation.services import run_plan

    run = run_create(model_name=tiny_model_name, source_articles=source_articles)
    run_plan(run=run)
    url = reverse("admin:generation_generationrun_change", args=[run.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert 'name="max_new_tokens"' not in response.content.decode()
