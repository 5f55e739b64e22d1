"""Import real (or externally generated) articles into the stimulus pool from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from surveys.importers import FORMATS, articles_import, decode_upload, format_from_filename
from surveys.models import Article


class Command(BaseCommand):
    help = (
        "Import articles from a JSON Lines or CSV file, all or nothing: if any line has an "
        "error nothing is written. Articles already in the pool are skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="The .jsonl or .csv file.")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            help="File format; by default taken from the file's extension.",
        )
        parser.add_argument(
            "--origin",
            choices=Article.Origin.values,
            default=Article.Origin.REAL,
            help="real (default), or generated: then each line needs source_id and model.",
        )
        parser.add_argument("--default-license", default="", help="For lines without one.")
        parser.add_argument("--default-outlet", default="", help="For lines without one.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            fmt = options["format"] or format_from_filename(path.name)
            text = decode_upload(path.read_bytes())
        except ValueError as error:
            raise CommandError(str(error)) from None
        result = articles_import(
            text=text,
            fmt=fmt,
            origin=options["origin"],
            default_license=options["default_license"],
            default_outlet=options["default_outlet"],
        )
        if result.errors:
            raise CommandError(
                f"{path}: {len(result.errors)} error(s); nothing was imported.\n"
                + "\n".join(result.errors)
            )
        if options["verbosity"] >= 2:
            for detail in result.skipped_details:
                self.stdout.write(f"skipped {detail}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{path}: created {result.created}, skipped {result.skipped} "
                "(already in the pool or repeated), errors 0"
            )
        )
