"""`python manage.py demo`: the whole study loop on one machine, then serve the site."""

from __future__ import annotations

import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.engine import ModelUnavailableError


class Command(BaseCommand):
    help = (
        "Import the bundled real articles, generate machine-written ones from their ledes, "
        "build and launch a demo study, simulate participants, print the results and serve "
        "the site on 127.0.0.1:8000."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--model",
            default="embedded",
            help='Model to generate with: "embedded" (offline SmolLM2-135M, the default), '
            "a GPT-2 size (gpt2, gpt2-medium, gpt2-large, gpt2-xl) or a local directory.",
        )
        parser.add_argument("--articles", type=int, default=24, help="Source articles (ledes).")
        parser.add_argument("--max-new-tokens", type=int, default=200)
        parser.add_argument("--participants", type=int, default=400)
        parser.add_argument(
            "--rates",
            default="real=0.83,generated=0.72",
            help="True credible rates of the simulated participants.",
        )
        parser.add_argument("--no-serve", action="store_true", help="Stop before serving.")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        from studyplatform import demo
        from surveys.management.commands.simulate_participants import parse_rates
        from surveys.simulation import SimulationError, simulate

        started = time.monotonic()
        # Checked before anything slow runs, so a typo fails at once.
        rates = parse_rates(options["rates"])
        self._step("Migrating the database")
        call_command("migrate", interactive=False, verbosity=0)

        self._step("Importing the bundled Wikinews articles")
        created = demo.demo_import_articles()
        self.stdout.write(f"  {created} new articles")

        sources = demo.demo_source_articles(count=options["articles"])
        self._step(f"Generating {len(sources)} articles with {options['model']}")
        try:
            run = demo.demo_generate(
                model_name=options["model"],
                sources=sources,
                max_new_tokens=options["max_new_tokens"],
            )
        except ModelUnavailableError as error:
            raise CommandError(str(error)) from None
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        if run.status != run.Status.DONE:
            raise CommandError(f"Generation failed: {run.error}")
        generated = demo.demo_approve(run=run)
        identity = run.model_identity or {}
        label = str(identity.get("label") or run.model_name)
        self.stdout.write(f"  {len(generated)} generated articles approved ({label})")

        self._step("Building the demo study")
        study = demo.demo_study(
            real=[a.source_article for a in generated if a.source_article],
            generated=generated,
            model_label=label,
        )

        self._step(f"Simulating {options['participants']} participants through the site")
        try:
            simulate(study=study, n=options["participants"], rates=rates, seed=0, progress=True)
        except SimulationError as error:
            raise CommandError(str(error)) from None

        self._step("Results")
        call_command("analyze", study.slug, stdout=self.stdout)

        password = demo.demo_admin_login()
        base = f"http://127.0.0.1:{options['port']}"
        self.stdout.write(
            self.style.SUCCESS(f"\nDemo ready in {time.monotonic() - started:.0f} s.")
            + f"\n  Participant link: {base}/s/{study.slug}/?PROLIFIC_PID=you-{int(time.time())}"
            + f"\n  Results page:     {base}/analysis/{study.slug}/"
            + f"\n  Admin:            {base}/admin/  (user: admin, password: {password})\n"
        )
        if not options["no_serve"]:
            call_command("runserver", f"127.0.0.1:{options['port']}", use_reloader=False)

    def _step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"==> {text}"))
