"""The replication archive: one zip a researcher can deposit (Dataverse, OSF) and a
reviewer can re-run.

Flat file names, the README first, no absolute path anywhere. Every member but
``created.txt`` is a function of the study's data and the installed software, and the zip
itself is written with a fixed entry date, fixed permissions and a fixed order, so the same
study gives the same bytes apart from that one file (a deposit can be checked by hash).
Panel ids and participation tokens never enter it: both are replaced by keyed pseudonyms
(``surveys.privacy.keyed_hash``, keyed per study), so rows of one participant stay
joinable across the files and nothing can be matched with the panel's records or with
another study's archive without the site's key.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from importlib import resources
from typing import IO

import pandas as pd
from django.utils import timezone

from analysis import exports
from analysis.preregistration import preregistration_markdown
from analysis.presentation import report_as_html
from analysis.replication.readme import readme_text
from analysis.replication.versions import versions_text
from analysis.services import (
    MIXED_MODEL_MAX_RATINGS_OFFLINE,
    StudyReport,
    responses_csv_chunks,
    study_report,
)
from analysis.spreadsheet import frame_for_spreadsheet
from analysis.stats import COMPARISON_COLUMNS, LOGISTIC_COLUMNS, PROPORTION_COLUMNS
from surveys.models import Study
from surveys.privacy import keyed_hash
from surveys.services.lifecycle import study_design_document, study_design_hash
from surveys.studyfile import study_file_export

# The zip format cannot say "no date"; its earliest date keeps every build alike.
ENTRY_DATE = (1980, 1, 1, 0, 0, 0)
TIMESTAMP_FILE = "created.txt"
# Columns that identify a person or open their participation, and what replaces them.
PSEUDONYMISED = {
    "panel_pid": "panel_pid_pseudonym",
    "participant_token": "participant_token_pseudonym",
}
_GENERATED = re.compile(r"generated \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")


def pseudonym(*, study: Study, column: str, value: str) -> str:
    """The keyed pseudonym of ``value`` (a panel id or a participation token) in this
    study's archive: HMAC-SHA256 under the site's pseudonym key, with a purpose naming the
    study and the column, so it differs from the hash stored for enrolment and from every
    other study's archive. Empty for an empty value."""
    return keyed_hash(value=value, purpose=f"replication-archive\x1f{study.slug}\x1f{column}")


def pseudonymised_csv(*, study: Study, chunks: Iterable[str]) -> Iterator[str]:
    """CSV text pieces (the header in the first) with the ``PSEUDONYMISED`` columns'
    values replaced by :func:`pseudonym` and their headers renamed. Each piece is whole
    rows, as the exports yield them."""
    positions: dict[int, str] = {}
    header = True
    for chunk in chunks:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in csv.reader(io.StringIO(chunk, newline="")):
            if header:
                positions = {i: name for i, name in enumerate(row) if name in PSEUDONYMISED}
                writer.writerow([PSEUDONYMISED.get(name, name) for name in row])
                header = False
                continue
            for i, column in positions.items():
                row[i] = pseudonym(study=study, column=column, value=row[i])
            writer.writerow(row)
        yield out.getvalue()


def _csv(frame: pd.DataFrame) -> str:
    return frame_for_spreadsheet(frame).to_csv(index=False, lineterminator="\n")


def ledger_csv(report: StudyReport) -> str:
    """The exclusion ledger: one row per step, how many it removed and how many remain."""
    rows = [[s.key, s.label, s.excluded, s.remaining] for s in report.ledger]
    return _csv(pd.DataFrame(rows, columns=["step", "label", "excluded", "remaining"]))


def table_csvs(report: StudyReport) -> dict[str, str]:
    """The report's headline tables at full precision (the report prints them rounded)."""
    regression = (
        report.regression.table
        if report.regression is not None
        else pd.DataFrame(columns=LOGISTIC_COLUMNS)
    )
    tables = {
        "table_proportions.csv": report.proportions.reindex(columns=PROPORTION_COLUMNS),
        "table_comparisons.csv": report.comparisons.reindex(columns=COMPARISON_COLUMNS),
        "table_regression.csv": regression,
        "table_power.csv": report.power,
        "table_likert.csv": report.likert,
    }
    return {name: _csv(frame) for name, frame in tables.items()}


def design_json(*, study: Study) -> str:
    """The design document Credence hashes, with the hash frozen at launch (or, for a
    draft, the current one) and the hash of the document as it is now."""
    document = study_design_document(study=study)
    frozen = study.design_hash if study.is_design_locked else ""
    return (
        json.dumps(
            {
                "design_hash": frozen or study_design_hash(study=study),
                "design_hash_frozen": bool(frozen),
                "design_hash_of_document": study_design_hash(study=study),
                "status": study.status,
                "document": document,
            },
            sort_keys=True,
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )


def report_html(report: StudyReport) -> str:
    """The self-contained HTML report, its "generated" minute replaced by a pointer to
    ``created.txt`` (the one file allowed to differ between builds)."""
    return _GENERATED.sub(f"generated at the time in {TIMESTAMP_FILE}", report_as_html(report))


def recompute_source() -> str:
    return resources.files("analysis.replication").joinpath("recompute.py").read_text("utf-8")


def _analysis_json(report: StudyReport) -> str:
    settings = {
        "binary_question": report.binary_question,
        "reference": report.reference,
        "confidence": 0.95,
    }
    return json.dumps(settings, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _requirements() -> str:
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for name in ("numpy", "pandas", "scipy", "statsmodels"):
        try:
            lines.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            lines.append(name)
    return "\n".join(lines) + "\n"


def _members(*, study: Study, mixed_max_ratings: int | None) -> Iterator[tuple[str, Iterable[str]]]:
    """(name, text pieces) for each member, README first, then by name."""
    report = study_report(study=study, mixed_max_ratings=mixed_max_ratings)
    long = pseudonymised_csv(study=study, chunks=responses_csv_chunks(study=study))
    wide = pseudonymised_csv(study=study, chunks=exports.wide_csv_chunks(study=study))
    members: dict[str, Iterable[str]] = {
        "analysis.json": [_analysis_json(report)],
        "codebook.md": [exports.codebook_markdown(study=study)],
        TIMESTAMP_FILE: [timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ") + "\n"],
        "design.json": [design_json(study=study)],
        "exclusion_ledger.csv": [ledger_csv(report)],
        "participants_wide.csv": wide,
        "recompute.py": [recompute_source()],
        "report.html": [report_html(report)],
        "requirements.txt": [_requirements()],
        "responses_long.csv": long,
        "stimulus_manifest.csv": [exports.manifest_csv(study=study)],
        "study.yaml": [study_file_export(study=study)],
        "versions.txt": [versions_text()],
        **table_csvs(report),
    }
    if study.launched_at is not None:
        # As it read at the launch: the same bytes however late the archive is built.
        members["preregistration.md"] = [
            preregistration_markdown(study=study, as_of=study.launched_at)
        ]
    yield "README.md", [readme_text(study=study, report=report, files=sorted(members))]
    for name in sorted(members):
        yield name, members[name]


def replication_archive_write(
    *,
    study: Study,
    target: IO[bytes],
    mixed_max_ratings: int | None = MIXED_MODEL_MAX_RATINGS_OFFLINE,
) -> list[str]:
    """Write the study's replication archive as a zip to ``target`` (a binary file open
    for writing); the member names, in order. The big CSVs are streamed into the zip a
    chunk at a time, never held whole. ``mixed_max_ratings`` as ``study_report``'s: by
    default the offline limit of ``manage.py analyze``; the results page passes None (its
    page-load limit), so above that size its report.html leaves the mixed model out."""
    names: list[str] = []
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, pieces in _members(study=study, mixed_max_ratings=mixed_max_ratings):
            info = zipfile.ZipInfo(name, date_time=ENTRY_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix, whatever the building machine
            with archive.open(info, "w", force_zip64=True) as member:
                for piece in pieces:
                    member.write(piece.encode("utf-8"))
            names.append(name)
    return names
