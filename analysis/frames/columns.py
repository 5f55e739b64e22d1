"""How the frames read columns: the page size, values the database hands over as text
(converted a whole column at a time), and condition names looked up by id."""

from __future__ import annotations

import pandas as pd
from django.db.models import CharField
from django.db.models.functions import Cast

CHUNK_SIZE = 5000

DATETIME_COLUMNS = ["first_shown_at", "answered_at", "created_at", "updated_at"]

# Read as text and converted a whole column at a time: Django's per-value converters
# (datetimes and UUIDs on SQLite) cost more than the query itself at 10^5+ rows.
_AS_TEXT = {"participant_token", "is_test", *DATETIME_COLUMNS, "consented_at", "completed_at"}


def raw_fields(fields: dict[str, str]) -> list[str | Cast]:
    """Lookups for ``values_list``, with the columns that have per-value converters cast
    to text so the database hands over plain strings, converted later a column at a
    time. (Any converter at all makes Django walk every row in Python.)"""
    return [
        Cast(lookup, output_field=CharField()) if column in _AS_TEXT else lookup
        for column, lookup in fields.items()
    ]


def bool_from_text(column: pd.Series) -> pd.Series:
    """Booleans cast to text: "1"/"0" on SQLite, "true"/"false" on PostgreSQL."""
    return column.astype(str).str.lower().isin(["1", "true", "t"])


def uuid_text(column: pd.Series) -> pd.Series:
    """Canonical dashed UUIDs whether the database stored them as 32 hex digits (SQLite)
    or as a uuid type (PostgreSQL, already dashed)."""
    text = column.astype(str).str.replace("-", "", regex=False).str.lower()
    return (
        text.str.slice(0, 8)
        + "-"
        + text.str.slice(8, 12)
        + "-"
        + text.str.slice(12, 16)
        + "-"
        + text.str.slice(16, 20)
        + "-"
        + text.str.slice(20, 32)
    )


def names_of(ids: pd.Series, names: dict[int, str]) -> pd.Series:
    """Condition ids (None or NaN where a row has none) as names (None there)."""
    return pd.Series(
        [None if pd.isna(pk) else names.get(int(pk)) for pk in ids], index=ids.index, dtype=object
    )
