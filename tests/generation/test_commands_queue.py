"""`manage.py generate <run> --queue`: hand a run to the Celery workers."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from generation import services, tasks
from generation.models import GenerationChunk, GenerationRun, Sample
from surveys.models import Article

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_celery(settings: Any) -> Iterator[Any]:
    from studyplatform.celery import app

    settings.CELERY_BROKER_URL = "memory://"  # a queue is configured; eager never uses it

    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


def _call(*args: str) -> str:
    out = StringIO()
    call_command("generate", *args, stdout=out)
    return out.getvalue()


def test_queue_plans_the_chunks_and_sends_their_tasks(
    tiny_model_name: str,
    source_articles: list[Article],
    eager_celery: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    run = services.run_create(
        model_name=tiny_model_name, source_articles=source_articles, max_new_tokens=5, batch_size=1
    )
    with django_capture_on_commit_callbacks(execute=True):
        output = _call(str(run.pk), "--queue")
    assert f"Queued run {run.pk}: 3 chunk(s) for the workers." in output
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.DONE
    assert Sample.objects.filter(run=run).count() == 3
    assert f"Run {run.pk} is already done." in _call(str(run.pk), "--queue")


def test_queue_without_a_broker_is_a_clear_error(
    tiny_model_name: str, source_articles: list[Article], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*, run: GenerationRun) -> int:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr(tasks, "run_enqueue", unreachable)
    run = services.run_create(model_name=tiny_model_name, source_articles=source_articles)
    with pytest.raises(CommandError, match="Is Redis running at CELERY_BROKER_URL"):
        _call(str(run.pk), "--queue")
    assert not GenerationChunk.objects.filter(run=run).exists()
    assert not Sample.objects.exists()
