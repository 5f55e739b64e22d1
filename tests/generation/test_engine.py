"""The engine: model resolution and loading, reproducible batched sampling, clean-up."""

from __future__ import annotations

import copy
import hashlib
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from generation import cleanup, engine
from generation.engine import (
    GenerationRequest,
    LoadedModel,
    ModelUnavailableError,
    SamplingSettings,
    UnknownModelError,
    load_model,
    next_token_probs,
    resolve_model,
)
from generation.prompts import first_sentence


@pytest.fixture
def tiny(tiny_model_dir: Path) -> LoadedModel:
    return load_model(str(tiny_model_dir), device="cpu")


# ---------------------------------------------------------------------------------------
# Resolution and loading


def test_embedded_resolves_to_the_packaged_gguf_without_loading() -> None:
    spec = resolve_model("embedded")
    assert spec.kind == "embedded"
    assert spec.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (Path(spec.source) / spec.gguf_file).is_file()
    assert spec.label == "SmolLM2-135M-Instruct (Q4_1 GGUF, embedded offline model)"


@pytest.mark.parametrize(
    ("name", "hub_id"),
    [
        ("gpt2", "openai-community/gpt2"),
        ("gpt2-medium", "openai-community/gpt2-medium"),
        ("gpt2-large", "openai-community/gpt2-large"),
        ("gpt2-xl", "openai-community/gpt2-xl"),
        ("someone/news-model", "someone/news-model"),
    ],
)
def test_gpt2_sizes_and_hub_ids_resolve_to_hub_ids(
    name: str, hub_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENCE_MODEL_DIR", raising=False)
    spec = resolve_model(name)
    assert (spec.kind, spec.source) == ("hub", hub_id)


def test_model_dir_copy_wins_over_the_hub(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "gpt2-large").symlink_to(tiny_model_dir, target_is_directory=True)
    spec = resolve_model("gpt2-large", model_dir=str(tmp_path))
    assert spec.kind == "local"
    assert spec.source == str(tmp_path / "gpt2-large")
    assert spec.hub_id == "openai-community/gpt2-large"
    assert spec.label == "GPT-2 large (774M)"


def test_unknown_model_name_says_what_is_accepted() -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve_model("gpt5-turbo")
    message = str(caught.value)
    assert 'Unknown model "gpt5-turbo"' in message
    assert "embedded" in message
    assert "gpt2-xl" in message


def test_directory_without_a_model_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match=r"no config\.json"):
        resolve_model(str(tmp_path))


def test_uncached_gpt2_offline_raises_model_unavailable_with_instructions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("CREDENCE_MODEL_DIR", raising=False)
    with pytest.raises(ModelUnavailableError) as caught:
        load_model("gpt2-large", cache_dir=str(tmp_path / "empty-cache"), device="cpu")
    message = str(caught.value)
    assert "gpt2-large" in message
    assert "hf download openai-community/gpt2-large" in message
    assert "CREDENCE_MODEL_DIR" in message
    assert "offline mode is on" in message


def test_loading_a_directory_records_identity(tiny: LoadedModel, tiny_model_dir: Path) -> None:
    identity = tiny.identity
    weights = (tiny_model_dir / "model.safetensors").read_bytes()
    assert identity.kind == "local"
    assert identity.source == str(tiny_model_dir.resolve())
    assert identity.weights_sha256 == {"model.safetensors": hashlib.sha256(weights).hexdigest()}
    assert identity.param_count == sum(p.numel() for p in tiny.model.parameters())
    assert identity.dtype == "float32"
    assert identity.device == "cpu"
    assert identity.context_length == 256
    assert identity.torch_version == torch.__version__


def test_model_is_loaded_once_per_process(tiny: LoadedModel, tiny_model_dir: Path) -> None:
    assert load_model(str(tiny_model_dir), device="cpu") is tiny


# ---------------------------------------------------------------------------------------
# Sampling


def test_batched_generation_returns_one_result_per_prompt_in_order(
    tiny: LoadedModel, ledes: list[str]
) -> None:
    requests = [GenerationRequest(prompt=lede, seed=i) for i, lede in enumerate(ledes)]
    results = tiny.generate(requests, SamplingSettings(max_new_tokens=12), batch_size=4)
    assert [r.prompt for r in results] == ledes
    assert [r.seed for r in results] == list(range(len(ledes)))
    assert all(1 <= r.new_tokens <= 12 for r in results)
    assert all(r.raw_text for r in results)


def test_same_seed_gives_the_same_text_and_another_seed_another(
    tiny: LoadedModel, ledes: list[str]
) -> None:
    settings = SamplingSettings(max_new_tokens=15)
    first = tiny.generate([GenerationRequest(ledes[0], seed=7)], settings)[0]
    again = tiny.generate([GenerationRequest(ledes[0], seed=7)], settings)[0]
    others = tiny.generate([GenerationRequest(ledes[0], seed=s) for s in (8, 9, 10)], settings)
    assert again.raw_text == first.raw_text
    assert any(other.raw_text != first.raw_text for other in others)


def test_a_sample_does_not_depend_on_its_batch_neighbours(
    tiny: LoadedModel, ledes: list[str]
) -> None:
    settings = SamplingSettings(max_new_tokens=15)
    target = GenerationRequest(ledes[1], seed=42)
    alone = tiny.generate([target], settings)[0]
    neighbours = [GenerationRequest(ledes[0], seed=1), target, GenerationRequest(ledes[4], seed=2)]
    # Prompts of other lengths put padding in front of the target's row.
    assert len({len(tiny.tokenizer(r.prompt)["input_ids"]) for r in neighbours}) == 3
    in_batch = tiny.generate(neighbours, settings, batch_size=3)[1]
    assert in_batch.raw_text == alone.raw_text


def _greedy_by_hand(model: LoadedModel, prompt: str, steps: int) -> list[int]:
    ids = model.tokenizer(prompt)["input_ids"]
    new: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model.model(torch.tensor([ids + new])).logits[0, -1]
            token = int(torch.argmax(logits))
            new.append(token)
            if token in model.stop_ids:
                break
    return new


def test_top_k_one_equals_the_greedy_continuation_computed_by_hand(
    tiny: LoadedModel, ledes: list[str]
) -> None:
    settings = SamplingSettings(max_new_tokens=10, top_k=1)
    # Two prompts of different lengths (so one row is padded), both well inside the context.
    requests = [
        GenerationRequest(first_sentence(ledes[2]), seed=0),
        GenerationRequest(ledes[0][:300], seed=99),
    ]
    results = tiny.generate(requests, settings, batch_size=2)
    for request, result in zip(requests, results, strict=True):
        expected = _greedy_by_hand(tiny, request.prompt, 10)
        assert result.raw_text == tiny.tokenizer.decode(expected)
        assert result.new_tokens == len(expected)


def test_generation_stops_a_row_at_end_of_text(tiny: LoadedModel, ledes: list[str]) -> None:
    # A copy of the tiny model whose output layer always prefers <|endoftext|>.
    model = copy.deepcopy(tiny.model)
    eos = tiny.tokenizer.eos_token_id
    with torch.no_grad():
        # The final layer norm then outputs all ones, so the logit of <|endoftext|> is 32
        # and every other logit is a sum of 32 small initial weights.
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)
        model.lm_head.weight[eos].fill_(1.0)
    eager = LoadedModel(
        spec=tiny.spec, identity=tiny.identity, model=model, tokenizer=tiny.tokenizer
    )
    result = eager.generate(
        [GenerationRequest(ledes[0], seed=3)], SamplingSettings(max_new_tokens=9)
    )[0]
    assert result.stopped_at_eos
    assert result.new_tokens == 1
    assert result.raw_text == "<|endoftext|>"
    assert cleanup.clean(result.raw_text).text == ""


def test_a_prompt_longer_than_the_context_keeps_its_end(tiny: LoadedModel) -> None:
    prompt = " ".join(["The council met again on Monday."] * 80)
    settings = SamplingSettings(max_new_tokens=6)
    result = tiny.generate([GenerationRequest(prompt, seed=0)], settings)[0]
    assert result.prompt_truncated
    assert result.prompt_tokens == 256 - 6


def test_max_new_tokens_beyond_the_context_is_refused(tiny: LoadedModel) -> None:
    with pytest.raises(ValueError, match="leaves no room for a prompt"):
        tiny.generate([GenerationRequest("Hello.", seed=0)], SamplingSettings(max_new_tokens=300))


@pytest.mark.parametrize(
    "bad",
    [
        {"max_new_tokens": 0},
        {"top_k": -1},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"temperature": 0.0},
    ],
)
def test_bad_sampling_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        SamplingSettings(**bad)  # type: ignore[arg-type]


def test_top_k_keeps_the_k_most_likely_tokens() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    probs = next_token_probs(logits, SamplingSettings(top_k=2))
    e3, e2 = math.exp(3.0), math.exp(2.0)
    assert probs[0].tolist() == pytest.approx([0.0, e3 / (e3 + e2), e2 / (e3 + e2), 0.0])


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]]))
    probs = next_token_probs(logits, SamplingSettings(top_k=0, top_p=0.6))
    # 0.5 alone is below 0.6, so 0.3 is kept too; 0.2 is not needed.
    assert probs[0].tolist() == pytest.approx([0.0, 0.625, 0.375])


def test_temperature_divides_the_logits() -> None:
    logits = torch.tensor([[0.0, 1.0]])
    probs = next_token_probs(logits, SamplingSettings(top_k=0, temperature=0.5))
    assert probs[0, 1].item() == pytest.approx(math.exp(2.0) / (1.0 + math.exp(2.0)))


# ---------------------------------------------------------------------------------------
# Clean-up


def test_importing_the_engine_loads_neither_django_nor_torch() -> None:
    # A fresh interpreter: this test process has imported both already.
    code = (
        "import sys, generation.engine; "
        "top = {m.split('.')[0] for m in sys.modules}; "
        "print(sorted(top & {'django', 'torch', 'transformers'}))"
    )
    root = Path(engine.__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
