"""Export a study's data: long and wide CSV (both streamed), Parquet, codebook or manifest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis import exports
from analysis.management.commands._common import study_by_slug
from analysis.services import responses_csv_chunks
from surveys.audit import audit_export
from surveys.models import WIKINEWS_ATTRIBUTION, Study

FORMATS = ["long", "wide", "parquet", "codebook", "manifest"]


class Command(BaseCommand):
    help = (
        "Export a study. long (default): every rating as a CSV row with the article's URL "
        "and license, streamed; wide: one CSV row per participant, streamed; parquet: the "
        "long table as typed Parquet (needs -o); codebook: every column and question explained "
        "(Markdown, or CSV when -o ends in .csv); manifest: every article used, with its "
        "provenance. Test sessions are left out unless --include-test."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The study's slug.")
        parser.add_argument("--format", choices=FORMATS, default="long", help="What to write.")
        parser.add_argument("-o", "--output", help="File to write; the attribution goes beside it.")
        parser.add_argument(
            "--include-test", action="store_true", help="Also export test/preview sessions."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = study_by_slug(options["slug"])
        fmt: str = options["format"]
        include_test: bool = options["include_test"]
        output = options["output"]
        path = Path(output) if output else None
        # Check everything before writing anything.
        if path is not None and not path.parent.is_dir():
            raise CommandError(f"The folder {path.parent} does not exist.")
        if fmt == "parquet" and path is None:
            raise CommandError("Parquet is binary: give a file with -o/--output.")

        audit_export(user=None, study=study, what=f"export_responses --format {fmt}")
        if fmt == "parquet":
            assert path is not None
            self._write_parquet(study, path, include_test=include_test)
            return
        chunks = self._text_chunks(study, fmt, path, include_test=include_test)
        if path is None:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            if fmt != "codebook":
                # stdout is the data; the attribution must still reach whoever runs this.
                self.stderr.write(WIKINEWS_ATTRIBUTION)
            return
        with path.open("w", encoding="utf-8", newline="") as handle:
            for chunk in chunks:
                handle.write(chunk)
        if fmt == "codebook":
            self.stderr.write(f"Wrote {path}.")
            return
        self._attribution_beside(path)
        self.stderr.write(f"Wrote {path} and, beside it, {path.name}.ATTRIBUTION.txt.")

    def _write_parquet(self, study: Study, path: Path, *, include_test: bool) -> None:
        try:
            rows = exports.responses_parquet_write(
                study=study, path=path, include_test=include_test
            )
        except ImportError as error:
            raise CommandError("Parquet needs pyarrow: pip install -r requirements.txt") from error
        self._attribution_beside(path)
        self.stderr.write(f"Wrote {rows} rows to {path} and, beside it, the attribution.")

    @staticmethod
    def _text_chunks(
        study: Study, fmt: str, path: Path | None, *, include_test: bool
    ) -> Iterator[str]:
        """The export as text, in pieces (the long and wide data are streamed)."""
        if fmt == "long":
            return responses_csv_chunks(study=study, include_test=include_test)
        if fmt == "wide":
            return exports.wide_csv_chunks(study=study, include_test=include_test)
        if fmt == "codebook":
            as_csv = path is not None and path.suffix.lower() == ".csv"
            text = (exports.codebook_csv if as_csv else exports.codebook_markdown)(study=study)
            return iter([text])
        return iter([exports.manifest_csv(study=study)])

    def _attribution_beside(self, path: Path) -> None:
        attribution = path.with_name(path.name + ".ATTRIBUTION.txt")
        attribution.write_text(WIKINEWS_ATTRIBUTION + "\n", encoding="utf-8")
