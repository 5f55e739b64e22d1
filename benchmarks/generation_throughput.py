"""Benchmark: tokens/s of the generation engine against the naive transformers pipeline.

Runs, in one process on the same ledes and settings (top-k 40, temperature 1, N new tokens):

  (a) naive:  transformers.pipeline("text-generation"), one prompt per call, float32, on a
              subset of the prompts (--naive-prompts) to keep the run short
  (b) engine: LoadedModel.generate on all prompts, batched and length-sorted, float32
  (c) engine: the same in bfloat16 (only where the CPU computes bf16 natively)
  (d) engine: generate_parallel, one process per physical core, bfloat16 where native

and prints a table with tokens/s, the ratio to (a), peak memory and the fraction of the
compute bound. The compute bound is measured in the same run:

    machine FLOP/s  = 2 * 1024**3 * matmuls / seconds   (1024x1024 torch.matmul, ~2 s, per dtype)
    bound tokens/s  = machine FLOP/s / (2 * parameters)  (a decoding step costs ~2 FLOP per
                                                          parameter per token; attention extra)
    fraction        = tokens/s / bound tokens/s

Peak RSS is ru_maxrss of this process plus that of its largest finished child, so far in
the run (it never goes down). Usage:

    .venv/bin/python benchmarks/generation_throughput.py                # 64 prompts, 200 tokens
    .venv/bin/python benchmarks/generation_throughput.py --quick        # 16 prompts, 50 tokens
    .venv/bin/python benchmarks/generation_throughput.py --shape gpt2   # GPT-2 small's shape

``--shape gpt2|gpt2-medium|gpt2-large|gpt2-xl`` times a GPT-2 of that size with random
weights (and the embedded model's tokenizer), for machines that cannot download the real
ones: the cost of a token depends on the shape, not on the weights' values. Random
weights rarely draw an end-of-text token, so every prompt runs its full length.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ARTICLES = ROOT / "data" / "wikinews_articles.jsonl"


@dataclass(frozen=True)
class Row:
    configuration: str
    prompts: int
    new_tokens: int
    seconds: float
    dtype: str

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def ledes(count: int) -> list[str]:
    """The first paragraphs of the first ``count`` bundled Wikinews articles."""
    found: list[str] = []
    with ARTICLES.open(encoding="utf-8") as handle:
        for line in handle:
            lede = json.loads(line)["body"].split("\n\n", 1)[0].strip()
            if lede and lede not in found:
                found.append(lede)
            if len(found) == count:
                break
    if len(found) < count:
        raise SystemExit(f"Only {len(found)} ledes in {ARTICLES}; asked for {count}.")
    return found


# GPT-2's released sizes: layers, width, heads.
GPT2_SHAPES = {
    "gpt2": (12, 768, 12),
    "gpt2-medium": (24, 1024, 16),
    "gpt2-large": (36, 1280, 20),
    "gpt2-xl": (48, 1600, 25),
}


def random_gpt2(shape: str, folder: Path) -> str:
    """A GPT-2 of ``shape`` with random weights and the embedded model's tokenizer,
    saved in ``folder``; returns the directory, usable as a model name."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from generation import engine

    embedded = engine.resolve_model("embedded")
    tokenizer = AutoTokenizer.from_pretrained(embedded.source, gguf_file=embedded.gguf_file)
    layers, width, heads = GPT2_SHAPES[shape]
    config = GPT2Config(
        n_layer=layers,
        n_embd=width,
        n_head=heads,
        n_positions=1024,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def matmul_flops(dtype_name: str, seconds: float) -> float:
    """FLOP/s of a 1024x1024 matmul loop in ``dtype_name`` with all threads."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
    torch.matmul(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        count += 1
    return 2 * 1024**3 * count / (time.perf_counter() - start)


def report(rows: list[tuple[Row, float]], row: Row) -> None:
    """Keep a finished configuration and say so at once (a full run takes minutes)."""
    rows.append((row, peak_rss_mib()))
    print(f"done: {row.configuration}: {row.tokens_per_s:.1f} tokens/s", flush=True)


def peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024  # ru_maxrss is in KiB on Linux


def run_naive(model, prompts: list[str], max_new_tokens: int) -> int:  # type: ignore[no-untyped-def]
    import torch
    from transformers import pipeline

    pipe = pipeline("text-generation", model=model.model, tokenizer=model.tokenizer)
    new_tokens = 0
    room = model.identity.context_length - max_new_tokens - 8
    for prompt in prompts:
        ids = model.tokenizer(prompt)["input_ids"]
        if model.identity.context_length and len(ids) > room:
            # As the engine does: keep the end of a prompt too long for the context (the
            # margin covers a decode/encode round trip that tokenises a little differently).
            prompt = model.tokenizer.decode(ids[-room:])
        torch.manual_seed(len(prompt))
        out = pipe(
            prompt,
            do_sample=True,
            top_k=40,
            top_p=1.0,
            temperature=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=model.pad_id,
            return_tensors=True,
        )
        # The pipeline returns prompt and continuation; one prompt per call, no padding.
        new_tokens += len(out[0]["generated_token_ids"]) - len(model.tokenizer(prompt)["input_ids"])
    return new_tokens


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument(
        "--model-dir",
        # The variable the site's settings read; the engine reads no environment.
        default=os.environ.get("CREDENCE_MODEL_DIR", ""),
        help="folder of downloaded checkpoints (default: $CREDENCE_MODEL_DIR)",
    )
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--naive-prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="default: physical cores")
    parser.add_argument("--flops-seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="16 prompts, 50 tokens")
    parser.add_argument(
        "--shape", choices=sorted(GPT2_SHAPES), help="a GPT-2 of this size, random weights"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.prompts, args.max_new_tokens = 16, 50
        args.naive_prompts = min(args.naive_prompts, 4)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from generation import engine

    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    if args.shape:
        scratch = tempfile.TemporaryDirectory(prefix=f"random-{args.shape}-")
        args.model = random_gpt2(args.shape, Path(scratch.name))
        print(f"model: {args.shape}'s shape with random weights, in {args.model}")
    spec = engine.resolve_model(args.model, model_dir=args.model_dir)
    if spec.kind == "local":
        args.model = spec.source  # a model's directory is a model name of its own
    texts = ledes(args.prompts)
    requests = [engine.GenerationRequest(t, seed=i) for i, t in enumerate(texts)]
    settings = engine.SamplingSettings(max_new_tokens=args.max_new_tokens, top_k=40)
    native_bf16 = engine.resolve_dtype("auto", "cpu") == "bfloat16"
    workers = args.workers or engine.physical_cores()
    flops = {"float32": matmul_flops("float32", args.flops_seconds)}
    if native_bf16:
        flops["bfloat16"] = matmul_flops("bfloat16", args.flops_seconds)

    started = time.perf_counter()
    fp32 = engine.load_model(args.model, device="cpu", dtype="float32")
    print(
        f"model: {fp32.identity.label}, {fp32.identity.param_count:,} parameters, "
        f"attention {fp32.identity.attn_implementation}, loaded in "
        f"{time.perf_counter() - started:.1f} s; torch threads {torch.get_num_threads()}"
    )
    params = fp32.identity.param_count
    rows: list[tuple[Row, float]] = []

    naive_prompts = texts[: args.naive_prompts]
    start = time.perf_counter()
    tokens = run_naive(fp32, naive_prompts, args.max_new_tokens)
    report(
        rows,
        Row(
            "naive pipeline, 1 prompt/call",
            len(naive_prompts),
            tokens,
            time.perf_counter() - start,
            "float32",
        ),
    )

    def batched(model: engine.LoadedModel, label: str) -> None:
        model.generate(requests[:2], engine.SamplingSettings(max_new_tokens=2))  # warm-up
        start = time.perf_counter()
        results = model.generate(requests, settings, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        report(
            rows,
            Row(
                label,
                len(results),
                sum(r.new_tokens for r in results),
                seconds,
                model.identity.dtype,
            ),
        )

    batched(fp32, f"generate, batch {args.batch_size}, fp32")
    if native_bf16:
        bf16 = engine.load_model(args.model, device="cpu", dtype="bfloat16")
        batched(bf16, f"generate, batch {args.batch_size}, bf16")
        del bf16
    engine.clear_model_cache()
    del fp32

    parallel_dtype = "bfloat16" if native_bf16 else "float32"
    started = time.perf_counter()
    with engine.worker_pool(args.model, workers=workers, dtype=parallel_dtype) as pool:
        # Start every worker (import torch, load the model) outside the timed part, and
        # wait for all of them: otherwise a worker still loading leaves its share of the
        # batches to the others.
        engine.worker_pool_start(pool)
        engine.generate_parallel(
            args.model,
            requests[:workers],
            engine.SamplingSettings(max_new_tokens=2),
            batch_size=1,
            pool=pool,
        )
        startup = time.perf_counter() - started
        start = time.perf_counter()
        parallel = engine.generate_parallel(
            args.model, requests, settings, batch_size=args.batch_size, pool=pool
        )
        seconds = time.perf_counter() - start
    label = (
        f"generate_parallel, {parallel.workers} proc x {parallel.threads_per_worker} "
        f"thread, batch <= {args.batch_size}, {parallel_dtype.replace('bfloat16', 'bf16')}"
    )
    report(
        rows,
        Row(
            label,
            len(parallel.results),
            sum(r.new_tokens for r in parallel.results),
            seconds,
            parallel.identity.dtype,
        ),
    )

    naive_rate = rows[0][0].tokens_per_s
    print(
        f"\n{args.max_new_tokens} new tokens max per prompt, top-k 40, temperature 1; "
        f"naive baseline on the first {len(naive_prompts)} of {args.prompts} prompts"
    )
    header = (
        f"{'configuration':<54} {'prompts':>7} {'tokens':>7} {'seconds':>8} "
        f"{'tok/s':>8} {'vs naive':>8} {'peak RSS MiB':>12} {'of bound':>8}"
    )
    print(header)
    print("-" * len(header))
    for row, rss in rows:
        bound = flops.get(row.dtype, flops["float32"]) / (2 * params)
        print(
            f"{row.configuration:<54} {row.prompts:>7} {row.new_tokens:>7} "
            f"{row.seconds:>8.1f} {row.tokens_per_s:>8.1f} "
            f"{row.tokens_per_s / naive_rate:>7.1f}x {rss:>12.0f} "
            f"{row.tokens_per_s / bound:>7.0%}"
        )
    print(
        "\nmachine matmul FLOP/s (1024x1024, all threads): "
        + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in flops.items())
    )
    print(
        "compute bound tokens/s = FLOP/s / (2 x parameters): "
        + ", ".join(f"{k} {v / (2 * params):.0f}" for k, v in flops.items())
    )
    print(f"worker start-up (spawn, import, load; not timed above): {startup:.1f} s")
    best = max((row for row, _ in rows[1:]), key=lambda row: row.tokens_per_s)
    print(
        f"best: {best.configuration}: {best.tokens_per_s:.1f} tokens/s = "
        f"{best.tokens_per_s / naive_rate:.1f}x naive (goal 25x, aim 40x)"
    )
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")
    return [row for row, _ in rows]


if __name__ == "__main__":
    main()
