"""Scales, t tests, tests across conditions, reliability and detection statistics against
published reference values (never against themselves).

Sources:
- [R-sleep] R ``t.test(extra ~ group, data = sleep)`` (Welch): t = -1.8608,
  df = 17.776, p-value = 0.07939, 95 percent CI -3.3654832 0.2054832; with
  ``var.equal = TRUE``: t = -1.8608, df = 18, p-value = 0.07919, CI -3.363874 0.203874.
  Data: R ``datasets::sleep`` (Cushny & Peebles 1905, via Student 1908).
- [R-plant] R ``summary(aov(weight ~ group, data = PlantGrowth))``: F value 4.846 on
  2 and 27 df, Pr(>F) 0.01591 (Dobson 1983, Table 7.1; R ``datasets::PlantGrowth``).
- [R-kw] R ``?kruskal.test``, Hollander & Wolfe (1973, p. 116) example:
  Kruskal-Wallis chi-squared = 0.77143, df = 2, p-value = 0.68.
- [alpha] Worked example with its data (10 respondents x 4 five-point items), alpha
  0.674, confirmed there with R ``ltm::cronbach.alpha``: thinkdeeply.cc, "Survey
  reliability" (https://thinkdeeply.cc/posts/survey-reliability).
- [MC] Macmillan & Creelman, *Detection Theory: A User's Guide* (2nd ed., 2005), ch. 1:
  H = 0.8, F = 0.2 gives d' = 0.842 - (-0.842) = 1.68 and c = 0.
- [Hautus] Hautus MJ (1995), Behav Res Methods 27:46-51: log-linear correction adds 0.5
  to hit and false-alarm counts and 1 to the trial counts.
- [K2011] Krippendorff K (2011), "Computing Krippendorff's Alpha-Reliability", section C:
  nominal data, 4 observers x 12 units with missing values, alpha = 0.743.
- [GPT3] Brown et al. (2020), "Language Models are Few-Shot Learners", sec. 3.9.4: the
  ratio of correct assignments to non-neutral assignments; "I don't know" reported apart.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import stats

SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_welch_t_test_matches_r_sleep():
    result = stats.t_test(SLEEP_1, SLEEP_2)
    assert result.t == pytest.approx(-1.8608, abs=0.5e-4)
    assert result.df == pytest.approx(17.776, abs=0.5e-3)
    assert result.p_value == pytest.approx(0.07939, abs=0.5e-5)
    assert result.ci_low == pytest.approx(-3.3654832, abs=1e-6)
    assert result.ci_high == pytest.approx(0.2054832, abs=1e-6)
    assert result.method == "Welch two-sample t test"


def test_student_t_test_matches_r_sleep_var_equal():
    result = stats.t_test(SLEEP_1, SLEEP_2, equal_var=True)
    assert result.t == pytest.approx(-1.8608, abs=0.5e-4)
    assert result.df == 18
    assert result.p_value == pytest.approx(0.07919, abs=0.5e-5)
    assert result.ci_low == pytest.approx(-3.363874, abs=1e-6)
    assert result.ci_high == pytest.approx(0.203874, abs=1e-6)


def test_t_test_needs_two_values_per_sample():
    with pytest.raises(ValueError, match="at least two"):
        stats.t_test([1.0], [2.0, 3.0])


PLANT = {
    "ctrl": [4.17, 5.58, 5.18, 6.11, 4.50, 4.61, 5.17, 4.53, 5.33, 5.14],
    "trt1": [4.81, 4.17, 4.41, 3.59, 5.87, 3.83, 6.03, 4.89, 4.32, 4.69],
    "trt2": [6.31, 5.12, 5.54, 5.50, 5.37, 5.29, 4.92, 6.15, 5.80, 5.26],
}


def test_one_way_anova_matches_r_plantgrowth():
    result = stats.one_way_anova(PLANT)
    assert result.statistic == pytest.approx(4.846, abs=0.5e-3)
    assert result.df == (2.0, 27.0)
    assert result.p_value == pytest.approx(0.01591, abs=0.5e-5)


def test_kruskal_wallis_matches_r_hollander_wolfe():
    result = stats.kruskal_wallis(
        {
            "x": [2.9, 3.0, 2.5, 2.6, 3.2],
            "y": [3.8, 2.7, 4.0, 2.4],
            "z": [2.8, 3.4, 3.7, 2.2, 2.0],
        }
    )
    assert result.statistic == pytest.approx(0.77143, abs=0.5e-5)
    assert result.df == (2.0,)
    assert result.p_value == pytest.approx(0.68, abs=0.005)


def test_tests_across_conditions_need_two_groups():
    with pytest.raises(ValueError, match="two groups"):
        stats.one_way_anova({"a": [1.0, 2.0], "b": []})
    with pytest.raises(ValueError, match="two groups"):
        stats.kruskal_wallis({"a": [1.0, 2.0]})


def test_cronbach_alpha_matches_worked_example():
    items = pd.DataFrame(
        [
            [3, 3, 3, 3],
            [3, 3, 4, 3],
            [3, 3, 3, 1],
            [5, 4, 4, 5],
            [2, 1, 4, 4],
            [4, 4, 4, 5],
            [3, 2, 3, 3],
            [3, 4, 3, 3],
            [4, 2, 2, 3],
            [3, 3, 2, 3],
        ],
        columns=["X1", "X2", "X3", "X4"],
    )
    assert stats.cronbach_alpha(items) == pytest.approx(0.674, abs=0.5e-3)


def test_cronbach_alpha_of_constant_answers_is_nan():
    assert math.isnan(stats.cronbach_alpha(pd.DataFrame({"a": [2, 2], "b": [3, 3]})))
    with pytest.raises(ValueError, match="two items"):
        stats.cronbach_alpha(pd.DataFrame({"a": [1, 2]}))


def _long(rows):
    return pd.DataFrame(
        rows, columns=["participant_id", "article_id", "condition", "question_key", "value_numeric"]
    )


def test_credibility_index_rescales_sum_3_to_1_and_12_to_10():
    rows = []
    for pid, values in [(1, (1, 1, 1)), (2, (4, 4, 4)), (3, (3, 2, 4))]:
        rows += [
            (pid, 10, "real", key, v)
            for key, v in zip(stats.CREDIBILITY_ITEMS, values, strict=True)
        ]
    # An incomplete rating (no "clear") is left out, not scored on a shorter scale.
    rows += [(4, 10, "real", "believable", 4.0), (4, 10, "real", "accurate", 4.0)]
    index = stats.credibility_index(_long(rows)).set_index("participant_id")
    assert list(index.index) == [1, 2, 3]
    assert index.loc[1, "index"] == 1.0
    assert index.loc[2, "index"] == 10.0
    assert index.loc[3, "item_sum"] == 9.0
    assert index.loc[3, "index"] == 7.0  # (9 - 3) / 9 * 9 + 1


def test_means_by_condition_t_interval_matches_r_sleep():
    # R t.test(sleep$extra[sleep$group == 2]): mean 2.33, CI 0.8976775 3.7623225.
    frame = pd.DataFrame({"condition": ["g2"] * 10, "index": SLEEP_2})
    row = stats.means_by_condition(frame).iloc[0]
    assert row["mean"] == pytest.approx(2.33)
    assert row["ci_low"] == pytest.approx(0.8976775, abs=1e-6)
    assert row["ci_high"] == pytest.approx(3.7623225, abs=1e-6)


def test_d_prime_textbook_example():
    # Counts that give H = 0.8 and F = 0.2 exactly, without correction.
    result = stats.signal_detection(8, 10, 2, 10, correction=False)
    assert result.d_prime == pytest.approx(1.683, abs=0.5e-3)
    assert result.criterion == pytest.approx(0.0, abs=1e-12)


def test_log_linear_correction_keeps_perfect_scores_finite():
    result = stats.signal_detection(10, 10, 0, 10)
    # [Hautus]: H = 10.5 / 11, F = 0.5 / 11.
    assert result.hit_rate == pytest.approx(10.5 / 11)
    assert result.false_alarm_rate == pytest.approx(0.5 / 11)
    # z(0.954545) = 1.6906 (standard normal table); symmetric, so d' = 2 z and c = 0.
    assert result.d_prime == pytest.approx(2 * 1.6906, abs=1e-3)
    assert result.criterion == pytest.approx(0.0, abs=1e-12)
    assert not math.isfinite(stats.signal_detection(10, 10, 0, 10, correction=False).d_prime)


def test_signal_detection_rejects_impossible_counts():
    with pytest.raises(ValueError, match="hits"):
        stats.signal_detection(11, 10, 0, 10)
    with pytest.raises(ValueError, match="false alarms"):
        stats.signal_detection(1, 10, 0, 0)


def test_krippendorff_alpha_nominal_matches_krippendorff_2011():
    n = None
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    assert stats.krippendorff_alpha_nominal(data) == pytest.approx(0.743, abs=0.5e-3)


def test_krippendorff_alpha_without_variation_is_nan():
    assert math.isnan(stats.krippendorff_alpha_nominal([[1, 1], [1, 1]]))
    assert math.isnan(stats.krippendorff_alpha_nominal(np.array([[1, None], [None, 2]])))


def test_detection_accuracy_leaves_i_dont_know_out_of_the_ratio():
    frame = pd.DataFrame(
        {
            "participant_id": [1, 1, 1, 1, 2, 2],
            "article_origin": ["real", "generated", "generated", "real", "real", "generated"],
            "value": [
                "Very likely written by a human",  # correct
                "Likely written by a machine",  # correct
                "Likely written by a human",  # wrong
                "I don't know",
                "I don\u2019t know",
                "I don't know",
            ],
        }
    )
    table = stats.detection_accuracy(frame).set_index("participant_id")
    # [GPT3] rule: 2 correct of 3 non-neutral; 1 of 4 answers was "I don't know".
    assert table.loc[1, "accuracy"] == pytest.approx(2 / 3)
    assert table.loc[1, "unsure_rate"] == pytest.approx(0.25)
    assert math.isnan(table.loc[2, "accuracy"])
    assert table.loc[2, "unsure_rate"] == 1.0


def test_t_test_of_constant_samples_is_undefined_not_an_error():
    result = stats.t_test([2.0, 2.0], [3.0, 3.0])
    assert result.difference == -1.0
    assert math.isnan(result.t)
    assert math.isnan(result.p_value)
