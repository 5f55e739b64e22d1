"""Write a study's design and articles as a study file (YAML)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from surveys.models import Study
from surveys.studyfile import study_file_export


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, so that a
    crash leaves the old file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = (
        "Write a study as a file: design, conditions, questions with their scoring, checks, "
        "exclusion rules, quotas, texts, and its articles with their source or generation "
        "provenance. Participants and answers are not included. The same study always "
        "gives the same bytes, so the file can live in version control."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The study's slug.")
        parser.add_argument("-o", "--output", help="The file to write (default: standard output).")

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["slug"]).first()
        if study is None:
            raise CommandError(f"No study with the slug {options['slug']!r}.")
        text = study_file_export(study=study)
        if not options["output"]:
            self.stdout.write(text, ending="")
            return
        path = Path(options["output"])
        if not path.parent.is_dir():
            raise CommandError(f"No such folder: {path.parent}")
        write_atomically(path, text)
        self.stderr.write(f"Wrote {path} ({len(text.encode('utf-8'))} bytes).")
