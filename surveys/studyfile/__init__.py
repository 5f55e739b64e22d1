"""A study as a file: ``export`` writes a study's design and articles (with their
provenance) as YAML, ``importer`` reads such a file back as a new draft, ``schema``
parses it with line numbers and checks it against ``study.schema.json``, ``checks``
holds the rules the schema cannot state.

``manage.py study_export`` / ``study_import`` and the study admin
(``surveys.admin.studyfile``) call :func:`study_file_export` and
:func:`study_file_import`.
"""

from surveys.studyfile.export import study_file_data, study_file_export
from surveys.studyfile.importer import StudyFileResult, study_file_import
from surveys.studyfile.schema import FORMAT, SCHEMA_PATH, FileError, study_schema

__all__ = [
    "FORMAT",
    "SCHEMA_PATH",
    "FileError",
    "StudyFileResult",
    "study_file_data",
    "study_file_export",
    "study_file_import",
    "study_schema",
]
