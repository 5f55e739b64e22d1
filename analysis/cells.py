"""Typed reads of single cells of the analysis tables.

pandas-stubs types every field of ``DataFrame.itertuples()`` and every element of a
``Series`` as any pandas scalar (a string, a timestamp, NA, ...), while the numeric
columns of the report tables hold ints, floats or NaN. These helpers turn such a cell
into a Python number, and fail loudly on anything that is not one."""

from __future__ import annotations

import math
from typing import SupportsFloat, SupportsInt

import pandas as pd


def cell_float(value: object) -> float:
    """A numeric cell as a float. A missing value (None in an object column, or pandas'
    NA in a nullable column) becomes NaN, which the formatters show as "n/a"."""
    if value is None or value is pd.NA:
        return math.nan
    if isinstance(value, str | SupportsFloat):
        return float(value)
    raise TypeError(f"Expected a number in this table cell, got {value!r}.")


def cell_int(value: object) -> int:
    """A count cell as an int (NaN or a missing value raises, as ``int()`` does)."""
    if isinstance(value, str | SupportsInt):
        return int(value)
    raise TypeError(f"Expected a whole number in this table cell, got {value!r}.")
