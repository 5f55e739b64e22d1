"""Two correlated ROC AUCs on the same items: DeLong's paired test.

Neither scipy nor statsmodels tests two AUCs computed on the same items (scipy has the
Mann-Whitney U behind one AUC; statsmodels has no ROC comparison), so the structural
components are computed here, as in R pROC's ``roc.test(method = "delong", paired = TRUE)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats.inputs import binary_labels, z_critical

PAIRED_AUC_METHOD = (
    "DeLong, DeLong & Clarke-Pearson (1988) test of two correlated AUCs (as pROC roc.test, "
    "paired); Wald interval of the difference"
)


@dataclass(frozen=True)
class PairedAucTest:
    """Result of :func:`delong_paired_test`: both AUCs, their difference (first minus
    second) with its DeLong standard error, interval, z and two-sided p, the correlation
    of the two AUC estimates, and the positives and negatives they rest on."""

    auc_first: float
    auc_second: float
    difference: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    correlation: float
    n_pos: int
    n_neg: int
    method: str = PAIRED_AUC_METHOD


def _placements(x: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Mid-ranks: pooled rank minus rank within own group counts the other group's items
    # below, ties half (the same placements as ``separation.roc_auc``).
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    pooled = sps.rankdata(x)
    v10 = (pooled[positive] - sps.rankdata(x[positive])) / n_neg
    v01 = 1.0 - (pooled[~positive] - sps.rankdata(x[~positive])) / n_pos
    return v10, v01


def delong_paired_test(
    first: np.ndarray | pd.Series | list[float],
    second: np.ndarray | pd.Series | list[float],
    labels: np.ndarray | pd.Series | list[bool] | list[int],
    *,
    first_higher_means_positive: bool = True,
    second_higher_means_positive: bool = True,
    confidence: float = 0.95,
) -> PairedAucTest:
    """Do two scores of the same items separate positives from negatives equally well?

    Input: two scores per item (``first[i]`` and ``second[i]`` belong to the same item,
    e.g. an article's detector score and its share of participants who doubted it) and
    the item's label (1/True positive, 0/False negative). A score is negated first when
    its ``..._higher_means_positive`` is False.
    Test: DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44:837-845. Each AUC is the
    mean of its positives' placements ``V10`` (share of negatives beaten, ties half);
    ``S10`` and ``S01`` are the 2x2 sample covariance matrices (n - 1) of the two
    scores' placements of positives and of negatives, and
    ``var(A1 - A2) = (S10_11 + S10_22 - 2 S10_12) / n_pos + (S01_11 + S01_22 - 2 S01_12) / n_neg``.
    ``z = (A1 - A2) / sqrt(var)``, two-sided normal p; the interval is
    ``difference +- z_crit * se``. NaN z, p and interval when the variance is 0 (e.g.
    the two scores order the items identically) or a class has fewer than 2 items.
    Assumptions: items are independent of each other; the pairing (the same items under
    both scores) is what the covariance accounts for.

    Raises ValueError for mismatched lengths, missing scores, labels other than 0/1, or a
    class with no items.
    """
    z_crit = z_critical(confidence)
    a = np.asarray(first, dtype=float)
    b = np.asarray(second, dtype=float)
    raw = np.asarray(labels)
    if a.ndim != 1 or a.shape != b.shape or raw.shape != a.shape:
        raise ValueError(
            f"both scores and the labels must be 1-D and of equal length, got {a.shape}, "
            f"{b.shape} and {raw.shape}"
        )
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("scores contain missing values; keep the items both scores have")
    positive, n_pos, n_neg = binary_labels(raw)
    a = a if first_higher_means_positive else -a
    b = b if second_higher_means_positive else -b
    v10_a, v01_a = _placements(a, positive)
    v10_b, v01_b = _placements(b, positive)
    auc_a, auc_b = float(v10_a.mean()), float(v10_b.mean())
    difference = auc_a - auc_b
    nan = math.nan
    if n_pos < 2 or n_neg < 2:
        return PairedAucTest(auc_a, auc_b, difference, nan, nan, nan, nan, nan, nan, n_pos, n_neg)
    s10 = np.cov(np.vstack([v10_a, v10_b]), ddof=1)
    s01 = np.cov(np.vstack([v01_a, v01_b]), ddof=1)
    var_a = s10[0, 0] / n_pos + s01[0, 0] / n_neg
    var_b = s10[1, 1] / n_pos + s01[1, 1] / n_neg
    covariance = s10[0, 1] / n_pos + s01[0, 1] / n_neg
    variance = float(var_a + var_b - 2.0 * covariance)
    correlation = float(covariance / math.sqrt(var_a * var_b)) if var_a > 0 and var_b > 0 else nan
    # Rounding can leave a tiny negative or positive variance for identical orderings.
    if variance <= 1e-15:
        return PairedAucTest(
            auc_a, auc_b, difference, 0.0, nan, nan, nan, nan, correlation, n_pos, n_neg
        )
    se = math.sqrt(variance)
    z = difference / se
    return PairedAucTest(
        auc_first=auc_a,
        auc_second=auc_b,
        difference=difference,
        se=se,
        ci_low=difference - z_crit * se,
        ci_high=difference + z_crit * se,
        z=z,
        p_value=float(2.0 * sps.norm.sf(abs(z))),
        correlation=correlation,
        n_pos=n_pos,
        n_neg=n_neg,
    )
