"""The fast paths: dtype choice, the vectorised inverse-CDF sampler, several processes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from generation import engine
from generation.engine import (
    GenerationRequest,
    LoadedModel,
    SamplingSettings,
    generate_parallel,
    load_model,
    next_token_probs,
    resolve_dtype,
    sample_next_tokens,
)


@pytest.fixture
def tiny(tiny_model_dir: Path) -> LoadedModel:
    return load_model(str(tiny_model_dir), device="cpu")


def test_explicit_dtypes_are_kept_and_unknown_ones_refused() -> None:
    assert resolve_dtype("float32", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("int8", "cpu")


def test_auto_dtype_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(engine, "cpu_has_native_bf16", lambda: False)
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("auto", "mps") == "float32"


def test_bfloat16_model_records_its_dtype_and_generates(
    tiny_model_dir: Path, ledes: list[str]
) -> None:
    model = load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert model.identity.dtype == "bfloat16"
    assert next(model.model.parameters()).dtype == torch.bfloat16
    assert model.identity.attn_implementation == "sdpa"
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
