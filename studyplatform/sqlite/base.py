"""Django's SQLite backend, making the database's folder (``var/`` by default) when a
connection is first opened, not when the settings are imported: a process that never
touches the database (mypy, ``manage.py check``, a worker on PostgreSQL) creates nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: Any) -> Any:
        name = self.settings_dict["NAME"]
        # In-memory databases (the tests') and URIs ("file:...") name no folder.
        if not self.is_in_memory_db() and not str(name).startswith("file:"):
            Path(name).parent.mkdir(parents=True, exist_ok=True)
        return super().get_new_connection(conn_params)
