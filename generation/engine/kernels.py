"""CPU kernels for bfloat16 decoding, and the preallocated KV cache.

``cpu_kernels_enable(model, device=..., dtype=...)`` is the one switch: on a CPU in
bfloat16 it prepacks the linear weights for oneDNN (``pack_linear_weights``) and makes
decoding steps use a matmul attention over keys cached position-last
(``DECODE_ATTENTION``); elsewhere it does nothing. ``new_cache`` gives every batch a KV
cache whose layers are written in place (``PreallocatedLayer``), keys position-last when
the model uses decode attention. torch and transformers are imported on first use."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

# The attention bfloat16 models use on a CPU: SDPA for prompts, and for one-token
# decoding steps two matmuls over keys cached position-last (_register_decode_attention).
DECODE_ATTENTION = "sdpa+credence_decode"

# Attention arguments that send a decoding step back to SDPA (see
# _register_decode_attention).
UNSUPPORTED_BY_DECODE_ATTENTION = ("position_bias", "softcap", "sliding_window", "s_aux")

# KV cache buffers grow this many positions at a time; decode attention reads them
# whole (see _register_decode_attention).
DECODE_WINDOW = 64


def cpu_kernels_enable(model: Any, *, device: str, dtype: str) -> None:
    """Switch ``model`` (loaded with SDPA attention where it has it) to this module's
    kernels when it runs in bfloat16 on a CPU; leave it as it is anywhere else."""
    if device != "cpu" or dtype != "bfloat16":
        return
    pack_linear_weights(model)
    if getattr(model.config, "_attn_implementation", "") == "sdpa":
        with contextlib.suppress(ValueError, ImportError, AttributeError):
            model.set_attn_implementation(_register_decode_attention())


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


def new_cache(config: Any, capacity: int, *, keys_transposed: bool) -> Any:
    """A KV cache for one batch whose layers hold ``capacity`` positions from the start.

    transformers' ``DynamicCache`` concatenates every layer's keys and values with the
    new step's, allocating and copying the whole cache each step (the profiler puts
    it at up to a quarter of a decoding step at batch 32 on a CPU); these layers
    write each step in place and hand attention a view of the filled part. Layer
    kinds other than plain full attention (sliding windows, linear attention) keep
    transformers' own layers.
    """
    from transformers.cache_utils import DynamicCache, DynamicLayer

    cache = DynamicCache(config=config)
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        layer_class = _preallocated_layer_class()
        cache.layers = [
            layer_class(capacity, keys_transposed=keys_transposed) for _ in cache.layers
        ]
    return cache


@functools.cache
# Complexity kept: a class defined in a function so that importing the module imports no torch; its
# methods are the complexity.
def _preallocated_layer_class() -> type[Any]:  # noqa: C901
    """The class of ``new_cache``'s layers, built on first use so that
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
