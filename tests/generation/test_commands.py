"""`manage.py generate`: execute a run, or create one from the demo pool."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from generation.models import GenerationRun, Sample
from surveys.models import Article
from tests.factories import GenerationRunFactory, RealArticleFactory, SampleFactory

pytestmark = pytest.mark.django_db


def _call(*args: str) -> str:
    out = StringIO()
    call_command("generate", *args, "--no-progress", stdout=out)
    return out.getvalue()


def test_unknown_run_id_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="There is no generation run 999"):
        _call("999")


def test_neither_run_nor_model_is_an_error() -> None:
    with pytest.raises(CommandError, match="Give a run id to execute, or --model"):
        _call()


def test_unknown_model_is_a_clear_error_and_writes_nothing() -> None:
    RealArticleFactory.create()
    with pytest.raises(CommandError, match='Unknown model "gpt5-turbo"'):
        _call("--model", "gpt5-turbo", "--articles", "1")
    assert GenerationRun.objects.count() == 0


def test_an_empty_pool_is_a_clear_error(tiny_model_name: str) -> None:
    RealArticleFactory.create(in_demo_pool=False)
    with pytest.raises(CommandError, match="no real articles in the demo pool"):
        _call("--model", tiny_model_name)
    assert GenerationRun.objects.count() == 0


def test_model_option_creates_a_run_from_the_first_pool_articles(tiny_model_name: str) -> None:
    first, second = RealArticleFactory.create(), RealArticleFactory.create()
    RealArticleFactory.create(in_demo_pool=False)
    RealArticleFactory.create()
    output = _call(
        "--model", tiny_model_name, "--articles", "2", "--samples", "2",
        "--max-new-tokens", "5", "--seed", "3", "--batch-size", "3",
    )  # fmt: skip
    run = GenerationRun.objects.get()
    assert run.status == GenerationRun.Status.DONE
    assert set(run.source_articles.all()) == {first, second}
    assert (run.samples_per_prompt, run.max_new_tokens, run.seed, run.batch_size) == (2, 5, 3, 3)
    assert Sample.objects.filter(run=run).count() == 4
    assert f"Run {run.pk} done: 4/4 samples" in output


def test_run_id_executes_the_existing_run(tiny_model_name: str) -> None:
    article = RealArticleFactory.create()
    run = GenerationRunFactory.create(model_name=tiny_model_name, source_articles=[article])
    _call(str(run.pk))
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.DONE
    assert Sample.objects.filter(run=run).count() == 1


def test_approve_all_approves_usable_samples_and_lists_the_others() -> None:
    run = GenerationRunFactory.create(model_name="embedded")
    good = SampleFactory.create(run=run)
    empty = SampleFactory.create(run=run, clean_text="")
    run.source_articles.set([good.source_article, empty.source_article])
    # Every sample exists, so the run finishes without loading a model.
    output = _call(str(run.pk), "--approve-all")
    good.refresh_from_db()
    empty.refresh_from_db()
    assert good.review == Sample.Review.APPROVED
    assert good.article is not None
    assert empty.review == Sample.Review.PENDING
    assert Article.objects.generated().count() == 1
    assert "Approved 1 sample(s)" in output
    assert f"skipped sample {empty.pk}" in output


def test_a_missing_model_is_reported_with_how_to_provide_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("CREDENCE_MODEL_DIR", raising=False)
    run = GenerationRunFactory.create(
        # A hub id no cache holds.
        model_name="someone/not-cached-anywhere",
        source_articles=[RealArticleFactory.create()],
    )
    with pytest.raises(CommandError, match="is not on this machine"):
        _call(str(run.pk))
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.FAILED
