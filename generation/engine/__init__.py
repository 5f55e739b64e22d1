"""Text generation with causal language models: the only package that knows torch.

Nothing here imports Django. Callers pass plain arguments and get frozen dataclasses back;
``generation.services`` translates between these and the database.

- ``registry``: ``resolve_model(name)`` turns a model name into a ``ModelSpec`` cheaply (no
  weights read), so bad names are caught when a run is created.
- ``loading``: ``load_model(name)`` loads a model lazily, once per process, and records what
  was actually loaded (``ModelIdentity``).
- ``device``: ``resolve_dtype("auto", device)`` picks bfloat16 where the hardware computes it
  natively (CPUs with AVX512-BF16 or AMX, CUDA GPUs with bf16), float32 elsewhere.
- ``kernels``: in bfloat16 on a CPU, linear weights are prepacked for oneDNN and decoding
  steps use a matmul attention over keys cached position-last (``DECODE_ATTENTION``), all
  behind one switch (``cpu_kernels_enable``); every batch's KV cache is allocated once and
  written in place.
- ``sampling``: ``LoadedModel.generate(requests, settings)`` samples continuations in
  batches with left padding and an attention mask; prompts are prefilled in groups of
  similar length, and finished rows leave the batch. Every request carries its own seed
  and is sampled from its own ``torch.Generator``, so a sample is reproducible from its
  record and does not depend on which other prompts shared its batch.
- ``parallel``: ``generate_parallel(name, requests, settings, workers=...)`` spreads the
  requests over worker processes (one per physical core by default, each loading the
  model once), for CPUs, where one process with several threads leaves much of the
  machine idle.

Turning a raw continuation into text fit for participants is ``generation.cleanup``'s.
"""

from __future__ import annotations

from generation.engine.device import (
    DTYPES,
    cpu_has_native_bf16,
    physical_cores,
    pick_device,
    resolve_dtype,
)
from generation.engine.kernels import (
    DECODE_ATTENTION,
    DECODE_WINDOW,
    UNSUPPORTED_BY_DECODE_ATTENTION,
    cpu_kernels_enable,
    pack_linear_weights,
)
from generation.engine.loading import clear_model_cache, file_sha256, load_model
from generation.engine.parallel import (
    ParallelGeneration,
    deal_chunks,
    generate_parallel,
    worker_pool,
    worker_pool_start,
    worker_pool_stop,
)
from generation.engine.registry import (
    EMBEDDED,
    EMBEDDED_GGUF,
    EMBEDDED_LABEL,
    EMBEDDED_PACKAGE,
    END_MARKERS,
    GPT2_LABELS,
    GPT2_MODELS,
    WEIGHT_SUFFIXES,
    ModelIdentity,
    ModelSpec,
    ModelUnavailableError,
    UnknownModelError,
    embedded_model_dir,
    resolve_model,
)
from generation.engine.sampling import (
    COMPACT_FRACTION,
    MAX_REPETITION_PENALTY,
    SAMPLER_VERSION,
    GenerationRequest,
    GenerationResult,
    LoadedModel,
    ProgressCallback,
    SamplingSettings,
    StepCallback,
    constrain_logits,
    length_groups,
    next_token_probs,
    sample_next_tokens,
    validate_settings,
)

__all__ = [
    "COMPACT_FRACTION",
    "DECODE_ATTENTION",
    "DECODE_WINDOW",
    "DTYPES",
    "EMBEDDED",
    "EMBEDDED_GGUF",
    "EMBEDDED_LABEL",
    "EMBEDDED_PACKAGE",
    "END_MARKERS",
    "GPT2_LABELS",
    "GPT2_MODELS",
    "MAX_REPETITION_PENALTY",
    "SAMPLER_VERSION",
    "UNSUPPORTED_BY_DECODE_ATTENTION",
    "WEIGHT_SUFFIXES",
    "GenerationRequest",
    "GenerationResult",
    "LoadedModel",
    "ModelIdentity",
    "ModelSpec",
    "ModelUnavailableError",
    "ParallelGeneration",
    "ProgressCallback",
    "SamplingSettings",
    "StepCallback",
    "UnknownModelError",
    "clear_model_cache",
    "constrain_logits",
    "cpu_has_native_bf16",
    "cpu_kernels_enable",
    "deal_chunks",
    "embedded_model_dir",
    "file_sha256",
    "generate_parallel",
    "length_groups",
    "load_model",
    "next_token_probs",
    "pack_linear_weights",
    "physical_cores",
    "pick_device",
    "resolve_dtype",
    "resolve_model",
    "sample_next_tokens",
    "validate_settings",
    "worker_pool",
    "worker_pool_start",
    "worker_pool_stop",
]
