"""Print a study's exclusion ledger, credibility rates, comparisons and rating means."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.management.commands._common import study_by_slug
from analysis.presentation import report_as_html, report_as_text
from analysis.services import MIXED_MODEL_MAX_RATINGS_OFFLINE, study_report


class Command(BaseCommand):
    help = (
        "Analyse a study: exclusions, credibility rate per condition with Wilson intervals, "
        "each condition against the reference, the credibility index and Likert means. "
        "--html FILE also writes a self-contained HTML report with the plots inlined."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The study's slug.")
        parser.add_argument(
            "--html", metavar="FILE", help="Also write one self-contained HTML report here."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = study_by_slug(options["slug"])
        path = Path(options["html"]) if options["html"] else None
        # Check before computing or writing anything.
        if path is not None and not path.parent.is_dir():
            raise CommandError(f"The folder {path.parent} does not exist.")
        # Offline, so the mixed model may take longer than a page load affords.
        report = study_report(study=study, mixed_max_ratings=MIXED_MODEL_MAX_RATINGS_OFFLINE)
        self.stdout.write(report_as_text(report), ending="")
        if path is not None:
            path.write_text(report_as_html(report), encoding="utf-8")
            self.stderr.write(f"Wrote {path}.")
