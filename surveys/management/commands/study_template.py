"""Create a draft study from a ready-made design (``surveys.study_templates``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from surveys.models import Team
from surveys.study_templates import TEMPLATES, study_create_from_template


class Command(BaseCommand):
    help = (
        "Create a draft study set up as a published experiment, with its reported result "
        "entered as the original to replicate: e.g. `study_template kreps --slug gpt2-rep "
        "--team 'Media lab'` sets up the GPT-2 credibility design of Kreps, McCain & "
        "Brundage (2022): real articles against GPT-2 355M, 774M and 1.5B, the Kreps "
        "credibility questions. Add each condition's articles in the admin, check the "
        "original rates and sample sizes, then pilot and launch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("template", choices=sorted(TEMPLATES), help="The design to set up.")
        parser.add_argument("--slug", required=True, help="The new study's slug.")
        parser.add_argument(
            "--team",
            required=True,
            help="The name of the team that owns the study (only its members see it).",
        )
        parser.add_argument("--title", default="", help="Title (default: the template's).")

    def handle(self, *args: Any, **options: Any) -> None:
        team = Team.objects.filter(name=options["team"]).first()
        if team is None:
            names = ", ".join(Team.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f'No team "{options["team"]}" (teams: {names}).')
        try:
            study = study_create_from_template(
                name=options["template"],
                slug=options["slug"],
                title=options["title"],
                team=team,
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(f"Created draft study {study.slug} ({study.title}) in team {team}.")
        for condition in study.conditions.order_by("id"):
            rate = (
                f"original rate {condition.original_rate:.0%}"
                if condition.original_rate is not None
                else "original rate not entered"
            )
            reference = ", reference" if condition.is_reference else ""
            self.stdout.write(f"  condition {condition.name}{reference}: {rate}")
        keys = ", ".join(
            study.questions.order_by("scope", "position").values_list("key", flat=True)
        )
        self.stdout.write(f"  questions: {keys}")
        self.stdout.write(
            "Next: add each condition's articles, enter the original sample sizes and an "
            "equivalence bound in the admin, then pilot and launch."
        )
