"""Print a study's exclusion ledger, credibility rates, comparisons and rating means."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from analysis.management.commands._common import study_by_slug
from analysis.presentation import report_as_text
from analysis.services import study_report


class Command(BaseCommand):
    help = (
        "Analyse a study: exclusions, credibility rate per condition with Wilson intervals, "
        "each condition against the reference, and Likert means."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The study's slug.")

    def handle(self, *args: Any, **options: Any) -> None:
        study = study_by_slug(options["slug"])
        self.stdout.write(report_as_text(study_report(study=study)), ending="")
