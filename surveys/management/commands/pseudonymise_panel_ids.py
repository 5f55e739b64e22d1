"""Replace a closed study's panel ids by keyed hashes, once its participants are paid."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from surveys.models import Study
from surveys.services import StudyStillOpenError, study_pseudonymise_panel_ids


class Command(BaseCommand):
    help = (
        "Pseudonymise the panel ids (Prolific/MTurk participant ids) of a closed study: "
        "each becomes its keyed hash, so analysis and exports are unchanged and the same "
        "id still cannot take part twice, but nobody can tell who took part. Run it once "
        "the participants are paid; it cannot be undone, and running it again changes "
        "nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The study's slug.")

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["slug"]).first()
        if study is None:
            raise CommandError(f'No study "{options["slug"]}".')
        try:
            changed = study_pseudonymise_panel_ids(study=study)
        except StudyStillOpenError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"{study.slug}: {changed} panel id(s) pseudonymised.")
