"""The bfloat16 CPU fast path: packed linear weights and decode attention over keys cached
position-last. Each is checked against what it replaces."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from generation.engine import GenerationRequest, SamplingSettings, kernels, load_model


class Grouped(torch.nn.Module):
    """What transformers' attention functions read off an attention module."""

    num_key_value_groups = 3
    is_causal = True
    training = False


def decode_attention() -> Any:
    from transformers import AttentionInterface

    return AttentionInterface()[kernels._register_decode_attention()]


def cached(
    keys: torch.Tensor, values: torch.Tensor, *, transposed: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``keys`` and ``values`` as a ``PreallocatedLayer`` hands them to attention after
    one update: views of the filled part of buffers a window wide."""
    layer = kernels._preallocated_layer_class()(keys.shape[2] + 100, keys_transposed=transposed)
    return layer.update(keys, values, 0)  # type: ignore[no-any-return]


def cached_keys(keys: torch.Tensor, *, transposed: bool) -> torch.Tensor:
    return cached(keys, keys, transposed=transposed)[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_attention_is_sdpa_with_grouped_heads_and_padding(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    batch, heads, kv_heads, positions, dim = 4, 6, 2, 37, 16
    query = torch.randn(batch, heads, 1, dim, generator=generator).to(dtype)
    keys = torch.randn(batch, kv_heads, positions, dim, generator=generator).to(dtype)
    values = torch.randn(batch, kv_heads, positions, dim, generator=generator).to(dtype)
    mask = torch.ones(batch, 1, 1, positions, dtype=torch.bool)
    mask[1, ..., :9] = False  # left padding of two rows
    mask[3, ..., :30] = False
    module = Grouped()
    stored, stored_values = cached(keys, values, transposed=True)
    assert stored.stride(-2) == 1  # position-last underneath, so the fast path runs
    # The buffers are a window (64 positions) wide; the 27 past the filled ones are read
    # too, and must count for nothing.
    window, _ = kernels._cache_window(stored, stored_values)
    assert window.shape[2] == kernels.DECODE_WINDOW
    expected, _ = sdpa_attention_forward(module, query, keys, values, mask, scaling=0.3)
    ours, weights = decode_attention()(module, query, stored, stored_values, mask, scaling=0.3)
    assert weights is None
    assert ours.shape == expected.shape == (batch, 1, heads, dim)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(ours, expected, atol=tolerance, rtol=tolerance)
    # Without a mask (no padding), only the filled positions count too.
    unmasked, _ = sdpa_attention_forward(module, query, keys, values, None, scaling=0.3)
    torch.testing.assert_close(
        decode_attention()(module, query, stored, stored_values, None, scaling=0.3)[0],
        unmasked,
        atol=tolerance,
        rtol=tolerance,
    )
    # A padded position changes nothing; a seen one does.
    stored_values[3, :, 5] += 100
    assert torch.equal(
        decode_attention()(module, query, stored, stored_values, mask, scaling=0.3)[0], ours
    )
    stored_values[3, :, 35] += 100
    assert not torch.equal(
        decode_attention()(module, query, stored, stored_values, mask, scaling=0.3)[0], ours
    )


def test_decode_attention_leaves_prompts_and_plain_caches_to_sdpa(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1].shape[2])
        return sdpa_attention_forward(*args, **kwargs)

    monkeypatch.setattr(
        "transformers.integrations.sdpa_attention.sdpa_attention_forward", spy, raising=True
    )
    kernels._register_decode_attention.cache_clear()
    try:
        attention = decode_attention()
        keys = torch.randn(2, 2, 10, 8)
        prompt = torch.randn(2, 6, 10, 8)
        attention(Grouped(), prompt, cached_keys(keys, transposed=True), keys, None)
        one = torch.randn(2, 6, 1, 8)
        attention(Grouped(), one, cached_keys(keys, transposed=False), keys, None)
        assert calls == [10, 1]
        attention(Grouped(), one, cached_keys(keys, transposed=True), keys, None)
        assert calls == [10, 1]  # the decoding step with transposed keys ran the matmuls
        # A local window (or bias, soft cap, sinks) is SDPA's to apply.
        attention(Grouped(), one, cached_keys(keys, transposed=True), keys, None, sliding_window=4)
        assert calls == [10, 1, 1]
        attention(
            Grouped(), one, cached_keys(keys, transposed=True), keys, None, sliding_window=None
        )
        assert calls == [10, 1, 1]
    finally:
        kernels._register_decode_attention.cache_clear()
        kernels._register_decode_attention()


def test_a_transposed_key_cache_holds_what_a_plain_one_does() -> None:
    layer_class = kernels._preallocated_layer_class()
    plain, transposed = layer_class(20), layer_class(20, keys_transposed=True)
    generator = torch.Generator().manual_seed(1)
    first = torch.randn(3, 2, 5, 8, generator=generator)
    step = torch.randn(3, 2, 1, 8, generator=generator)
    for layer in (plain, transposed):
        layer.update(first, first + 1, 0)
        layer.update(step, step + 1, 0)
    assert torch.equal(plain.keys, transposed.keys)
    assert torch.equal(plain.values, transposed.values)
    assert transposed.keys.data_ptr() == transposed.key_buffer.data_ptr()
    for layer in (plain, transposed):
        layer.batch_select_indices(torch.tensor([2, 0]))
    assert torch.equal(plain.keys, transposed.keys)
    assert transposed.keys.stride(-2) == 1
    assert torch.equal(transposed.keys, torch.cat([first, step], dim=2)[[2, 0]])
    filled = layer_class(20, keys_transposed=True)
    filled.fill_rows(torch.tensor([1]), first[:1], first[:1] + 1, rows=2, width=7)
    assert torch.equal(filled.keys[1, :, 2:], first[0])
    assert not filled.keys[0].any()
    assert not filled.keys[1, :, :2].any()


def test_the_cache_grows_a_window_at_a_time_and_keeps_what_it_holds() -> None:
    layer_class = kernels._preallocated_layer_class()
    layer = layer_class(150, keys_transposed=True)
    generator = torch.Generator().manual_seed(2)
    prompt = torch.randn(2, 3, 60, 8, generator=generator)
    layer.update(prompt, prompt + 1, 0)
    assert layer.key_buffer.shape[2] == 64
    steps = [torch.randn(2, 3, 1, 8, generator=generator) for _ in range(70)]
    widths = set()
    for step in steps:
        keys, values = layer.update(step, step + 1, 0)
        widths.add(layer.key_buffer.shape[2])
    assert widths == {64, 128, 150}  # the last window stops at the capacity
    everything = torch.cat([prompt, *steps], dim=2)
    assert torch.equal(keys, everything)
    assert torch.equal(values, everything + 1)
    assert not layer.key_buffer[:, :, 130:].any()
    assert not layer.value_buffer[:, :, 130:].any()
    with pytest.raises(RuntimeError, match="holds 150 positions, not 151"):
        layer.update(torch.randn(2, 3, 21, 8), torch.randn(2, 3, 21, 8), 0)


def test_packed_linear_layers_give_bit_identical_logits(tiny_model_dir: Path) -> None:
    model = load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    packed = kernels._packed_linear_class()
    layers = [m for m in model.model.modules() if isinstance(m, packed)]
    # GPT-2's Conv1D layers (4 per block) and the output projection.
    assert len(layers) == 2 * 4 + 1
    plain = load_model(str(tiny_model_dir), device="cpu", dtype="float32").model
    plain = copy.deepcopy(plain).to(torch.bfloat16)
    plain.set_attn_implementation("sdpa")
    ids = model.tokenizer("The council met on Monday and approved the plan.", return_tensors="pt")
    with torch.inference_mode():
        ours = model.model(**ids).logits
        theirs = plain(**ids).logits
    assert torch.equal(ours, theirs)
    assert model._vocab_size() == plain.get_output_embeddings().weight.shape[0]


def test_bfloat16_samples_are_reproducible_and_use_the_decode_attention(
    tiny_model_dir: Path, ledes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert model.keys_transposed
    steps: list[int] = []
    matmul = torch.matmul

    def spy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        steps.append(b.shape[-1])
        return matmul(a, b)

    monkeypatch.setattr(torch, "matmul", spy)
    settings = SamplingSettings(max_new_tokens=6)
    requests = [GenerationRequest(lede, seed=7 + i) for i, lede in enumerate(ledes[:3])]
    first = model.generate(requests, settings, batch_size=3)
    # Two matmuls per layer (2) per decoding step after the first (5), over whole
    # buffers: the same width every step, not a new one (a new oneDNN kernel) each.
    assert len(steps) == 2 * 2 * 5
    assert len(set(steps[::2])) == 1
    monkeypatch.setattr(torch, "matmul", matmul)
    assert [r.raw_text for r in model.generate(requests, settings, batch_size=3)] == [
        r.raw_text for r in first
    ]
    alone = model.generate(requests[1:2], settings)[0]
    assert alone.raw_text == first[1].raw_text
