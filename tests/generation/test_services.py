"""Generation services: creating, executing and resuming runs; approving and rejecting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from generation import cleanup, engine
from generation.models import GenerationRun, Sample
from generation.services import (
    execution,
    prompt_for,
    run_create,
    run_execute,
    sample_approve,
    sample_reject,
    sample_seed,
)
from surveys.models import Article
from tests.factories import (
    ConditionFactory,
    GeneratedArticleFactory,
    RealArticleFactory,
    SampleFactory,
)

pytestmark = pytest.mark.django_db


def _run(model: str, articles: list[Article], **kwargs: Any) -> GenerationRun:
    settings = {"samples_per_prompt": 2, "max_new_tokens": 8, "batch_size": 2, "seed": 5}
    return run_create(model_name=model, source_articles=articles, **{**settings, **kwargs})


def _texts(run: GenerationRun) -> dict[tuple[int, int], str]:
    return {
        (s.source_article_id, s.sample_index): s.raw_text for s in Sample.objects.filter(run=run)
    }


# ---------------------------------------------------------------------------------------
# run_create


def test_run_create_stores_settings_and_the_expected_sample_count(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = _run(tiny_model_name, source_articles, top_k=10, top_p=0.9, temperature=0.8)
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.QUEUED
    assert run.samples_total == 6
    assert (run.top_k, run.top_p, run.temperature, run.seed) == (10, 0.9, 0.8, 5)
    assert set(run.source_articles.all()) == set(source_articles)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"model_name": "gpt5-turbo"}, "model_name", 'Unknown model "gpt5-turbo"'),
        ({"top_p": 0.0}, "settings", "top_p must be greater than 0"),
        ({"temperature": -1.0}, "settings", "temperature must be greater than 0"),
        ({"max_new_tokens": 0}, "settings", "max_new_tokens must be between"),
        ({"samples_per_prompt": 0}, "samples_per_prompt", "between 1 and"),
        ({"batch_size": 0}, "batch_size", "between 1 and"),
        ({"prompt_kind": "tweet"}, "prompt_kind", 'Unknown prompt kind "tweet"'),
        ({"source_articles": []}, "source_articles", "at least one source article"),
    ],
)
def test_run_create_refuses_bad_input_and_writes_nothing(
    tiny_model_name: str,
    source_articles: list[Article],
    overrides: dict[str, Any],
    field: str,
    message: str,
) -> None:
    arguments: dict[str, Any] = {"model_name": tiny_model_name, "source_articles": source_articles}
    with pytest.raises(ValidationError) as caught:
        run_create(**{**arguments, **overrides})
    assert message in " ".join(caught.value.message_dict[field])
    assert GenerationRun.objects.count() == 0


def test_run_create_refuses_generated_articles_as_prompts(tiny_model_name: str) -> None:
    generated = GeneratedArticleFactory.create()
    with pytest.raises(ValidationError, match="real articles only"):
        run_create(model_name=tiny_model_name, source_articles=[generated])
    assert GenerationRun.objects.count() == 0


def test_run_create_checks_a_known_model_without_its_weights(
    source_articles: list[Article], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENCE_MODEL_DIR", raising=False)
    run = run_create(model_name="gpt2-xl", source_articles=source_articles)
    assert run.model_name == "gpt2-xl"


# ---------------------------------------------------------------------------------------
# run_execute


def test_run_execute_makes_every_sample_with_its_record(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = run_execute(run=_run(tiny_model_name, source_articles), progress=False)
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.DONE
    assert (run.samples_done, run.samples_total) == (6, 6)
    assert run.model_identity["kind"] == "local"
    assert run.started_at is not None
    assert run.finished_at is not None
    samples = list(Sample.objects.filter(run=run))
    assert sorted((s.source_article_id, s.sample_index) for s in samples) == sorted(
        (a.pk, i) for a in source_articles for i in range(2)
    )
    for sample in samples:
        assert sample.prompt == sample.source_article.lede
        assert sample.seed == sample_seed(
            run_seed=5, article_id=sample.source_article_id, sample_index=sample.sample_index
        )
        assert sample.settings["top_k"] == 40
        assert sample.settings["max_new_tokens"] == 8
        assert sample.settings["sampler"] == engine.SAMPLER_VERSION
        assert sample.settings["model"]["weights_sha256"] == run.model_identity["weights_sha256"]
        assert 1 <= sample.new_tokens <= 8
        cleaned = cleanup.clean(sample.raw_text, budget=sample.word_budget)
        assert (sample.clean_text, sample.cleanup_steps) == (cleaned.text, list(cleaned.steps))
        assert sample.cleanup_version == cleanup.CLEANUP_VERSION


def test_a_nul_character_from_the_model_is_stored_as_a_replacement_character(
    source_articles: list[Article],
) -> None:
    class NulModel:
        identity = engine.ModelIdentity("nul", "nul", "local", "", "", {}, 0, "float32", "cpu",
                                        0, "", "")  # fmt: skip

        def generate(self, requests: Any, settings: Any, *, batch_size: int = 16) -> Any:
            return [
                engine.GenerationResult(r.prompt, r.seed, " A\x00B. C", 3, 5, False, False)
                for r in requests
            ]

    run = _run("embedded", source_articles[:1], samples_per_prompt=1)
    run_execute(run=run, progress=False, engine_loader=lambda name: NulModel())
    sample = Sample.objects.get(run=run)
    assert sample.raw_text == " A\ufffdB. C"


def test_a_sample_is_reproducible_from_its_record(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = run_execute(run=_run(tiny_model_name, source_articles), progress=False)
    sample = Sample.objects.filter(run=run).order_by("id").last()
    assert sample is not None
    fields = ("max_new_tokens", "top_k", "top_p", "temperature", "repetition_penalty",
              "min_new_tokens")  # fmt: skip
    settings = engine.SamplingSettings(**{k: sample.settings[k] for k in fields})
    # The run's dtype is "auto"; the sample records what that was on this machine.
    assert sample.settings["dtype"] == sample.settings["model"]["dtype"]
    assert sample.settings["dtype"] == engine.resolve_dtype("auto", "cpu")
    model = engine.load_model(sample.settings["model"]["source"], dtype=sample.settings["dtype"])
    again = model.generate([engine.GenerationRequest(sample.prompt, sample.seed)], settings)[0]
    assert execution.storable_text(again.raw_text) == sample.raw_text  # NUL kept as U+FFFD


def test_executing_a_done_run_again_creates_nothing(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = run_execute(run=_run(tiny_model_name, source_articles), progress=False)
    before = sorted(Sample.objects.filter(run=run).values_list("id", "raw_text"))

    def must_not_load(name: str) -> Any:
        raise AssertionError("a finished run must not load the model")

    run = run_execute(run=run, progress=False, engine_loader=must_not_load)
    assert run.status == GenerationRun.Status.DONE
    assert sorted(Sample.objects.filter(run=run).values_list("id", "raw_text")) == before


class CrashAfter:
    """The real tiny model, failing on its n-th batch, as if the process died there."""

    def __init__(self, model: engine.LoadedModel, batches: int) -> None:
        self.model, self.identity, self.left = model, model.identity, batches

    def generate(
        self,
        requests: Sequence[engine.GenerationRequest],
        settings: engine.SamplingSettings,
        *,
        batch_size: int = 16,
    ) -> list[engine.GenerationResult]:
        if self.left == 0:
            raise RuntimeError("simulated crash")
        self.left -= 1
        return self.model.generate(requests, settings, batch_size=batch_size)


def test_a_crashed_run_resumes_without_duplicates_and_matches_an_uninterrupted_run(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    crashed = _run(tiny_model_name, source_articles)
    # The crashing loader must give the model in the run's dtype, as the default loader
    # does: a bf16 first chunk against a float32 rest would differ by rounding alone.
    model = engine.load_model(tiny_model_name, dtype=crashed.dtype)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_execute(run=crashed, progress=False, engine_loader=lambda name: CrashAfter(model, 1))
    crashed.refresh_from_db()
    assert crashed.status == GenerationRun.Status.FAILED
    assert crashed.error == "RuntimeError: simulated crash"
    assert crashed.samples_done == 2
    assert Sample.objects.filter(run=crashed).count() == 2

    resumed = run_execute(run=crashed, progress=False)
    assert resumed.status == GenerationRun.Status.DONE
    assert resumed.error == ""
    assert Sample.objects.filter(run=crashed).count() == 6

    # Same seed, no crash: the same texts, whatever was generated in which batch.
    reference = run_execute(run=_run(tiny_model_name, source_articles), progress=False)
    assert _texts(resumed) == _texts(reference)


def test_a_missing_model_fails_the_run_with_the_instructions(
    source_articles: list[Article], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("CREDENCE_MODEL_DIR", raising=False)
    run = run_create(model_name="gpt2-medium", source_articles=source_articles)

    def loader(name: str) -> Any:
        return engine.load_model(name, cache_dir=str(tmp_path))

    with pytest.raises(engine.ModelUnavailableError):
        run_execute(run=run, progress=False, engine_loader=loader)
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.FAILED
    assert "hf download openai-community/gpt2-medium" in run.error
    assert not Sample.objects.filter(run=run).exists()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("lede", "Mr. Smith won on Monday. He thanked voters."),
        ("first_sentence", "Mr. Smith won on Monday."),
        ("headline_lede", "Smith wins\n\nMr. Smith won on Monday. He thanked voters."),
    ],
)
def test_prompt_kinds(kind: str, expected: str) -> None:
    article = RealArticleFactory.create(
        title="Smith wins", body="Mr. Smith won on Monday. He thanked voters.\n\nMore."
    )
    assert prompt_for(article=article, kind=kind) == expected


# ---------------------------------------------------------------------------------------
# Curation


def test_approve_creates_one_generated_article_from_prompt_and_continuation() -> None:
    sample = SampleFactory.create(clean_text="The mayor said the vote was close.")
    source = sample.source_article
    article = sample_approve(sample=sample, reviewer="ana")
    article.refresh_from_db()
    sample.refresh_from_db()
    assert article.origin == Article.Origin.GENERATED
    assert article.title == source.title
    assert article.body == f"{source.lede}\n\nThe mayor said the vote was close."
    assert article.lede == source.lede
    assert article.source_article == source
    assert article.model_name == sample.run.model_name
    assert article.outlet == ""
    assert sample.article == article
    assert (sample.review, sample.reviewed_by) == (Sample.Review.APPROVED, "ana")
    assert sample.reviewed_at is not None


def test_approving_twice_returns_the_same_article() -> None:
    sample = SampleFactory.create()
    first = sample_approve(sample=sample)
    second = sample_approve(sample=sample)
    assert first.pk == second.pk
    assert Article.objects.generated().count() == 1


def test_headline_lede_samples_keep_the_headline_out_of_the_body() -> None:
    source = RealArticleFactory.create(title="Budget passes", body="The budget passed.\n\nMore.")
    sample = SampleFactory.create(
        source_article=source,
        run__prompt_kind=GenerationRun.PromptKind.HEADLINE_LEDE,
        prompt="Budget passes\n\nThe budget passed.",
        clean_text="Officials cheered.",
    )
    article = sample_approve(sample=sample)
    assert article.body == "The budget passed.\n\nOfficials cheered."


def test_a_sample_without_usable_text_cannot_be_approved() -> None:
    sample = SampleFactory.create(clean_text="", raw_text=" and then the")
    with pytest.raises(ValidationError, match="no complete sentence"):
        sample_approve(sample=sample)
    sample.refresh_from_db()
    assert sample.review == Sample.Review.PENDING
    assert Article.objects.generated().count() == 0


def test_a_sample_repeating_a_pooled_text_cannot_be_approved() -> None:
    first = SampleFactory.create(clean_text="Same words.")
    twin = SampleFactory.create(
        source_article=first.source_article, run=first.run, sample_index=1, clean_text="Same words."
    )
    sample_approve(sample=first)
    with pytest.raises(ValidationError, match="same text as article"):
        sample_approve(sample=twin)
    twin.refresh_from_db()
    assert twin.article is None


def test_reject_marks_the_sample() -> None:
    sample = SampleFactory.create()
    sample_reject(sample=sample, reviewer="ben")
    sample.refresh_from_db()
    assert (sample.review, sample.reviewed_by) == (Sample.Review.REJECTED, "ben")


def test_rejecting_an_approved_sample_removes_its_unused_article() -> None:
    sample = SampleFactory.create()
    article = sample_approve(sample=sample)
    sample_reject(sample=sample)
    sample.refresh_from_db()
    assert sample.review == Sample.Review.REJECTED
    assert sample.article is None
    assert not Article.objects.filter(pk=article.pk).exists()


def test_an_article_already_in_a_study_cannot_be_rejected_away() -> None:
    sample = SampleFactory.create()
    article = sample_approve(sample=sample)
    ConditionFactory.create().articles.add(article)
    with pytest.raises(ValidationError, match="already in a study"):
        sample_reject(sample=sample)
    sample.refresh_from_db()
    assert sample.review == Sample.Review.APPROVED
    assert sample.article == article
