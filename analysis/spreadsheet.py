"""Cells that leave the site in a CSV file, made safe to open in a spreadsheet.

Participants type free-text answers and panel ids; researchers type condition names,
article titles and question wording. A CSV cell such as ``=HYPERLINK("http://x","y")``
or ``+1+cmd|' /C calc'!A0`` is run as a formula by Excel, LibreOffice and Google Sheets
when the file is opened ("CSV injection", OWASP). Every CSV the site writes (the long
and wide exports, the results page's downloads, the API's ``?format=csv``, the manifest
and the codebook) passes its text cells through :func:`cell_for_spreadsheet` or
:func:`frame_for_spreadsheet`, so the rule lives here only.

The rule (OWASP's): a text cell whose first character, after any leading whitespace, is
``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line feed gets a leading
apostrophe (``'``), which spreadsheets show as text and do not evaluate. A text cell
that is a plain number (``-2``, ``+1``, ``-0.5``, ``1e-3``) is left alone: a spreadsheet
reads it as that number, nothing runs, and a Likert answer of ``-2`` must stay a number
for whoever analyses the file. Numbers, booleans and missing values are never text and
never touched. Every text column is treated alike rather than a list of "typed by
people" columns, because nearly all of them are (answers, panel ids, condition names,
titles, outlets, URLs, model names, question wording) and a list would miss the next
column someone adds; machine-made text (timestamps, UUIDs, keys) never starts with these
characters, so it is unchanged.

Parquet is not a spreadsheet format: its values are written as stored.
"""

from __future__ import annotations

import re

import pandas as pd

# First non-blank character that a spreadsheet takes as the start of a formula; tab,
# CR and LF count even when they come first (OWASP lists tab and CR).
_FORMULA_START = re.compile(r"^[\t\r\n]|^\s*[=+\-@]")
# The first characters that can begin a formula (or, any blank, precede one).
_FIRST = frozenset("=+-@")
# A plain decimal number, as a spreadsheet would read it: no formula.
_PLAIN_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


def text_for_spreadsheet(text: str) -> str:
    """``text`` with an apostrophe in front when a spreadsheet would run it as a formula
    (see the module docstring), else unchanged."""
    if _FORMULA_START.match(text) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def cell_for_spreadsheet(value: object) -> object:
    """A CSV cell: text made safe by :func:`text_for_spreadsheet`; anything else (numbers,
    booleans, None) returned as it is."""
    return text_for_spreadsheet(value) if isinstance(value, str) else value


def column_for_spreadsheet(column: pd.Series) -> pd.Series:
    """A column with every text cell made safe. Columns that hold no text (numbers,
    booleans, timestamps) come back as they are, and so does a text column none of whose
    cells starts with a blank or a formula character (the common case: one pass over the
    first characters, no regular expression). A plain loop rather than pandas' ``.str``
    methods: on object columns those run a Python function per cell too, and leave
    reference cycles behind that keep each export chunk's arrays alive until the
    garbage collector next runs."""
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return column
    values = column.to_numpy(dtype=object)
    risky = [
        index
        for index, value in enumerate(values)
        if isinstance(value, str)
        and (value[:1] in _FIRST or value[:1].isspace())
        and text_for_spreadsheet(value) != value
    ]
    if not risky:
        return column
    safe = column.copy()
    positions = safe.index[risky]
    safe.loc[positions] = ["'" + values[index] for index in risky]
    return safe


def frame_for_spreadsheet(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell safe to open in a spreadsheet (a new frame when any
    cell changed; the columns without text are shared, not copied)."""
    changed = {}
    for name in frame.columns:
        safe = column_for_spreadsheet(frame[name])
        if safe is not frame[name]:
            changed[name] = safe
    return frame.assign(**changed) if changed else frame
