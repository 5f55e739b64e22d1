"""The fast paths: dtype choice, the vectorised inverse-CDF sampler, several processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from generation import engine
from generation.engine import (
    GenerationRequest,
    LoadedModel,
    SamplingSettings,
    device,
    generate_parallel,
    kernels,
    load_model,
    next_token_probs,
    resolve_dtype,
    sample_next_tokens,
    sampling,
)
from generation.prompts import first_sentence


@pytest.fixture
def tiny(tiny_model_dir: Path) -> LoadedModel:
    return load_model(str(tiny_model_dir), device="cpu")


def test_explicit_dtypes_are_kept_and_unknown_ones_refused() -> None:
    assert resolve_dtype("float32", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("int8", "cpu")


def test_auto_dtype_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("auto", "mps") == "float32"


def test_bfloat16_model_records_its_dtype_and_generates(
    tiny_model_dir: Path, ledes: list[str]
) -> None:
    model = load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert model.identity.dtype == "bfloat16"
    assert next(model.model.parameters()).dtype == torch.bfloat16
    assert model.identity.attn_implementation == engine.DECODE_ATTENTION
    settings = SamplingSettings(max_new_tokens=8)
    requests = [GenerationRequest(lede, seed=i) for i, lede in enumerate(ledes[:3])]
    results = model.generate(requests, settings, batch_size=3)
    assert [r.prompt for r in results] == ledes[:3]
    assert all(1 <= r.new_tokens <= 8 for r in results)
    assert [r.batch_rows for r in results] == [3, 3, 3]
    again = model.generate(requests[:1], settings)[0]
    assert again.raw_text == results[0].raw_text


def test_auto_dtype_is_recorded_as_what_was_loaded(tiny_model_dir: Path) -> None:
    model = load_model(str(tiny_model_dir), device="cpu", dtype="auto")
    assert model.identity.dtype == resolve_dtype("auto", "cpu")
    assert model.identity.dtype in {"float32", "bfloat16"}


def test_inverse_cdf_picks_the_first_candidate_past_the_uniform() -> None:
    # Probabilities 0.5, 0.3, 0.2 for tokens 1, 2, 0: cumulative 0.5, 0.8, 1.0.
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3, 1e-9]])).repeat(4, 1)
    uniforms = torch.tensor([0.0, 0.49, 0.5, 0.95])
    tokens = sample_next_tokens(logits, SamplingSettings(top_k=3), uniforms)
    assert tokens.tolist() == [1, 1, 2, 0]


def test_inverse_cdf_never_picks_a_token_filtered_out() -> None:
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]]))
    # top_p=0.6 keeps tokens 1 and 2 only (as next_token_probs does); a uniform near 1
    # must land on token 2, never on the dropped token 0.
    settings = SamplingSettings(top_k=0, top_p=0.6)
    assert next_token_probs(logits, settings)[0, 0].item() == 0.0
    for u in (0.0, 0.6, 0.9999999):
        token = sample_next_tokens(logits, settings, torch.tensor([u]))
        assert token.item() in {1, 2}
    assert sample_next_tokens(logits, settings, torch.tensor([0.9999999])).item() == 2


def test_inverse_cdf_frequencies_match_the_probabilities() -> None:
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))
    settings = SamplingSettings(top_k=5)
    expected = next_token_probs(logits, settings)[0]
    uniforms = torch.rand(20_000, generator=torch.Generator().manual_seed(1))
    tokens = sample_next_tokens(logits.repeat(20_000, 1), settings, uniforms)
    observed = torch.bincount(tokens, minlength=50).double() / 20_000
    # 20,000 draws: a binomial standard error below 0.0036, so 0.015 is over 4 of them.
    assert torch.allclose(observed, expected.double(), atol=0.015)
    assert set(tokens.tolist()) == set(torch.nonzero(expected).flatten().tolist())


def test_top_k_one_is_the_argmax_whatever_the_uniform() -> None:
    logits = torch.randn(6, 30, generator=torch.Generator().manual_seed(2))
    uniforms = torch.tensor([0.0, 0.1, 0.5, 0.9, 0.99, 0.999999])
    tokens = sample_next_tokens(logits, SamplingSettings(top_k=1), uniforms)
    assert tokens.tolist() == logits.argmax(dim=-1).tolist()


def test_several_processes_give_the_texts_of_one(tiny_model_dir: Path, ledes: list[str]) -> None:
    settings = SamplingSettings(max_new_tokens=12)
    requests = [GenerationRequest(lede, seed=100 + i) for i, lede in enumerate(ledes)]
    single = load_model(str(tiny_model_dir), device="cpu").generate(
        requests, settings, batch_size=4
    )
    seen: list[int] = []
    parallel = generate_parallel(
        str(tiny_model_dir),
        requests,
        settings,
        workers=2,
        batch_size=2,
        dtype="float32",
        progress=lambda batch: seen.append(len(batch)),
    )
    assert parallel.workers == 2
    assert parallel.identity.dtype == "float32"
    assert [r.prompt for r in parallel.results] == ledes
    assert [r.raw_text for r in parallel.results] == [r.raw_text for r in single]
    assert sum(seen) == len(ledes)
    assert all(r.batch_rows == 2 for r in parallel.results)


def test_the_kv_cache_is_allocated_once_for_full_attention(tiny: LoadedModel) -> None:
    cache = tiny._new_cache(40)
    layer_class = kernels._preallocated_layer_class()
    assert [type(layer) for layer in cache.layers] == [layer_class] * 2
    keys = torch.randn(3, 2, 5, 16)
    first, _ = cache.update(keys, keys + 1, 0)
    second, values = cache.update(keys[:, :, :1] * 2, keys[:, :, :1], 0)
    # A view of one buffer: the cache grows without copying what it holds.
    assert first.data_ptr() == second.data_ptr() == cache.layers[0].key_buffer.data_ptr()
    assert torch.equal(second, torch.cat([keys, keys[:, :, :1] * 2], dim=2))
    assert torch.equal(values, torch.cat([keys + 1, keys[:, :, :1]], dim=2))
    assert cache.get_seq_length() == 6
    cache.batch_select_indices(torch.tensor([2, 0]))
    assert torch.equal(cache.layers[0].keys, second[[2, 0]])
    with pytest.raises(RuntimeError, match="holds 40 positions"):
        cache.update(torch.randn(2, 2, 35, 16), torch.randn(2, 2, 35, 16), 0)


def test_finished_rows_leave_the_batch_without_changing_any_sample(
    tiny: LoadedModel, ledes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = SamplingSettings(max_new_tokens=20)
    prompts = [tiny._encode(lede, 20)[0] for lede in ledes]
    seeds = [10 + i for i in range(len(prompts))]
    free = [tokens for tokens, _ in tiny._sample_batch(prompts, seeds, settings)]
    # Tokens the first two rows draw early on become end-of-text tokens: rows then stop
    # at different steps (where one of them first appears), and others not at all.
    stops = frozenset({free[0][2], free[1][9]})
    cut = [next((i + 1 for i, t in enumerate(row) if t in stops), len(row)) for row in free]
    assert len(set(cut)) >= 3
    assert 20 in cut
    stopping = LoadedModel(
        spec=tiny.spec, identity=tiny.identity, model=tiny.model, tokenizer=tiny.tokenizer
    )
    stopping.stop_ids = stops
    kept: list[int] = []
    layer_class = kernels._preallocated_layer_class()
    select = layer_class.batch_select_indices

    def spy(layer: Any, indices: torch.Tensor) -> None:
        kept.append(len(indices))
        select(layer, indices)

    monkeypatch.setattr(layer_class, "batch_select_indices", spy)
    monkeypatch.setattr(sampling, "COMPACT_FRACTION", 1000)  # drop a finished row at once
    rows = stopping._sample_batch(prompts, seeds, settings)
    assert [tokens for tokens, _ in rows] == [row[:n] for row, n in zip(free, cut, strict=True)]
    assert [stopped for _, stopped in rows] == [
        n < 20 or row[-1] in stops for row, n in zip(free, cut, strict=True)
    ]
    # The batch shrank (one call per layer each time), and each row alone agrees.
    assert kept
    assert kept == sorted(kept, reverse=True)
    assert kept[-1] < len(prompts)
    for row, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
        assert stopping._sample_batch([prompt], [seed], settings)[0] == rows[row]


def test_worker_pool_start_waits_for_every_worker(tiny_model_dir: Path, ledes: list[str]) -> None:
    with engine.worker_pool(str(tiny_model_dir), workers=2, dtype="float32") as pool:
        pids = engine.worker_pool_start(pool, timeout=120)
        assert len(set(pids)) == 2
        # The processes it started are the ones that then do the work.
        out = generate_parallel(
            str(tiny_model_dir),
            [GenerationRequest(lede, seed=i) for i, lede in enumerate(ledes[:2])],
            SamplingSettings(max_new_tokens=4),
            batch_size=1,
            pool=pool,
        )
        assert len(out.results) == 2
        assert sorted(pool._processes) == pids


def test_length_groups_pad_each_group_to_little_more_than_its_shortest() -> None:
    assert engine.length_groups([10, 40, 12, 20, 100]) == [[0, 2, 3], [1], [4]]
    assert engine.length_groups([7]) == [[0]]
    assert engine.length_groups([50, 50, 62]) == [[0, 1, 2]]  # 62 <= 50 * 1.25 + 8


def test_grouped_prefill_gives_the_samples_of_one_padded_batch(
    tiny: LoadedModel, ledes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = SamplingSettings(max_new_tokens=10)
    texts = [first_sentence(ledes[2]), ledes[0], ledes[1][:80], ledes[3]]
    prompts = [tiny._encode(text, 10)[0] for text in texts]
    assert len(engine.length_groups([len(p) for p in prompts])) >= 2
    fills: list[int] = []
    layer_class = kernels._preallocated_layer_class()
    fill = layer_class.fill_rows

    def spy(layer: Any, index: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        fills.append(len(index))
        fill(layer, index, *args, **kwargs)

    monkeypatch.setattr(layer_class, "fill_rows", spy)
    grouped = tiny._sample_batch(prompts, [1, 2, 3, 4], settings)
    assert sum(fills) == 2 * len(prompts)  # every row once in each of the 2 layers
    monkeypatch.setattr(sampling, "length_groups", lambda lengths: [list(range(len(lengths)))])
    padded = tiny._sample_batch(prompts, [1, 2, 3, 4], settings)
    assert grouped == padded
    assert all(len(tokens) == 10 for tokens, _ in grouped)


def test_parallel_batches_are_dealt_so_workers_get_alike_prompts() -> None:
    order = list(range(64))  # requests sorted by prompt length
    first, second = engine.deal_chunks(order, workers=2, batch_size=32)
    # Not the 32 shortest to one worker and the 32 longest to the other.
    assert first == list(range(0, 64, 2))
    assert second == list(range(1, 64, 2))
    # More than one round: equal batches, each round a stretch of similar lengths.
    chunks = engine.deal_chunks(list(range(100)), workers=2, batch_size=32)
    assert [len(c) for c in chunks] == [25, 25, 25, 25]
    assert sorted(chunks[0] + chunks[1]) == list(range(50))
    for n, workers, size in [(1, 2, 32), (5, 2, 32), (7, 3, 2), (65, 2, 32), (300, 4, 16)]:
        chunks = engine.deal_chunks(list(range(n)), workers=workers, batch_size=size)
        assert sorted(i for c in chunks for i in c) == list(range(n))
        assert max(len(c) for c in chunks) <= size
        assert max(len(c) for c in chunks) - min(len(c) for c in chunks) <= size // 2 + 1
    assert engine.deal_chunks([], workers=2, batch_size=8) == []


def test_parallel_generation_runs_given_batches_as_they_are(
    tiny_model_dir: Path, ledes: list[str]
) -> None:
    requests = [GenerationRequest(lede, seed=i) for i, lede in enumerate(ledes)]
    settings = SamplingSettings(max_new_tokens=4)
    # Unsorted and uneven: the caller's batches (a run's chunks), not dealt ones.
    batches = [[5, 0, 3], [1], [2, 4]]
    out = generate_parallel(
        str(tiny_model_dir),
        requests,
        settings,
        workers=2,
        batch_size=2,
        dtype="float32",
        batches=batches,
    )
    assert [r.prompt for r in out.results] == ledes
    rows = {i: len(batch) for batch in batches for i in batch}
    assert [r.batch_rows for r in out.results] == [rows[i] for i in range(len(ledes))]
    with pytest.raises(ValueError, match="every request once"):
        generate_parallel(
            str(tiny_model_dir), requests, settings, workers=2, batches=[[0, 1], [1, 2]]
        )
