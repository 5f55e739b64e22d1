"""The fast paths in the services, and the decoding settings added with them: dtype,
per-step progress, worker processes, repetition penalty, minimum length."""

from __future__ import annotations

import copy
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import torch
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from generation import engine, services
from generation.engine import GenerationRequest, LoadedModel, SamplingSettings, load_model
from generation.models import GenerationChunk, GenerationRun, Sample
from generation.services import execution, run_create, run_execute, run_workers
from surveys.models import Article
from tests.factories import RealArticleFactory

pytestmark = pytest.mark.django_db


def _run(model: str, articles: list[Article], **kwargs: Any) -> GenerationRun:
    settings = {"samples_per_prompt": 2, "max_new_tokens": 8, "batch_size": 2, "seed": 5}
    return run_create(model_name=model, source_articles=articles, **{**settings, **kwargs})


def _texts(run: GenerationRun) -> dict[tuple[int, int], str]:
    return {
        (s.source_article_id, s.sample_index): s.raw_text for s in Sample.objects.filter(run=run)
    }


@pytest.fixture
def tiny(tiny_model_dir: Path) -> LoadedModel:
    return load_model(str(tiny_model_dir), device="cpu", dtype="float32")


# ---------------------------------------------------------------------------------------
# Repetition penalty and minimum length in the engine


def test_repetition_penalty_matches_transformers() -> None:
    from transformers import RepetitionPenaltyLogitsProcessor

    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 40, generator=generator) * 4
    history = torch.randint(0, 40, (3, 12), generator=generator)
    seen = torch.zeros(3, 40, dtype=torch.bool).scatter_(1, history, True)
    settings = SamplingSettings(repetition_penalty=1.7)
    ours = engine.constrain_logits(logits, settings, seen=seen, step=0, stop_ids=torch.tensor([0]))
    reference = RepetitionPenaltyLogitsProcessor(penalty=1.7)(history, logits.clone())
    assert torch.allclose(ours, reference)
    assert not torch.equal(ours, logits)  # the check would catch a penalty not applied


def test_default_constraints_leave_the_logits_alone() -> None:
    logits = torch.randn(2, 30, generator=torch.Generator().manual_seed(4))
    seen = torch.ones(2, 30, dtype=torch.bool)
    out = engine.constrain_logits(
        logits, SamplingSettings(), seen=seen, step=0, stop_ids=torch.tensor([5])
    )
    assert torch.equal(out, logits)


def test_a_penalty_of_one_gives_the_texts_of_no_penalty(
    tiny: LoadedModel, ledes: list[str]
) -> None:
    requests = [GenerationRequest(lede, seed=40 + i) for i, lede in enumerate(ledes)]
    plain = tiny.generate(requests, SamplingSettings(max_new_tokens=16), batch_size=3)
    explicit = tiny.generate(
        requests,
        SamplingSettings(max_new_tokens=16, repetition_penalty=1.0, min_new_tokens=0),
        batch_size=3,
    )
    penalised = tiny.generate(
        requests, SamplingSettings(max_new_tokens=16, repetition_penalty=1.3), batch_size=3
    )
    assert [r.raw_text for r in explicit] == [r.raw_text for r in plain]
    # The comparison can fail: a real penalty changes the texts of the same seeds.
    assert [r.raw_text for r in penalised] != [r.raw_text for r in plain]


def _greedy_tokens(
    model: LoadedModel, ledes: list[str], settings: SamplingSettings
) -> list[tuple[list[int], list[int]]]:
    prompts = [model._encode(lede, settings.max_new_tokens)[0] for lede in ledes]
    rows = model._sample_batch(prompts, list(range(len(prompts))), settings)
    return [(prompt, tokens) for prompt, (tokens, _) in zip(prompts, rows, strict=True)]


def test_a_large_penalty_never_repeats_a_prompt_or_generated_token(
    tiny: LoadedModel, ledes: list[str]
) -> None:
    greedy = SamplingSettings(max_new_tokens=40, top_k=1)
    # Without the penalty the tiny model's greedy continuations do repeat tokens...
    repeats = [
        len(set(tokens)) < len(tokens) or bool(set(tokens) & set(prompt))
        for prompt, tokens in _greedy_tokens(tiny, ledes, greedy)
    ]
    assert any(repeats)
    # ...with it, no token of the continuation was seen before, in the prompt or earlier.
    penalised = SamplingSettings(max_new_tokens=40, top_k=1, repetition_penalty=100.0)
    for prompt, tokens in _greedy_tokens(tiny, ledes, penalised):
        assert len(tokens) == 40
        assert len(set(tokens)) == len(tokens)
        assert not set(tokens) & set(prompt)


def _eos_loving(tiny: LoadedModel) -> LoadedModel:
    """A copy of the tiny model whose end-of-text logit is pushed far above the rest."""
    biased = copy.deepcopy(tiny.model)
    eos = tiny.tokenizer.eos_token_id

    def push_eos(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        output[..., eos] += 50.0
        return output

    biased.lm_head.register_forward_hook(push_eos)
    return LoadedModel(
        spec=tiny.spec, identity=tiny.identity, model=biased, tokenizer=tiny.tokenizer
    )


def test_min_new_tokens_holds_off_end_of_text(tiny: LoadedModel, ledes: list[str]) -> None:
    model = _eos_loving(tiny)
    requests = [GenerationRequest(lede, seed=i) for i, lede in enumerate(ledes[:4])]
    eager = model.generate(requests, SamplingSettings(max_new_tokens=20), batch_size=4)
    assert [(r.new_tokens, r.stopped_at_eos) for r in eager] == [(1, True)] * 4
    held = model.generate(
        requests, SamplingSettings(max_new_tokens=20, min_new_tokens=6), batch_size=4
    )
    # Six tokens that are not end-of-text, then the end-of-text the model wants.
    assert [(r.new_tokens, r.stopped_at_eos) for r in held] == [(7, True)] * 4
    assert all("<|endoftext|>" not in r.raw_text[: -len("<|endoftext|>")] for r in held)


def test_decoding_settings_are_validated() -> None:
    assert engine.validate_settings(
        max_new_tokens=10, top_k=40, top_p=1.0, temperature=1.0, repetition_penalty=1.2,
        min_new_tokens=10,
    ) == []  # fmt: skip
    problems = engine.validate_settings(
        max_new_tokens=10, top_k=40, top_p=1.0, temperature=1.0, repetition_penalty=0.0,
        min_new_tokens=11,
    )  # fmt: skip
    assert len(problems) == 2
    assert "repetition_penalty must be greater than 0" in problems[0]
    assert "min_new_tokens must be between 0 and max_new_tokens" in problems[1]
    with pytest.raises(ValueError, match="repetition_penalty"):
        SamplingSettings(repetition_penalty=101.0)


# ---------------------------------------------------------------------------------------
# Runs: new settings, what samples record, progress


def test_run_create_refuses_bad_new_settings_and_writes_nothing(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    with pytest.raises(ValidationError) as error:
        _run(
            tiny_model_name,
            source_articles,
            repetition_penalty=-1.0,
            min_new_tokens=9,
            dtype="int4",
        )
    assert set(error.value.message_dict) == {"settings", "dtype"}
    assert 'Unknown dtype "int4"' in error.value.message_dict["dtype"][0]
    assert len(error.value.message_dict["settings"]) == 2
    assert GenerationRun.objects.count() == 0


def test_samples_record_dtype_batch_and_decoding_settings(
    tiny_model_name: str, source_articles: list[Article]
) -> None:
    run = _run(
        tiny_model_name,
        source_articles,
        dtype="float32",
        repetition_penalty=1.3,
        min_new_tokens=3,
        samples_per_prompt=1,
        batch_size=2,
    )
    run = run_execute(run=run, progress=False)
    run.refresh_from_db()
    assert (run.dtype, run.repetition_penalty, run.min_new_tokens) == ("float32", 1.3, 3)
    assert run.model_identity["dtype"] == "float32"
    samples = list(Sample.objects.filter(run=run).order_by("settings__chunk", "id"))
    assert len(samples) == 3
    for sample in samples:
        s = sample.settings
        assert (s["dtype"], s["dtype_setting"], s["model"]["dtype"]) == ("float32",) * 3
        assert (s["repetition_penalty"], s["min_new_tokens"]) == (1.3, 3)
        assert (s["workers"], s["threads_per_worker"]) == (1, torch.get_num_threads())
        assert sample.new_tokens >= 4  # min_new_tokens held end-of-text off
    # Chunks of two prompts, then one: the rows and padded width each was drawn in.
    assert [s.settings["batch_rows"] for s in samples] == [2, 2, 1]
    assert [s.settings["batch_width"] for s in samples[:2]] == [
        max(s.settings["prompt_tokens"] for s in samples[:2])
    ] * 2
    assert samples[2].settings["batch_width"] == samples[2].settings["prompt_tokens"]
    # The record reproduces the sample.
    last = samples[-1]
    fields = ("max_new_tokens", "top_k", "top_p", "temperature", "repetition_penalty",
              "min_new_tokens")  # fmt: skip
    model = load_model(last.settings["model"]["source"], dtype=last.settings["dtype"])
    again = model.generate(
        [GenerationRequest(last.prompt, last.seed)],
        SamplingSettings(**{k: last.settings[k] for k in fields}),
    )[0]
    # As stored: a NUL the tiny random model may emit is kept as U+FFFD.
    assert execution.storable_text(again.raw_text) == last.raw_text


class RecordingBar:
    """Stands in for tqdm and keeps every update."""

    bars: list[RecordingBar] = []

    def __init__(self, *, total: int, initial: int, disable: bool, **kwargs: Any) -> None:
        self.total, self.n, self.disable, self.updates = total, initial, disable, []
        self.postfix = ""
        RecordingBar.bars.append(self)

    def update(self, n: int) -> None:
        self.updates.append(n)
        self.n += n

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def close(self) -> None:
        pass


@pytest.fixture
def recording_bar(monkeypatch: pytest.MonkeyPatch) -> type[RecordingBar]:
    import tqdm

    RecordingBar.bars = []
    monkeypatch.setattr(tqdm, "tqdm", RecordingBar)
    return RecordingBar


def test_the_progress_bar_moves_every_token_step(
    tiny_model_name: str, source_articles: list[Article], recording_bar: type[RecordingBar]
) -> None:
    run = _run(tiny_model_name, source_articles, max_new_tokens=8, batch_size=2)
    run_execute(run=run, progress=True)
    (bar,) = recording_bar.bars
    assert not bar.disable
    assert bar.total == 6 * 8  # samples x max_new_tokens
    assert bar.n == bar.total
    # Step by step (two rows a step), not one jump per chunk of two samples.
    assert bar.updates[0] == 2
    assert len([n for n in bar.updates if n]) > GenerationChunk.objects.filter(run=run).count()
    tokens = services.run_tokens(run=run)
    assert bar.postfix.startswith("6/6 samples, ")
    assert tokens > 0


def test_a_resumed_run_starts_its_bar_at_the_samples_made(
    tiny_model_name: str, source_articles: list[Article], recording_bar: type[RecordingBar]
) -> None:
    run = _run(tiny_model_name, source_articles, max_new_tokens=8, batch_size=2)
    run_execute(run=run, progress=False, max_chunks=1)
    run_execute(run=run, progress=True)
    bar = recording_bar.bars[-1]
    assert bar.total == 48
    assert bar.n == 48
    assert sum(bar.updates) == 48 - 2 * 8


# ---------------------------------------------------------------------------------------
# How many processes


@pytest.mark.parametrize(
    ("requested", "cores", "device", "chunks", "custom", "expected"),
    [
        (0, 2, "cpu", 2, False, 2),  # two chunks: one worker per core
        (0, 4, "cpu", 3, False, 3),  # no more workers than chunks
        (0, 4, "cpu", 1, False, 1),  # a lone chunk is one batch in one process
        (0, 1, "cpu", 5, False, 1),  # one core
        (0, 2, "cpu", 6, False, 2),  # more chunks than cores: one worker per core
        (0, 2, "cuda", 5, False, 1),  # a GPU stays in this process
        (1, 8, "cpu", 5, False, 1),  # asked for one process
        (3, 2, "cpu", 1, False, 3),  # asked for three
        (3, 2, "cuda", 1, False, 1),
        (0, 2, "cpu", 5, True, 1),  # a loader given by the caller
    ],
)
def test_how_many_processes(
    monkeypatch: pytest.MonkeyPatch,
    requested: int,
    cores: int,
    device: str,
    chunks: int,
    custom: bool,
    expected: int,
) -> None:
    monkeypatch.setattr(engine, "physical_cores", lambda: cores)
    monkeypatch.setattr(engine, "pick_device", lambda: device)
    got = run_workers(requested=requested, open_chunks=chunks, custom_loader=custom)
    assert got == expected


def test_the_default_process_count_reads_the_setting(settings: Any) -> None:
    # The environment variable is read by the settings (tests/test_settings.py).
    assert services.default_workers() == 1  # tests/generation/conftest.py
    settings.CREDENCE_GENERATION_WORKERS = 3
    assert services.default_workers() == 3
    settings.CREDENCE_GENERATION_WORKERS = 0
    assert services.default_workers() == 0
    settings.CREDENCE_GENERATION_WORKERS = -2
    assert services.default_workers() == 0


def test_generate_refuses_a_negative_process_count_and_bad_lengths() -> None:
    RealArticleFactory.create()
    with pytest.raises(CommandError, match="--workers must be 0"):
        call_command("generate", "--model", "gpt2", "--workers", "-1", stdout=StringIO())
    with pytest.raises(CommandError, match="min_new_tokens must be between"):
        call_command(
            "generate", "--model", "gpt2", "--max-new-tokens", "5", "--min-new-tokens", "6",
            stdout=StringIO(),
        )  # fmt: skip
    assert GenerationRun.objects.count() == 0


def test_generate_creates_a_run_with_the_new_settings(tiny_model_name: str) -> None:
    RealArticleFactory.create()
    out = StringIO()
    call_command(
        "generate", "--model", tiny_model_name, "--articles", "1", "--max-new-tokens", "6",
        "--repetition-penalty", "1.2", "--min-new-tokens", "2", "--dtype", "float32",
        "--workers", "1", "--no-progress", stdout=out,
    )  # fmt: skip
    run = GenerationRun.objects.get()
    assert (run.repetition_penalty, run.min_new_tokens, run.dtype) == (1.2, 2, "float32")
    assert run.status == GenerationRun.Status.DONE
    assert "dtype float32, 1 process(es)" in out.getvalue()


# ---------------------------------------------------------------------------------------
# Several processes (spawning them takes seconds: deselect with -k "not workers")


@pytest.mark.django_db(transaction=True)
def test_workers_give_the_texts_of_one_process_with_one_pool_per_call(
    tiny_model_name: str,
    source_articles: list[Article],
    recording_bar: type[RecordingBar],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pools: list[Any] = []
    real_pool = engine.worker_pool

    def counting_pool(*args: Any, **kwargs: Any) -> Any:
        pools.append(real_pool(*args, **kwargs))
        return pools[-1]

    monkeypatch.setattr(engine, "worker_pool", counting_pool)
    single = run_execute(
        run=_run(tiny_model_name, source_articles, dtype="float32"), workers=1, progress=False
    )
    parallel = run_execute(
        run=_run(tiny_model_name, source_articles, dtype="float32"), workers=2, progress=True
    )
    assert parallel.status == GenerationRun.Status.DONE
    assert len(pools) == 1  # one pool for three chunks
    assert _texts(parallel) == _texts(single)
    rows: dict[int, set[int]] = {}
    for sample in Sample.objects.filter(run=parallel):
        assert sample.settings["workers"] == 2
        assert sample.settings["threads_per_worker"] == max(1, engine.physical_cores() // 2)
        rows.setdefault(sample.settings["chunk"], set()).add(sample.settings["batch_rows"])
    # Chunks 0 and 1 were claimed together, one for each worker, and chunk 2 alone:
    # every chunk is one batch.
    assert rows == {0: {2}, 1: {2}, 2: {2}}
    assert parallel.model_identity["dtype"] == "float32"
    bar = recording_bar.bars[-1]
    assert bar.n == bar.total == 48
    assert json.loads(json.dumps(parallel.model_identity))["name"] == tiny_model_name


@pytest.mark.django_db(transaction=True)
def test_workers_that_cannot_load_the_model_fail_the_run_with_the_reason(
    tmp_path: Path, tiny_model_dir: Path, source_articles: list[Article]
) -> None:
    broken = tmp_path / "no-weights"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    run = _run(str(broken), source_articles)
    with pytest.raises(engine.ModelUnavailableError, match="Could not load the model"):
        run_execute(run=run, workers=2, progress=False)
    run.refresh_from_db()
    assert run.status == GenerationRun.Status.FAILED
    assert "ModelUnavailableError" in run.error
    assert Sample.objects.filter(run=run).count() == 0


def test_a_daemonic_process_such_as_a_celery_worker_stays_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import multiprocessing

    monkeypatch.setattr(engine, "physical_cores", lambda: 4)
    monkeypatch.setattr(engine, "pick_device", lambda: "cpu")
    assert run_workers(requested=0, open_chunks=4) == 4
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True)
    assert run_workers(requested=0, open_chunks=4) == 1


def test_chunk_size_for_gives_each_default_worker_one_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(execution, "default_workers", lambda: 0)
    monkeypatch.setattr(engine, "physical_cores", lambda: 2)
    monkeypatch.setattr(engine, "pick_device", lambda: "cpu")
    assert services.chunk_size_for(24) == 12
    assert services.chunk_size_for(25) == 13
    assert services.chunk_size_for(200) == 32  # at most the largest batch
    assert services.chunk_size_for(1) == 1
    monkeypatch.setattr(execution, "default_workers", lambda: 1)
    assert services.chunk_size_for(24) == 24
    monkeypatch.setattr(execution, "default_workers", lambda: 0)
    monkeypatch.setattr(engine, "pick_device", lambda: "cuda")
    assert services.chunk_size_for(24) == 24  # a GPU runs one process
