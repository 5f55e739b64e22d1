"""The statistics against published reference values (never against themselves).

Sources:
- [N98a] Newcombe RG (1998). Two-sided confidence intervals for the single proportion:
  comparison of seven methods. Stat Med 17:857-872, Table I, method 3 (Wilson score).
- [N98b] Newcombe RG (1998). Interval estimation for the difference between independent
  proportions: comparison of eleven methods. Stat Med 17:873-890, Table II, method 10;
  the same values are pinned by the R package propint's tests (m-Py/propint).
- [GAC] R prop.test(c(179, 203), c(300, 400), correct=FALSE): X-squared = 5.4979,
  p-value = 0.01904 (Gustavus Adolphus College, MCS 142 R notes, "R-2-prop").
- [SE] R prop.test(c(350, 25), c(400, 25)) (Yates): X-squared = 2.4399, p-value = 0.1183
  (Cross Validated question 57104).
- [EMORY] R prop.test(x = c(490, 400), n = c(500, 500)) (Yates): X-squared = 80.909,
  p-value < 2.2e-16 (Emory Oxford College math117 tech tips).
- [R-fisher] R ?fisher.test, Agresti's tea tasting table matrix(c(3, 1, 1, 3), 2):
  two-sided p-value = 0.4857.
- [R-t] R t.test on the paired differences of Student's sleep data (group 2 - group 1):
  mean 1.58, 95 percent confidence interval 0.7001142 2.4598858.
- [Holm] Holm S (1979): adjusted p_(i) = max_{j<=i} min(1, (m-j+1) p_(j)); R
  p.adjust(c(.01, .02, .03, .04, .05), "holm") = 0.05 0.08 0.09 0.09 0.09.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis import stats

# Published tables give 4 decimals: agree to half a unit in the last place.
TABLE_TOL = 0.5e-4


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),  # [N98a] Table I
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe_table(successes, n, low, high):
    got_low, got_high = stats.wilson_interval(successes, n)
    assert got_low == pytest.approx(low, abs=TABLE_TOL)
    assert got_high == pytest.approx(high, abs=TABLE_TOL)


@pytest.mark.parametrize(("successes", "n"), [(0, 0), (3, 0), (-1, 10), (11, 10)])
def test_wilson_interval_rejects_impossible_counts(successes, n):
    with pytest.raises(ValueError, match="n"):
        stats.wilson_interval(successes, n)


def test_wilson_interval_rejects_confidence_outside_unit_interval():
    with pytest.raises(ValueError, match="confidence"):
        stats.wilson_interval(5, 10, confidence=95)


def test_wilson_interval_is_narrower_at_lower_confidence():
    low95, high95 = stats.wilson_interval(81, 263)
    low90, high90 = stats.wilson_interval(81, 263, confidence=0.90)
    assert low95 < low90 < 81 / 263 < high90 < high95


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "low", "high"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),  # [N98b] Table II example (a)
        (9, 10, 3, 10, 0.1705, 0.8090),  # example (b)
        (5, 56, 0, 29, -0.0381, 0.1926),  # example (d), a zero cell
    ],
)
def test_difference_interval_matches_newcombe_method_10(x1, n1, x2, n2, low, high):
    result = stats.two_proportion_ztest(x1, n1, x2, n2)
    assert result.difference == pytest.approx(x1 / n1 - x2 / n2)
    assert result.ci_low == pytest.approx(low, abs=TABLE_TOL)
    assert result.ci_high == pytest.approx(high, abs=TABLE_TOL)


def test_ztest_squared_is_r_prop_test_without_correction():
    # [GAC] z is the signed square root of prop.test's uncorrected X-squared.
    result = stats.two_proportion_ztest(179, 300, 203, 400)
    assert result.z**2 == pytest.approx(5.4979, abs=1e-4)
    assert result.z > 0
    assert result.p_value == pytest.approx(0.01904, abs=1e-5)


def test_ztest_sign_follows_first_minus_second():
    result = stats.two_proportion_ztest(203, 400, 179, 300)
    assert result.z < 0
    assert result.difference < 0
    assert result.p_value == pytest.approx(0.01904, abs=1e-5)


def test_ztest_without_variation_is_undefined_not_zero():
    result = stats.two_proportion_ztest(10, 10, 20, 20)
    assert math.isnan(result.z)
    assert math.isnan(result.p_value)


def test_chi_square_without_correction_matches_r():
    result = stats.chi_square_test(179, 300, 203, 400, correction=False)  # [GAC]
    assert result.statistic == pytest.approx(5.4979, abs=1e-4)
    assert result.p_value == pytest.approx(0.01904, abs=1e-5)
    assert result.df == 1


def test_chi_square_with_yates_matches_r():
    result = stats.chi_square_test(350, 400, 25, 25, correction=True)  # [SE]
    assert result.statistic == pytest.approx(2.4399, abs=1e-4)
    assert result.p_value == pytest.approx(0.1183, abs=1e-4)


def test_chi_square_with_yates_large_table_matches_r():
    result = stats.chi_square_test(490, 500, 400, 500)  # [EMORY]; correction is the default
    assert result.statistic == pytest.approx(80.909, abs=1e-3)
    assert result.p_value < 2.2e-16


def test_chi_square_with_an_empty_margin_is_undefined():
    result = stats.chi_square_test(0, 10, 0, 12)
    assert math.isnan(result.statistic)


def test_fisher_exact_matches_r_tea_tasting():
    assert stats.fisher_exact_p(3, 4, 1, 4) == pytest.approx(0.4857, abs=1e-4)  # [R-fisher]


def test_cohens_h_matches_the_arcsine_definition():
    # Cohen (1988): phi = 2 asin(sqrt(p)); for p = 0.5 and 0.25, phi = pi/2 and pi/3.
    assert stats.cohens_h(0.5, 0.25) == pytest.approx(math.pi / 2 - math.pi / 3, abs=1e-12)


def test_holm_adjustment_matches_r_p_adjust():
    adjusted = stats.holm_adjust(np.array([0.01, 0.02, 0.03, 0.04, 0.05]))  # [Holm]
    assert adjusted == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09], abs=1e-12)


def test_holm_adjustment_keeps_nan_out_of_the_count():
    adjusted = stats.holm_adjust(np.array([0.01, np.nan]))
    assert adjusted[0] == pytest.approx(0.01)
    assert math.isnan(adjusted[1])


def _long(counts: dict[str, tuple[int, int]]) -> pd.DataFrame:
    rows = []
    for condition, (yes, n) in counts.items():
        rows += [{"condition": condition, "value_numeric": 1.0}] * yes
        rows += [{"condition": condition, "value_numeric": 0.0}] * (n - yes)
    return pd.DataFrame(rows)


def test_proportions_by_condition_counts_and_wilson_limits():
    table = stats.proportions_by_condition(_long({"real": (81, 263), "gpt2": (15, 148)}))
    assert list(table["condition"]) == ["gpt2", "real"]
    real = table.set_index("condition").loc["real"]
    assert (real["n"], real["successes"]) == (263, 81)
    assert real["share"] == pytest.approx(81 / 263)
    assert real["ci_low"] == pytest.approx(0.2553, abs=TABLE_TOL)  # [N98a]
    assert real["ci_high"] == pytest.approx(0.3662, abs=TABLE_TOL)


def test_proportions_ignore_missing_values_and_reject_non_binary():
    frame = pd.DataFrame({"condition": ["a", "a", "a"], "value_numeric": [1.0, None, 0.0]})
    assert stats.proportions_by_condition(frame)["n"].tolist() == [2]
    with pytest.raises(ValueError, match="0 or 1"):
        stats.proportions_by_condition(pd.DataFrame({"condition": ["a"], "value_numeric": [3.0]}))
    with pytest.raises(ValueError, match="condition"):
        stats.proportions_by_condition(pd.DataFrame({"value_numeric": [1.0]}))


def test_compare_to_reference_reproduces_published_values():
    frame = _long({"generated": (179, 300), "real": (203, 400), "other": (56, 70)})
    table = stats.compare_to_reference(frame, "real")
    assert set(table["condition"]) == {"generated", "other"}
    generated = table.set_index("condition").loc["generated"]
    assert generated["reference"] == "real"
    assert generated["difference"] == pytest.approx(179 / 300 - 203 / 400)
    assert generated["chi2"] == pytest.approx(5.4979, abs=1e-4)  # [GAC]
    assert generated["chi2_p"] == pytest.approx(0.01904, abs=1e-5)
    assert generated["p_value"] == pytest.approx(0.01904, abs=1e-5)
    assert generated["ci_low"] < generated["difference"] < generated["ci_high"]
    # Two comparisons: Holm multiplies the smaller p by 2 and the larger by 1 (monotone).
    ps = table.set_index("condition")["p_value"]
    assert generated["p_holm"] == pytest.approx(max(ps["generated"], 2 * ps["other"]))


def test_compare_to_reference_needs_reference_data():
    with pytest.raises(ValueError, match="reference"):
        stats.compare_to_reference(_long({"generated": (5, 10)}), "real")


def test_likert_means_t_interval_matches_r_t_test():
    differences = [1.2, 2.4, 1.3, 1.3, 0.0, 1.0, 1.8, 0.8, 4.6, 1.4]  # [R-t]
    frame = pd.DataFrame(
        {"condition": "real", "question_key": "accurate", "value_numeric": differences}
    )
    row = stats.likert_means(frame).iloc[0]
    assert row["n"] == 10
    assert row["mean"] == pytest.approx(1.58, abs=1e-12)
    assert row["ci_low"] == pytest.approx(0.7001142, abs=1e-7)
    assert row["ci_high"] == pytest.approx(2.4598858, abs=1e-7)


def test_likert_means_groups_by_condition_and_question():
    frame = pd.DataFrame(
        {
            "condition": ["a", "a", "a", "b"],
            "question_key": ["q1", "q1", "q2", "q1"],
            "value_numeric": [1.0, 3.0, 4.0, 2.0],
        }
    )
    table = stats.likert_means(frame).set_index(["condition", "question_key"])
    assert table.loc[("a", "q1"), "mean"] == 2.0
    assert table.loc[("a", "q1"), "sd"] == pytest.approx(math.sqrt(2))
    assert table.loc[("a", "q2"), "n"] == 1
    assert math.isnan(table.loc[("a", "q2"), "ci_low"])  # one rating: no interval
    assert len(table) == 3


def test_the_statistics_import_nothing_from_the_apps():
    # Imports between the apps run one way (analysis -> surveys); the statistics take
    # what they share with surveys from studyplatform.measures, and no ORM.
    code = (
        "import sys, analysis.stats; "
        "found = {m.split('.')[0] for m in sys.modules} & {'surveys', 'generation'}; "
        "found |= {m for m in sys.modules if m.startswith('django.db')}; "
        "sys.exit(', '.join(sorted(found)) or None)"
    )
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert (run.returncode, run.stderr) == (0, "")
