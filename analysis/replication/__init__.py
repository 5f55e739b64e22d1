"""The replication archive of a study (``manage.py replication_package``, the results
page's download): data with pseudonyms, the design, the report and its tables, the
versions, and ``recompute.py``, a standalone script that recomputes the headline table."""

from __future__ import annotations

from analysis.replication.archive import (
    ENTRY_DATE,
    TIMESTAMP_FILE,
    pseudonym,
    replication_archive_write,
)

__all__ = ["ENTRY_DATE", "TIMESTAMP_FILE", "pseudonym", "replication_archive_write"]
