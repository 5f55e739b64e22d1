"""Writes for generation: create and execute runs, curate their samples.

This is the only place where the engine (torch, no Django) meets the database.

- ``runs``: validate and create a run, its prompts and seeds, and its plan: the chunks
  it is split into (``run_plan``).
- ``execution``: a chunk is the unit of work, made by ``chunks_execute`` wherever it
  runs: one chunk per Celery task (``chunk_execute``; ``generation.tasks.run_enqueue``
  queues them), or all of a run's open chunks in the foreground (``run_execute``:
  ``manage.py generate`` and the demo). Each chunk generates only the (article, sample
  index) pairs that have no sample yet and is saved in one transaction, so a run resumes
  after a crash or ``kill -9`` and a task delivered twice is harmless; the unique
  constraint on run x article x index keeps one copy of each sample.
- ``curation``: quality flags, approve / reject / rank, selection of stimuli.

The queue side (``generation.tasks``) imports these modules; they never import it.
"""

from __future__ import annotations

from generation.services.curation import (
    SelectionOutcome,
    run_flag,
    run_select,
    sample_approve,
    sample_prompt_body,
    sample_rank,
    sample_reject,
)
from generation.services.execution import (
    EngineLoader,
    Generator,
    chunk_execute,
    chunk_size_for,
    chunks_execute,
    default_engine_loader,
    default_workers,
    run_execute,
    run_finish_if_complete,
    run_workers,
    worker_name,
)
from generation.services.runs import (
    MAX_BATCH_SIZE,
    MAX_CONTEXT_ARTICLES,
    MAX_SAMPLES_PER_PROMPT,
    model_dir,
    prompt_build,
    prompt_for,
    run_create,
    run_pending,
    run_plan,
    run_tokens,
    run_validate,
    sample_seed,
    sample_word_budget,
)

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_CONTEXT_ARTICLES",
    "MAX_SAMPLES_PER_PROMPT",
    "EngineLoader",
    "Generator",
    "SelectionOutcome",
    "chunk_execute",
    "chunk_size_for",
    "chunks_execute",
    "default_engine_loader",
    "default_workers",
    "model_dir",
    "prompt_build",
    "prompt_for",
    "run_create",
    "run_execute",
    "run_finish_if_complete",
    "run_flag",
    "run_pending",
    "run_plan",
    "run_select",
    "run_tokens",
    "run_validate",
    "run_workers",
    "sample_approve",
    "sample_prompt_body",
    "sample_rank",
    "sample_reject",
    "sample_seed",
    "sample_word_budget",
    "worker_name",
]
