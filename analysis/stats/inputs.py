"""Input checks every statistics module shares: the critical value of an interval, counts
of a proportion, and the 0/1 answers of a binary question."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps


def z_critical(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return float(sps.norm.ppf(1.0 - (1.0 - confidence) / 2.0))


def check_counts(successes: int, n: int) -> None:
    if n <= 0:
        # An interval for a proportion of nothing is meaningless; say so instead of
        # returning a silent (0, 1) or NaN that would end up in a report.
        raise ValueError(f"n must be positive to estimate a proportion, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")


def binary_values(df: pd.DataFrame) -> pd.DataFrame:
    missing = {"condition", "value_numeric"} - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    data = df.loc[df["value_numeric"].notna(), ["condition", "value_numeric"]]
    bad = ~data["value_numeric"].isin([0.0, 1.0])
    if bad.any():
        examples = sorted(set(data.loc[bad, "value_numeric"].tolist()))[:5]
        raise ValueError(f"value_numeric must be 0 or 1 for a binary question; got {examples}")
    return data


def binary_labels(raw: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Labels of an AUC as (positive mask, positives, negatives): 1/True positive, 0/False
    negative. Raises ValueError for any other label, or a class with no items."""
    y = raw.astype(float)
    if not np.isin(y, [0.0, 1.0]).all():
        raise ValueError("labels must be 1 (positive) or 0 (negative)")
    positive = y == 1.0
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"an AUC needs positives and negatives, got {n_pos} positive(s) and {n_neg} negative(s)"
        )
    return positive, n_pos, n_neg
