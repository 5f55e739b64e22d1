"""Fill a study with simulated participants who take it through the participant pages.

python manage.py simulate_participants demo --n 400 --rates real=0.83,generated=0.72
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from surveys.models import Study
from surveys.simulation import SimulationError, simulate


def parse_rates(text: str) -> dict[str, float]:
    """``real=0.83,generated=0.72`` -> {"real": 0.83, "generated": 0.72}."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise CommandError(f'Bad rate "{part}": write condition=probability, e.g. real=0.83.')
        try:
            rates[name.strip()] = float(value)
        except ValueError:
            raise CommandError(f'Bad rate "{part}": {value!r} is not a number.') from None
    if not rates:
        raise CommandError("Give --rates, e.g. --rates real=0.83,generated=0.72.")
    return rates


class Command(BaseCommand):
    help = (
        "Drive simulated participants through the real participant pages (in-process, or "
        "over HTTP with --base-url). Each answers the credibility question yes with the "
        "rate of its condition. Panel ids are SIM-<seed>-<i>: a rerun resumes, never duplicates."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug", help="The study's slug.")
        parser.add_argument("--n", type=int, default=100, help="Number of participants.")
        parser.add_argument(
            "--rates",
            required=True,
            help="True credibility rate per condition, e.g. real=0.83,generated=0.72.",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--dropout", type=float, default=0.0, help="Fraction who abandon at a random step."
        )
        parser.add_argument(
            "--fail-attention",
            type=float,
            default=0.0,
            help="Fraction who answer the attention check wrongly.",
        )
        parser.add_argument(
            "--fail-comprehension",
            type=float,
            default=0.0,
            help="Fraction who answer the comprehension questions wrongly on every try "
            "(and are screened out).",
        )
        parser.add_argument(
            "--base-url",
            default=None,
            help="Use real HTTP against a running server, e.g. http://127.0.0.1:8000.",
        )
        parser.add_argument(
            "--test",
            action="store_true",
            help="Enrol flagged preview participants (excluded from analysis); also works "
            "for draft and pilot studies.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["slug"]).first()
        if study is None:
            raise CommandError(f'No study with slug "{options["slug"]}".')
        try:
            summary = simulate(
                study=study,
                n=options["n"],
                rates=parse_rates(options["rates"]),
                seed=options["seed"],
                dropout=options["dropout"],
                fail_attention=options["fail_attention"],
                fail_comprehension=options["fail_comprehension"],
                base_url=options["base_url"],
                progress=not options["no_progress"],
                test=options["test"],
            )
        except SimulationError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(summary.table())
        if summary.errors:
            raise CommandError(f"{len(summary.errors)} simulated participants hit an error.")
