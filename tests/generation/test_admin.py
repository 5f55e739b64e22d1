"""Generation admin: creating runs, starting them in the background, curating samples."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from generation.models import GenerationRun, Sample
from tests.factories import (
    GeneratedArticleFactory,
    GenerationRunFactory,
    RealArticleFactory,
    SampleFactory,
)

pytestmark = pytest.mark.django_db

RUN_ADD = reverse("admin:generation_generationrun_add")
RUNS = reverse("admin:generation_generationrun_changelist")
SAMPLES = reverse("admin:generation_sample_changelist")


def _run_form(**overrides: Any) -> dict[str, Any]:
    form = {
        "name": "Pilot",
        "model_name": "embedded",
        "prompt_kind": "lede",
        "samples_per_prompt": "2",
        "max_new_tokens": "50",
        "top_k": "40",
        "top_p": "1.0",
        "temperature": "1.0",
        "seed": "7",
        "batch_size": "8",
        "context_articles": "0",
        "length_match": "source",
        "word_budget": "",
        "prepend_lede": "on",
    }
    return {**form, **overrides}


def test_admin_creates_a_run_with_its_sample_count(admin_client: Client) -> None:
    articles = [RealArticleFactory.create(), RealArticleFactory.create()]
    assert admin_client.get(RUN_ADD).status_code == 200
    response = admin_client.post(RUN_ADD, _run_form(source_articles=[a.pk for a in articles]))
    assert response.status_code == 302
    run = GenerationRun.objects.get()
    assert run.status == GenerationRun.Status.QUEUED
    assert run.samples_total == 4
    assert (run.model_name, run.seed, run.batch_size) == ("embedded", 7, 8)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model_name": "gpt5-turbo"}, "Unknown model &quot;gpt5-turbo&quot;"),
        ({"top_p": "0"}, "top_p must be greater than 0"),
    ],
)
def test_admin_refuses_a_bad_run_and_writes_nothing(
    admin_client: Client, overrides: dict[str, str], message: str
) -> None:
    article = RealArticleFactory.create()
    response = admin_client.post(RUN_ADD, _run_form(source_articles=[article.pk], **overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert GenerationRun.objects.count() == 0


def test_only_real_articles_are_offered_as_prompts(admin_client: Client) -> None:
    real = RealArticleFactory.create()
    generated = GeneratedArticleFactory.create(source_article=real)
    response = admin_client.post(RUN_ADD, _run_form(source_articles=[real.pk, generated.pk]))
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert GenerationRun.objects.count() == 0


def test_without_a_queue_running_a_run_says_how_and_starts_no_process(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.CELERY_BROKER_URL = ""  # the demo: no broker
    started: list[object] = []

    def no_process(*args: Any, **kwargs: Any) -> None:
        started.append(args)

    monkeypatch.setattr(subprocess, "Popen", no_process)
    queued = GenerationRunFactory.create(source_articles=[RealArticleFactory.create()])
    response = admin_client.post(
        RUNS, {"action": "run_on_workers", "_selected_action": [queued.pk]}, follow=True
    )
    assert response.status_code == 200
    assert started == []
    text = response.content.decode()
    assert "no task queue is configured here" in text
    assert f"manage.py generate {queued.pk}" in text
    queued.refresh_from_db()
    assert queued.status == GenerationRun.Status.QUEUED
    assert not queued.chunks.exists()


def test_run_settings_are_read_only_once_it_has_samples(admin_client: Client) -> None:
    sample = SampleFactory.create(run__max_new_tokens=20)
    url = reverse("admin:generation_generationrun_change", args=[sample.run.pk])
    response = admin_client.post(url, _run_form(max_new_tokens="999", name="Renamed"))
    assert response.status_code == 302
    sample.run.refresh_from_db()
    assert sample.run.name == "Renamed"
    assert sample.run.max_new_tokens == 20


def test_sample_list_and_detail_show_the_texts(admin_client: Client) -> None:
    sample = SampleFactory.create(raw_text=" Raw <b>text</b> here.")
    listing = admin_client.get(SAMPLES)
    assert listing.status_code == 200
    assert sample.source_article.title in listing.content.decode()
    detail = admin_client.get(reverse("admin:generation_sample_change", args=[sample.pk]))
    assert detail.status_code == 200
    page = detail.content.decode()
    assert sample.clean_text in page
    assert sample.source_article.paragraphs[1] in page
    assert "Raw &lt;b&gt;text&lt;/b&gt; here." in page  # escaped, never rendered as HTML


def test_approve_and_reject_actions_call_the_services(admin_client: Client) -> None:
    good, empty, other = (
        SampleFactory.create(),
        SampleFactory.create(clean_text=""),
        SampleFactory.create(),
    )
    response = admin_client.post(
        SAMPLES,
        {"action": "approve_selected", "_selected_action": [good.pk, empty.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Approved 1 sample(s)." in response.content.decode()
    assert "no complete sentence" in response.content.decode()
    response = admin_client.post(
        SAMPLES, {"action": "reject_selected", "_selected_action": [other.pk]}, follow=True
    )
    assert response.status_code == 200
    good.refresh_from_db()
    empty.refresh_from_db()
    other.refresh_from_db()
    assert good.review == Sample.Review.APPROVED
    assert good.article is not None
    assert good.reviewed_by == "admin"
    assert empty.review == Sample.Review.PENDING
    assert other.review == Sample.Review.REJECTED
