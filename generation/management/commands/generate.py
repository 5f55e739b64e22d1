"""`python manage.py generate`: execute a generation run in the foreground.

Examples: ``manage.py generate 12`` executes (or resumes) run 12;
``manage.py generate --model embedded --articles 24 --max-new-tokens 200`` creates a run
from the first 24 real articles of the demo pool and executes it.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation import engine, selection, services, tasks
from generation.models import GenerationRun
from surveys.models import Article


class Command(BaseCommand):
    help = (
        "Execute a generation run (resuming it if it was interrupted), or create one from "
        "the first N real articles of the demo pool with --model and execute it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", nargs="?", type=int, help="An existing run to execute.")
        parser.add_argument(
            "--model",
            help='Create a run with this model: "embedded", gpt2, gpt2-medium, gpt2-large, '
            "gpt2-xl, a model directory or a Hugging Face id.",
        )
        parser.add_argument("--articles", type=int, default=24, help="How many source articles.")
        parser.add_argument("--samples", type=int, default=1, help="Samples per prompt.")
        parser.add_argument("--max-new-tokens", type=int, default=200)
        parser.add_argument("--top-k", type=int, default=40)
        parser.add_argument("--top-p", type=float, default=1.0)
        parser.add_argument("--temperature", type=float, default=1.0)
        parser.add_argument(
            "--repetition-penalty",
            type=float,
            default=1.0,
            help="CTRL-style penalty on tokens already in the prompt or continuation "
            "(1 = off, as in GPT-2's samples; 1.2 is a common choice).",
        )
        parser.add_argument(
            "--min-new-tokens",
            type=int,
            default=0,
            help="Suppress end-of-text until this many tokens are generated.",
        )
        parser.add_argument(
            "--dtype",
            choices=GenerationRun.DType.values,
            default=GenerationRun.DType.AUTO,
            help="Number format of the weights; auto is bfloat16 where the hardware "
            "computes it natively, float32 elsewhere and for GGUF files (the embedded model).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="Processes generating on the CPU: 0 = one per physical core when the run "
            "is big enough (default, or CREDENCE_GENERATION_WORKERS), 1 = this process only.",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--batch-size", type=int, default=16)
        parser.add_argument(
            "--prompt-kind",
            choices=GenerationRun.PromptKind.values,
            default=GenerationRun.PromptKind.LEDE,
        )
        parser.add_argument(
            "--context-articles",
            type=int,
            default=0,
            help="For --prompt-kind headline_lede_context: how many earlier articles.",
        )
        parser.add_argument(
            "--length-match",
            choices=GenerationRun.LengthMatch.values,
            default=GenerationRun.LengthMatch.SOURCE,
            help="Truncate continuations near the real article's length (source), "
            "--word-budget words (fixed), or not at all (none).",
        )
        parser.add_argument("--word-budget", type=int, default=None)
        parser.add_argument(
            "--no-prepend-lede",
            action="store_true",
            help="Generated articles are the continuation only, without the real opening.",
        )
        parser.add_argument(
            "--select",
            choices=selection.MODES,
            help="After the run, approve samples into the stimulus pool by this mode.",
        )
        parser.add_argument("--select-k", type=int, default=None, help="k for --select.")
        parser.add_argument("--select-seed", type=int, default=None, help="Seed of random_k.")
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--approve-all",
            action="store_true",
            help="Approve every sample with usable text into the stimulus pool "
            "(the same as --select all).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Hand the run to the Celery workers (CELERY_BROKER_URL) instead of "
            "executing it in this process; follow it in the admin.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["workers"] is not None and options["workers"] < 0:
            raise CommandError("--workers must be 0 (automatic) or a positive number.")
        run = self._run_of(options)
        if options["queue"]:
            self._queue(run)
            return
        self.stdout.write(f"Executing run {run.pk} ({run.model_name}, {run.samples_total} samples)")
        started = time.monotonic()
        try:
            run = services.run_execute(
                run=run, progress=not options["no_progress"], workers=options["workers"]
            )
        except (engine.ModelUnavailableError, engine.UnknownModelError) as error:
            raise CommandError(str(error)) from None
        except Exception as error:
            raise CommandError(
                f"Run {run.pk} failed: {type(error).__name__}: {error}. "
                f"Run `manage.py generate {run.pk}` again to resume it."
            ) from error
        self._report(run, elapsed=time.monotonic() - started)
        if options["approve_all"] and options["select"] not in (None, selection.ALL):
            raise CommandError("Give either --approve-all or --select, not both.")
        mode = selection.ALL if options["approve_all"] else options["select"]
        if mode:
            self._select(run, mode, options["select_k"], options["select_seed"])

    def _run_of(self, options: dict[str, Any]) -> GenerationRun:
        """The run named by its id, or a new one from --model and its settings."""
        run_id: int | None = options["run_id"]
        if run_id is not None and options["model"]:
            raise CommandError("Give either a run id or --model, not both.")
        if run_id is not None:
            run = GenerationRun.objects.filter(pk=run_id).first()
            if run is None:
                raise CommandError(f"There is no generation run {run_id}.")
            return run
        if options["model"]:
            return self._create(options)
        raise CommandError("Give a run id to execute, or --model to create a run.")

    def _report(self, run: GenerationRun, *, elapsed: float) -> None:
        tokens = services.run_tokens(run=run)
        empty = run.samples.filter(clean_text="").count()
        self.stdout.write(
            self.style.SUCCESS(
                f"Run {run.pk} done: {run.samples_done}/{run.samples_total} samples, "
                f"{tokens} tokens in total; this call took {elapsed:.1f} s."
            )
        )
        last = run.samples.order_by("-id").values_list("settings", flat=True).first() or {}
        if last:
            self.stdout.write(
                f"dtype {last.get('dtype', '?')}, {last.get('workers', '?')} process(es) x "
                f"{last.get('threads_per_worker', '?')} thread(s)."
            )
        if empty:
            self.stdout.write(f"{empty} sample(s) have no complete sentence after clean-up.")

    def _queue(self, run: GenerationRun) -> None:
        try:
            queued = tasks.run_enqueue(run=run)
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None
        except Exception as error:  # kombu raises its own OperationalError, among others
            raise CommandError(
                f"Could not queue run {run.pk}: {type(error).__name__}: {error}. Is Redis "
                "running at CELERY_BROKER_URL?"
            ) from None
        if queued:
            self.stdout.write(f"Queued run {run.pk}: {queued} chunk(s) for the workers.")
        else:
            self.stdout.write(f"Run {run.pk} is already done.")

    def _create(self, options: dict[str, Any]) -> GenerationRun:
        if options["articles"] < 1:
            raise CommandError("--articles must be at least 1.")
        articles = list(Article.objects.real().in_demo_pool().order_by("id")[: options["articles"]])
        if not articles:
            raise CommandError(
                "There are no real articles in the demo pool. Import some first, e.g. "
                "`manage.py import_articles data/wikinews_articles.jsonl`."
            )
        try:
            return services.run_create(
                model_name=options["model"],
                source_articles=articles,
                samples_per_prompt=options["samples"],
                max_new_tokens=options["max_new_tokens"],
                top_k=options["top_k"],
                top_p=options["top_p"],
                temperature=options["temperature"],
                repetition_penalty=options["repetition_penalty"],
                min_new_tokens=options["min_new_tokens"],
                dtype=options["dtype"],
                seed=options["seed"],
                batch_size=options["batch_size"],
                prompt_kind=options["prompt_kind"],
                name=options["name"],
                context_articles=options["context_articles"],
                length_match=options["length_match"],
                word_budget=options["word_budget"],
                prepend_lede=not options["no_prepend_lede"],
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None

    def _select(self, run: GenerationRun, mode: str, k: int | None, seed: int | None) -> None:
        try:
            outcome = services.run_select(
                run=run, mode=mode, k=k, seed=seed, reviewer="manage.py generate"
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(
            f"Approved {len(outcome.approved)} sample(s) into the stimulus pool ({mode})."
        )
        for sample_id in outcome.empty:
            self.stdout.write(f"  skipped sample {sample_id}: no complete sentence after clean-up")
        for problem in outcome.problems:
            self.stdout.write(f"  skipped: {problem}")
