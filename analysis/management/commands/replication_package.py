"""Write a study's replication archive (see ``analysis.replication``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.management.commands._common import study_by_slug
from analysis.replication import replication_archive_write
from surveys.audit import audit_export


class Command(BaseCommand):
    help = (
        "Write a study's replication archive (a zip to deposit on Dataverse or OSF): README "
        "with the codebook, the study file, the frozen design, the data with panel ids "
        "pseudonymised, the exclusion ledger, the stimulus manifest, the HTML report and its "
        "tables, the software versions and recompute.py, which recomputes the headline table."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The study's slug.")
        parser.add_argument(
            "-o",
            "--output",
            metavar="FILE",
            help="Where to write the zip (default: study-<slug>.zip here).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = study_by_slug(options["slug"])
        path = Path(options["output"] or f"study-{study.slug}.zip")
        if not path.parent.is_dir():
            raise CommandError(f"The folder {path.parent} does not exist.")
        audit_export(user=None, study=study, what="replication archive (replication_package)")
        # Written next to the target and renamed: an interrupted run leaves no half a zip.
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".zip.part")
        try:
            with os.fdopen(handle, "wb") as target:
                names = replication_archive_write(study=study, target=target)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self.stderr.write(f"Wrote {path} ({len(names)} files).")
