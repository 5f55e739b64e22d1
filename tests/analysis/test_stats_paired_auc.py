"""DeLong's test for two correlated AUCs (``analysis.stats.delong_paired_test``).

Reference values are worked out by hand below (placements, their covariance matrices and
the variance of the difference, DeLong, DeLong & Clarke-Pearson 1988, Biometrics
44:837-845, eq. for var(A1 - A2)), and, for a larger random sample, by the paper's O(mn)
definition with the kernel psi written out here, independent of the mid-rank shortcut
the function uses.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis import stats

# Three generated (positive) and three real (negative) articles, two scores each.
POS_A, NEG_A = [0.9, 0.8, 0.4], [0.7, 0.3, 0.2]
POS_B, NEG_B = [0.6, 0.9, 0.5], [0.8, 0.1, 0.4]
LABELS = [1, 1, 1, 0, 0, 0]


def test_a_six_article_example_matches_the_hand_computation() -> None:
    # By hand. Score A: V10 = [1, 1, 2/3] (AUC 8/9), V01 = [2/3, 1, 1].
    # Score B: V10 = [2/3, 1, 2/3] (AUC 7/9), V01 = [1/3, 1, 1].
    # S10 = [[1/27, 1/54], [1/54, 1/27]], S01 = [[1/27, 2/27], [2/27, 4/27]] (n - 1).
    # var(A - B) = (1/27 + 1/27 - 2/54) / 3 + (1/27 + 4/27 - 4/27) / 3 = 2/81,
    # se = sqrt(2) / 9, z = (1/9) / (sqrt(2) / 9) = 1 / sqrt(2), p = erfc(1/2).
    result = stats.delong_paired_test(POS_A + NEG_A, POS_B + NEG_B, LABELS)
    assert result.auc_first == pytest.approx(8 / 9, abs=1e-12)
    assert result.auc_second == pytest.approx(7 / 9, abs=1e-12)
    assert result.difference == pytest.approx(1 / 9, abs=1e-12)
    assert result.se == pytest.approx(math.sqrt(2) / 9, abs=1e-12)
    assert result.z == pytest.approx(1 / math.sqrt(2), abs=1e-12)
    assert result.p_value == pytest.approx(math.erfc(0.5), abs=1e-12)  # 0.4795
    assert result.ci_low == pytest.approx(1 / 9 - 1.959963984540054 * math.sqrt(2) / 9, abs=1e-9)
    assert result.ci_high == pytest.approx(1 / 9 + 1.959963984540054 * math.sqrt(2) / 9, abs=1e-9)
    # var A = (1/27)/3 + (1/27)/3 = 2/81; var B = (1/27)/3 + (4/27)/3 = 5/81;
    # cov = (1/54)/3 + (2/27)/3 = 5/162, so r = (5/162) / sqrt(2/81 * 5/81).
    assert result.correlation == pytest.approx((5 / 162) / math.sqrt(2 / 81 * 5 / 81), abs=1e-12)
    assert (result.n_pos, result.n_neg) == (3, 3)


def test_each_auc_and_its_variance_agree_with_the_single_auc_function() -> None:
    single = stats.roc_auc(POS_A + NEG_A, LABELS)
    paired = stats.delong_paired_test(POS_A + NEG_A, POS_A + NEG_A, LABELS)
    assert paired.auc_first == paired.auc_second == pytest.approx(single.auc)
    assert paired.se == 0.0
    assert math.isnan(paired.z)
    assert math.isnan(paired.p_value)
    assert paired.correlation == pytest.approx(1.0)


def _delong_by_definition(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """AUC difference and its variance from the paper's kernel, pair by pair."""

    def psi(x: float, z: float) -> float:
        return 1.0 if x > z else 0.5 if x == z else 0.0

    def components(s: np.ndarray) -> tuple[list[float], list[float]]:
        pos, neg = s[y == 1], s[y == 0]
        v10 = [sum(psi(x, z) for z in neg) / len(neg) for x in pos]
        v01 = [sum(psi(x, z) for x in pos) / len(pos) for z in neg]
        return v10, v01

    (a10, a01), (b10, b01) = components(a), components(b)
    m, n = len(a10), len(a01)

    def cov(u: list[float], v: list[float]) -> float:
        mu, mv = sum(u) / len(u), sum(v) / len(v)
        return sum((x - mu) * (z - mv) for x, z in zip(u, v, strict=True)) / (len(u) - 1)

    variance = (cov(a10, a10) + cov(b10, b10) - 2 * cov(a10, b10)) / m + (
        cov(a01, a01) + cov(b01, b01) - 2 * cov(a01, b01)
    ) / n
    return sum(a10) / m - sum(b10) / m, variance


def test_a_random_sample_with_ties_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(2024)
    y = np.array([1] * 23 + [0] * 31)
    a = np.round(rng.normal(size=54) + 0.8 * y, 1)  # rounded: ties within and across groups
    b = np.round(0.5 * a + rng.normal(size=54), 1)
    difference, variance = _delong_by_definition(a, b, y)
    result = stats.delong_paired_test(a, b, y)
    assert result.difference == pytest.approx(difference, abs=1e-12)
    assert result.se == pytest.approx(math.sqrt(variance), abs=1e-12)
    # Flipping a score's direction is the same as negating it.
    flipped = stats.delong_paired_test(a, -b, y, second_higher_means_positive=False)
    assert flipped.p_value == pytest.approx(result.p_value, abs=1e-12)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="equal length"):
        stats.delong_paired_test([1.0, 2.0], [1.0], [1, 0])
    with pytest.raises(ValueError, match="missing values"):
        stats.delong_paired_test([1.0, math.nan], [1.0, 2.0], [1, 0])
    with pytest.raises(ValueError, match="labels must be"):
        stats.delong_paired_test([1.0, 2.0], [1.0, 2.0], [1, 2])
    with pytest.raises(ValueError, match="positives and negatives"):
        stats.delong_paired_test([1.0, 2.0], [1.0, 2.0], [1, 1])


def test_one_item_in_a_class_gives_the_aucs_but_no_test() -> None:
    result = stats.delong_paired_test([0.9, 0.1, 0.2], [0.1, 0.2, 0.3], [1, 0, 0])
    assert result.auc_first == 1.0
    assert result.auc_second == 0.0
    assert math.isnan(result.se)
    assert math.isnan(result.p_value)


def test_two_equally_good_correlated_scores_are_rejected_about_5_percent_of_the_time() -> None:
    # Under the null (both scores are the same noisy signal, with independent noise of
    # equal size) a correct test rejects at alpha = 0.05 in 5% of studies; binomial SD at
    # 1000 repetitions is 0.0069, bounds +- 3.5 SD.
    rng = np.random.default_rng(13)
    reps, rejected = 1000, 0
    y = np.array([1] * 40 + [0] * 40)
    for _ in range(reps):
        signal = rng.normal(size=80) + 1.0 * y
        a = signal + rng.normal(size=80)
        b = signal + rng.normal(size=80)
        rejected += stats.delong_paired_test(a, b, y).p_value < 0.05
    sd = math.sqrt(0.05 * 0.95 / reps)
    assert 0.05 - 3.5 * sd <= rejected / reps <= 0.05 + 3.5 * sd
