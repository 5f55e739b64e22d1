"""Sampling: the settings and results of a generation, a loaded model's reproducible
batched sampler (``LoadedModel.generate``), and the per-step token choice."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from generation.engine.kernels import DECODE_ATTENTION, _preallocated_layer_class, new_cache
from generation.engine.registry import END_MARKERS, ModelIdentity, ModelSpec

# v1 drew each row's token with torch.multinomial from the row's generator, one row at a
# time (about 35 ms a step at batch 32 on a 49k vocabulary, a quarter of a bf16 step);
# v2 draws one uniform per row from the row's generator and inverts the cumulative
# distribution of the filtered candidates for all rows at once. Same seeds give other
# texts than v1, hence the new version string stored with every run.
SAMPLER_VERSION = "credence-inverse-cdf-v2"

# A batch drops its finished rows once at least 1/COMPACT_FRACTION of them are finished.
COMPACT_FRACTION = 8


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

    # Complexity kept: the decode loop keeps its tensors in one frame; helpers would pass a dozen of
    # them per step.
    def _sample_batch(  # noqa: C901
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
        return new_cache(self.model.config, capacity, keys_transposed=self.keys_transposed)

    def _vocab_size(self) -> int:
        # The logits' width, which can exceed len(tokenizer) (padded embedding matrices).
        embeddings = self.model.get_output_embeddings()
        if embeddings is not None and hasattr(embeddings, "weight"):
            return int(embeddings.weight.shape[0])
        return int(self.model.config.vocab_size)


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
