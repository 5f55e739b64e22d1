"""Write a study's ratings as a long CSV, one row per rating, streamed in chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.management.commands._common import study_by_slug
from analysis.services import responses_csv_chunks
from surveys.models import WIKINEWS_ATTRIBUTION


class Command(BaseCommand):
    help = (
        "Export every rating of a study as a long CSV (one row per rating, with the "
        "article's URL and license) to standard output or to a file. Test sessions are "
        "left out unless --include-test."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The study's slug.")
        parser.add_argument(
            "-o", "--output", help="File to write; the attribution goes beside it."
        )
        parser.add_argument(
            "--include-test", action="store_true", help="Also export test/preview sessions."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = study_by_slug(options["slug"])
        chunks = responses_csv_chunks(study=study, include_test=options["include_test"])
        output = options["output"]
        if not output:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            # stdout is the data; the attribution must still reach whoever runs this.
            self.stderr.write(WIKINEWS_ATTRIBUTION)
            return

        path = Path(output)
        if not path.parent.is_dir():
            raise CommandError(f"The folder {path.parent} does not exist.")
        with path.open("w", encoding="utf-8", newline="") as handle:
            for chunk in chunks:
                handle.write(chunk)
        attribution = path.with_name(path.name + ".ATTRIBUTION.txt")
        attribution.write_text(WIKINEWS_ATTRIBUTION + "\n", encoding="utf-8")
        self.stderr.write(f"Wrote {path} and, beside it, {attribution.name}.")
