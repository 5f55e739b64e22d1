"""Exact interval, odds ratio, logistic regression and power, against reference values.

Sources:
- [R-binom] R ?binom.test, Mendel's peas: binom.test(c(682, 243), p = 3/4) gives the 95
  percent confidence interval 0.7076683 0.7654066.
- [Agresti] Agresti A, Categorical Data Analysis (3rd ed., 2013), sec. 2.2-3.1: the
  Physicians' Health Study table (placebo 189 heart attacks / 10845 none, aspirin 104 /
  10933): sample odds ratio 1.832, log 0.605, ASE 0.123, 95% interval (1.44, 2.33).
- [R-power] R ?power.prop.test examples: power.prop.test(n = 50, p1 = .50, p2 = .75) gives
  power = 0.7401659; power.prop.test(p1 = .50, p2 = .75, power = .90) gives n = 76.7
  (the root of R's formula is 76.7069; R's uniroot tolerance gives four significant digits).
- [CM15] Cameron AC, Miller DL (2015). A practitioner's guide to cluster-robust inference.
  J Human Resources 50:317-372, sec. VI.A: the usual small-sample factor
  c = G/(G-1) (N-1)/(N-K) on the cluster sandwich (what statsmodels applies by default).
- Closed form: a logistic regression on one binary factor is saturated, so its slope is
  the log of the 2x2 table's odds ratio and its model-based standard error is Woolf's
  sqrt(1/a + 1/b + 1/c + 1/d) (Agresti, sec. 5.2); both are computed here by hand from
  the counts, not with the functions under test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import stats


def test_clopper_pearson_matches_r_binom_test():
    low, high = stats.clopper_pearson_interval(682, 925)  # [R-binom]
    assert low == pytest.approx(0.7076683, abs=1e-7)
    assert high == pytest.approx(0.7654066, abs=1e-7)


def test_clopper_pearson_at_the_edges_is_closed_form():
    # x = 0: upper limit 1 - (alpha/2)^(1/n); x = n: lower limit (alpha/2)^(1/n).
    assert stats.clopper_pearson_interval(0, 20) == pytest.approx((0.0, 1 - 0.025 ** (1 / 20)))
    assert stats.clopper_pearson_interval(20, 20) == pytest.approx((0.025 ** (1 / 20), 1.0))


def test_clopper_pearson_is_wider_than_wilson():
    exact = stats.clopper_pearson_interval(81, 263)
    wilson = stats.wilson_interval(81, 263)
    assert exact[0] < wilson[0]
    assert exact[1] > wilson[1]


@pytest.mark.parametrize(("successes", "n"), [(1, 0), (5, 4), (-1, 3)])
def test_clopper_pearson_rejects_impossible_counts(successes, n):
    with pytest.raises(ValueError, match="n"):
        stats.clopper_pearson_interval(successes, n)


def test_odds_ratio_matches_agresti_aspirin_example():
    result = stats.odds_ratio(189, 189 + 10845, 104, 104 + 10933)  # [Agresti]
    assert result.odds_ratio == pytest.approx(1.832, abs=5e-4)
    assert result.log_odds_ratio == pytest.approx(0.605, abs=5e-4)
    assert result.se_log == pytest.approx(0.123, abs=5e-4)
    assert result.ci_low == pytest.approx(1.44, abs=5e-3)
    assert result.ci_high == pytest.approx(2.33, abs=5e-3)


def test_odds_ratio_with_an_empty_cell_is_undefined():
    result = stats.odds_ratio(5, 5, 3, 10)
    assert math.isnan(result.odds_ratio)
    assert math.isnan(result.ci_low)


def _ratings(counts: dict[str, tuple[int, int]], per_participant: int = 1) -> pd.DataFrame:
    """``yes`` of ``n`` answers per condition; each participant gives
    ``per_participant`` identical answers (1: every rating its own participant)."""
    rows = []
    participant = 0
    for condition, (yes, n) in counts.items():
        for i in range(n):
            participant += 1
            value = 1.0 if i < yes else 0.0
            rows += [
                {"condition": condition, "value_numeric": value, "participant_id": participant}
            ] * per_participant
    return pd.DataFrame(rows)


def test_logistic_slope_is_the_log_odds_ratio_of_the_table():
    data = _ratings({"real": (30, 40), "gpt2": (20, 40), "gpt2-xl": (25, 40)})
    fit = stats.logistic_regression(data, "real", cluster=False)
    table = fit.table.set_index("term")
    assert list(fit.table["term"]) == [stats.INTERCEPT, "gpt2", "gpt2-xl"]
    # By hand: reference odds 30/10; gpt2 odds 20/20; gpt2-xl odds 25/15.
    assert table.loc[stats.INTERCEPT, "log_odds"] == pytest.approx(math.log(3.0), abs=1e-8)
    assert table.loc["gpt2", "log_odds"] == pytest.approx(math.log(1.0 / 3.0), abs=1e-8)
    assert table.loc["gpt2-xl", "odds_ratio"] == pytest.approx((25 / 15) / 3.0, abs=1e-8)
    woolf = math.sqrt(1 / 20 + 1 / 20 + 1 / 30 + 1 / 10)
    assert table.loc["gpt2", "se"] == pytest.approx(woolf, rel=1e-6)
    assert table.loc["gpt2", "ci_low"] == pytest.approx(
        math.log(1 / 3) - 1.959964 * woolf, abs=1e-5
    )
    assert fit.cov_type == "nonrobust"


def test_clustered_errors_equal_plain_ones_with_one_rating_each():
    data = _ratings({"real": (30, 40), "gpt2": (20, 40)})
    plain = stats.logistic_regression(data, "real", cluster=False).table.set_index("term")
    clustered = stats.logistic_regression(data, "real")
    table = clustered.table.set_index("term")
    assert clustered.n_clusters == clustered.n_obs == 80
    assert table.loc["gpt2", "log_odds"] == pytest.approx(plain.loc["gpt2", "log_odds"])
    # Saturated model: the sandwich equals the model-based variance, up to the
    # small-sample factor c = G/(G-1) (N-1)/(N-K) = 80/79 * 79/78 [CM15].
    factor = math.sqrt(80 / 79 * 79 / 78)
    assert table.loc["gpt2", "se"] == pytest.approx(plain.loc["gpt2", "se"] * factor, rel=1e-6)


def test_clustered_errors_do_not_shrink_when_a_participant_repeats_answers():
    twice = _ratings({"real": (30, 40), "gpt2": (20, 40)}, per_participant=2)
    woolf = math.sqrt(1 / 20 + 1 / 20 + 1 / 30 + 1 / 10)
    naive = stats.logistic_regression(twice, "real", cluster=False).table.set_index("term")
    clustered = stats.logistic_regression(twice, "real").table.set_index("term")
    # Counting each participant twice halves the naive variance ...
    assert naive.loc["gpt2", "se"] == pytest.approx(woolf / math.sqrt(2), rel=1e-6)
    # ... but the clustered one still sees 80 independent people: c = 80/79 * 159/158.
    assert clustered.loc["gpt2", "se"] == pytest.approx(
        woolf * math.sqrt(80 / 79 * 159 / 158), rel=1e-6
    )


def test_logistic_regression_rejects_separated_and_missing_data():
    with pytest.raises(ValueError, match="infinite"):
        stats.logistic_regression(_ratings({"real": (10, 10), "gpt2": (3, 10)}), "real")
    with pytest.raises(ValueError, match="reference"):
        stats.logistic_regression(_ratings({"gpt2": (3, 10), "gpt2-xl": (4, 10)}), "real")
    with pytest.raises(ValueError, match="two conditions"):
        stats.logistic_regression(_ratings({"real": (3, 10)}), "real")
    with pytest.raises(ValueError, match="participant_id"):
        stats.logistic_regression(
            _ratings({"real": (3, 10)}).drop(columns="participant_id"), "real"
        )


def test_power_matches_r_power_prop_test():
    assert stats.power_two_proportions(0.5, 0.75, 50) == pytest.approx(0.7401659, abs=1e-7)
    # Equal groups given explicitly are the same design.
    assert stats.power_two_proportions(0.75, 0.5, 50, 50) == pytest.approx(0.7401659, abs=1e-7)


def test_sample_size_matches_r_power_prop_test():
    n = stats.sample_size_two_proportions(0.5, 0.75, power=0.9)  # [R-power]: n = 76.7
    assert n == pytest.approx(76.7, abs=0.05)
    assert n == pytest.approx(76.7069, abs=1e-4)
    # At that n the power formula gives the requested power back.
    assert stats.power_two_proportions(0.5, 0.75, n) == pytest.approx(0.9, abs=1e-9)


def test_power_with_unequal_groups_lies_between_the_equal_designs():
    small = stats.power_two_proportions(0.72, 0.83, 100)
    mixed = stats.power_two_proportions(0.72, 0.83, 100, 300)
    large = stats.power_two_proportions(0.72, 0.83, 300)
    assert small < mixed < large


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p1": 0.5, "p2": 0.5}, "equal"),
        ({"p1": 0.0, "p2": 0.5}, "p1"),
        ({"p1": 0.5, "p2": 0.7, "power": 1.0}, "power"),
    ],
)
def test_sample_size_rejects_impossible_designs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        stats.sample_size_two_proportions(**kwargs)


def test_power_rejects_empty_groups():
    with pytest.raises(ValueError, match="positive"):
        stats.power_two_proportions(0.5, 0.7, 0)
    assert np.isfinite(stats.power_two_proportions(0.5, 0.7, 1))
