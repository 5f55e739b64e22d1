"""Read a study file (YAML) into a new draft study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from surveys.importers import decode_upload
from surveys.models import Team
from surveys.studyfile import study_file_import


class Command(BaseCommand):
    help = (
        "Import a study file as a new draft study, all or nothing: the file is checked "
        "against its JSON Schema and the models first, and any error (with its line and "
        "field) means nothing is written. Articles already in the pool are reused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="The study file (.yaml).")
        parser.add_argument(
            "--team",
            help="Name of the team the study belongs to. Without it the study has no "
            "team, and only superusers see it.",
        )
        parser.add_argument("--slug", help="Import under this slug instead of the file's.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check and count, write nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        team = None
        if options["team"]:
            team = Team.objects.filter(name=options["team"]).first()
            if team is None:
                raise CommandError(f"No team named {options['team']!r}.")
        try:
            text = decode_upload(path.read_bytes())
        except ValueError as error:
            raise CommandError(f"{path}: {error}") from None
        result = study_file_import(
            text=text, team=team, slug=options["slug"], dry_run=options["dry_run"]
        )
        if not result.ok:
            raise CommandError(
                f"{path}: {len(result.errors)} error(s); nothing was imported.\n"
                + "\n".join(str(e) for e in result.errors)
            )
        self.stdout.write(self.style.SUCCESS(f"{path}: {result.summary()}"))
        if not result.dry_run:
            self.stdout.write(
                "The study is a draft: pilot or launch it in the admin. Participants and "
                "answers are not part of a study file."
            )
