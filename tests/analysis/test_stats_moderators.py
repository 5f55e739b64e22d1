"""Condition x moderator logistic regression, against closed forms of the saturated model.

Sources:
- [Agresti] Agresti A, Categorical Data Analysis (3rd ed., 2013), ch. 5 (logit models for
  2x2xK tables) and sec. 3.1: a logistic model with two binary factors and their
  interaction is saturated, so its ML fit reproduces the cell logits. The interaction is
  then the log of the ratio of the two odds ratios, log[(a1 d1 / b1 c1) / (a2 d2 / b2 c2)],
  with model-based standard error sqrt(sum of 1/count over the eight cells) (the
  delta-method / Woolf variance of a sum of independent log odds). Computed here by hand
  from the counts, not with the function under test.
- [CM15] Cameron & Miller (2015), sec. VI.A: statsmodels' cluster sandwich carries the
  factor G/(G-1) (N-1)/(N-K); with one rating per participant in a saturated model the
  sandwich equals the model-based variance up to that factor.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import stats

# condition, moderator level -> (yes, no)
TABLE = {
    ("real", "Democrat"): (40, 10),
    ("real", "Republican"): (30, 20),
    ("gpt2", "Democrat"): (25, 25),
    ("gpt2", "Republican"): (28, 22),
}


def _people(table: dict[tuple[str, object], tuple[int, int]], column: str) -> pd.DataFrame:
    rows = []
    for (condition, level), (yes, no) in table.items():
        for i in range(yes + no):
            rows.append(
                {
                    "participant_id": len(rows) + 1,
                    "condition": condition,
                    column: level,
                    "value_numeric": 1.0 if i < yes else 0.0,
                }
            )
    return pd.DataFrame(rows)


def _log_ratio_of_odds_ratios() -> tuple[float, float]:
    def log_odds(cell: tuple[str, str]) -> float:
        yes, no = TABLE[cell]
        return math.log(yes / no)

    estimate = (log_odds(("gpt2", "Republican")) - log_odds(("real", "Republican"))) - (
        log_odds(("gpt2", "Democrat")) - log_odds(("real", "Democrat"))
    )
    se = math.sqrt(sum(1 / yes + 1 / no for yes, no in TABLE.values()))
    return estimate, se


def test_categorical_interaction_is_the_log_ratio_of_odds_ratios():
    data = _people(TABLE, "party_id")
    fit = stats.moderator_logistic_regression(data, "real", "party_id", cluster=False)
    table = fit.table.set_index("term")
    estimate, se = _log_ratio_of_odds_ratios()  # [Agresti]
    term = "gpt2:party_id[Republican]"
    assert fit.interactions == [term]
    assert fit.moderator_reference == "Democrat"
    assert table.loc[term, "log_odds"] == pytest.approx(estimate, abs=1e-8)
    assert table.loc[term, "se"] == pytest.approx(se, rel=1e-6)
    assert table.loc[term, "ci_low"] == pytest.approx(estimate - 1.959964 * se, abs=1e-5)
    assert table.loc[term, "odds_ratio"] == pytest.approx(math.exp(estimate), rel=1e-7)
    # The condition's own term is its log odds ratio among Democrats (the reference).
    assert table.loc["gpt2", "log_odds"] == pytest.approx(math.log((25 / 25) / (40 / 10)), abs=1e-8)
    # One interaction term: the Wald chi-square is z squared, on 1 df.
    assert fit.wald_df == 1
    assert fit.wald_chi2 == pytest.approx((estimate / se) ** 2, rel=1e-6)
    assert fit.wald_p == pytest.approx(math.erfc(abs(estimate / se) / math.sqrt(2)), rel=1e-6)
    assert fit.lr_chi2 > 0
    assert fit.n_obs == 200
    assert fit.dropped == 0


def test_clustered_interaction_error_carries_the_small_sample_factor():
    data = _people(TABLE, "party_id")
    fit = stats.moderator_logistic_regression(data, "real", "party_id")
    _, se = _log_ratio_of_odds_ratios()
    # One rating per participant, saturated model: c = G/(G-1) (N-1)/(N-K) = 200/196 [CM15].
    term = fit.table.set_index("term").loc["gpt2:party_id[Republican]"]
    assert term["se"] == pytest.approx(se * math.sqrt(200 / 196), rel=1e-6)
    assert fit.cov_type == "cluster"
    assert fit.n_clusters == 200


def test_numeric_moderator_slope_is_the_interaction_per_unit():
    # Ideology observed at 2 and 6 only: the model is again saturated, and the
    # interaction per ideology point is the log ratio of odds ratios over 4 points.
    relabelled = {
        (c, 2 if level == "Democrat" else 6): counts for (c, level), counts in TABLE.items()
    }
    data = _people(relabelled, "ideology")
    fit = stats.moderator_logistic_regression(data, "real", "ideology", numeric=True, cluster=False)
    table = fit.table.set_index("term")
    estimate, se = _log_ratio_of_odds_ratios()
    assert table.loc["gpt2:ideology", "log_odds"] == pytest.approx(estimate / 4, abs=1e-8)
    assert table.loc["gpt2:ideology", "se"] == pytest.approx(se / 4, rel=1e-6)
    # Centred at the mean ideology (4.0 here): the condition's log odds ratio there is
    # halfway between its values at 2 and at 6.
    at_2 = math.log((25 / 25) / (40 / 10))
    at_6 = math.log((28 / 22) / (30 / 20))
    assert table.loc["gpt2", "log_odds"] == pytest.approx((at_2 + at_6) / 2, abs=1e-8)
    assert fit.moderator_reference is None


def test_missing_moderator_answers_are_left_out_and_counted():
    data = _people(TABLE, "party_id")
    data.loc[data.index[:7], "party_id"] = None
    fit = stats.moderator_logistic_regression(data, "real", "party_id")
    assert fit.dropped == 7
    assert fit.n_obs == 193


def test_three_party_levels_give_a_two_df_wald_test():
    rng = np.random.default_rng(11)
    rows = []
    for pid in range(600):
        condition = ["real", "gpt2"][pid % 2]
        party = ["Democrat", "Independent", "Republican"][pid % 3]
        rate = 0.8 if condition == "real" else 0.65
        rows.append(
            {
                "participant_id": pid,
                "condition": condition,
                "party_id": party,
                "value_numeric": float(rng.random() < rate),
            }
        )
    fit = stats.moderator_logistic_regression(pd.DataFrame(rows), "real", "party_id")
    assert fit.wald_df == 2
    assert fit.interactions == ["gpt2:party_id[Independent]", "gpt2:party_id[Republican]"]
    assert 0.0 <= fit.wald_p <= 1.0


def test_moderator_regression_rejects_what_it_cannot_estimate():
    data = _people(TABLE, "party_id")
    with pytest.raises(ValueError, match="missing column"):
        stats.moderator_logistic_regression(data, "real", "ideology")
    confounded = data.assign(
        party_id=np.where(data["condition"] == "real", "Democrat", "Republican")
    )
    with pytest.raises(ValueError, match="confounded"):
        stats.moderator_logistic_regression(confounded, "real", "party_id")
    single = data.assign(party_id="Democrat")
    with pytest.raises(ValueError, match="single value"):
        stats.moderator_logistic_regression(single, "real", "party_id")
    empty_cell = _people({**TABLE, ("gpt2", "Republican"): (50, 0)}, "party_id")
    with pytest.raises(ValueError, match="same"):
        stats.moderator_logistic_regression(empty_cell, "real", "party_id")
    with pytest.raises(ValueError, match="numeric"):
        stats.moderator_logistic_regression(data, "real", "party_id", numeric=True)
