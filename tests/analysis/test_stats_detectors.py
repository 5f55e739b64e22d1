"""ROC AUC with DeLong intervals, detector and human separation, disagreements: checked
against published values and hand computations (never against the code itself).

Sources:
- [HM82] Hanley JA, McNeil BJ (1982). The meaning and use of the area under a receiver
  operating characteristic (ROC) curve. Radiology 143:29-36, Table I: 109 CT images rated
  1..5, normal (n=58) counts [33, 6, 6, 11, 2], abnormal (n=51) counts [3, 2, 2, 11, 33];
  area 0.893 with SE 0.032 (their closed-form SE, eq. 2 with Q1 = A/(2-A),
  Q2 = 2A^2/(1+A)).
- [CV] The same table in R (Cross Validated, "How to calculate the area under the ROC
  curve", answer by K. O. Hufthammer): trapezoidal area, outer-product concordance,
  rms::rcorr.cens and caTools::colAUC all give 0.8931711; wilcox.test(abnorm, norm)
  gives W = 2642 (= 0.8931711 * 51 * 58).
- [DeLong88] DeLong ER, DeLong DM, Clarke-Pearson DL (1988). Biometrics 44:837-845:
  var = S10/m + S01/n, S10, S01 the (n-1)-denominator variances of the structural
  components V10(X_i) = mean_j psi(X_i, Y_j), V01(Y_j) = mean_i psi(X_i, Y_j), with
  psi = 1 if X > Y, 1/2 if tied, 0 otherwise. No published DeLong SE for [HM82] was
  found, so the SE is checked (a) against tiny cases worked by hand below and (b) on
  [HM82] against the definition evaluated by brute force over all 2958 pairs
  (a different algorithm from the mid-rank one in analysis.stats), and only loosely
  against HM82's own (different) SE estimator.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import stats

NORMAL_COUNTS = [33, 6, 6, 11, 2]
ABNORMAL_COUNTS = [3, 2, 2, 11, 33]
Z95 = 1.959963984540054


def _hm82() -> tuple[np.ndarray, np.ndarray]:
    ratings = np.arange(1, 6)
    scores = np.concatenate(
        [np.repeat(ratings, ABNORMAL_COUNTS), np.repeat(ratings, NORMAL_COUNTS)]
    ).astype(float)
    labels = np.concatenate([np.ones(51, dtype=int), np.zeros(58, dtype=int)])
    return scores, labels


def test_auc_matches_hanley_mcneil_ct_example():
    scores, labels = _hm82()
    result = stats.roc_auc(scores, labels)
    assert result.auc == pytest.approx(0.893, abs=0.5e-3)  # [HM82]
    assert result.auc == pytest.approx(0.8931711, abs=0.5e-7)  # [CV]
    assert result.auc * 51 * 58 == pytest.approx(2642)  # [CV] Wilcoxon W
    assert (result.n_pos, result.n_neg) == (51, 58)


def test_delong_se_on_hanley_mcneil_data_matches_brute_force_definition():
    scores, labels = _hm82()
    pos, neg = scores[labels == 1], scores[labels == 0]
    # [DeLong88] straight from the definition, over the full 51 x 58 pair matrix.
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    expected_se = math.sqrt(v10.var(ddof=1) / 51 + v01.var(ddof=1) / 58)
    result = stats.roc_auc(scores, labels)
    assert result.se == pytest.approx(expected_se, rel=1e-12)
    assert result.ci_low == pytest.approx(result.auc - Z95 * expected_se, rel=1e-9)
    assert result.ci_high == pytest.approx(result.auc + Z95 * expected_se, rel=1e-9)
    # DeLong's and Hanley-McNeil's are different estimators of the same SE; on these data
    # they must still agree to within a few thousandths ([HM82] reports 0.032).
    assert result.se == pytest.approx(0.032, abs=0.003)


def test_delong_se_tiny_case_without_ties_by_hand():
    # Positives X = [1, 3], negatives Y = [0, 2].
    # psi: X=1 beats Y=0, loses to Y=2 -> V10 = 1/2; X=3 beats both -> V10 = 1.
    # Y=0 is beaten by both -> V01 = 1; Y=2 by one -> V01 = 1/2.  AUC = 3/4.
    # S10 = S01 = var([1/2, 1], ddof=1) = 1/8;  var = 1/8/2 + 1/8/2 = 1/8.
    result = stats.roc_auc([1, 3, 0, 2], [1, 1, 0, 0])
    assert result.auc == pytest.approx(0.75)
    assert result.se == pytest.approx(math.sqrt(1 / 8))
    # 0.75 + 1.96 * 0.354 > 1: the interval is clipped (pROC convention).
    assert result.ci_high == 1.0
    assert result.ci_low == pytest.approx(0.75 - Z95 * math.sqrt(1 / 8))


def test_delong_se_tiny_case_with_a_tie_by_hand():
    # Positives X = [1, 2], negatives Y = [0, 2] (X=2 ties Y=2 -> psi 1/2).
    # V10 = [1/2, 3/4] -> S10 = 2 * (1/8)^2 = 1/32.
    # V01: Y=0 beaten by both -> 1; Y=2 by none, tied once -> 1/4 -> S01 = 2 * (3/8)^2 = 9/32.
    # AUC = 5/8; var = (1/32)/2 + (9/32)/2 = 5/32.
    result = stats.roc_auc([1, 2, 0, 2], [True, True, False, False])
    assert result.auc == pytest.approx(5 / 8)
    assert result.se == pytest.approx(math.sqrt(5 / 32))
    # 5/8 -+ 1.96 * 0.395 = -0.15, 1.40: both ends clipped to [0, 1].
    assert (result.ci_low, result.ci_high) == (0.0, 1.0)


def test_auc_extremes_by_hand():
    perfect = stats.roc_auc([5, 6, 7, 1, 2, 3], [1, 1, 1, 0, 0, 0])
    assert perfect.auc == 1.0
    # Every placement is 1 (or 0): no spread, so DeLong's SE is 0 and the interval a point.
    assert (perfect.se, perfect.ci_low, perfect.ci_high) == (0.0, 1.0, 1.0)
    reversed_ = stats.roc_auc([1, 2, 3, 5, 6, 7], [1, 1, 1, 0, 0, 0])
    assert reversed_.auc == 0.0
    assert (reversed_.ci_low, reversed_.ci_high) == (0.0, 0.0)
    ties = stats.roc_auc([4, 4, 4, 4, 4], [1, 1, 0, 0, 0])
    assert ties.auc == 0.5
    assert ties.se == 0.0


def test_lower_means_positive_flips_the_auc():
    scores, labels = _hm82()
    flipped = stats.roc_auc(scores, labels, higher_means_positive=False)
    assert flipped.auc == pytest.approx(1 - 0.8931711, abs=0.5e-7)
    assert flipped.se == pytest.approx(stats.roc_auc(scores, labels).se)


def test_single_positive_has_an_auc_but_no_se():
    result = stats.roc_auc([3, 1, 2], [1, 0, 0])
    assert result.auc == 1.0
    assert math.isnan(result.se)
    assert math.isnan(result.ci_low)


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([1, 2], [1, 1], "negative"),
        ([1, 2], [0, 0], "positive"),
        ([1, 2, 3], [1, 0], "equal length"),
        ([1, math.nan], [1, 0], "missing"),
        ([1, 2], [1, 2], "labels"),
    ],
)
def test_roc_auc_rejects_bad_input(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        stats.roc_auc(scores, labels)


def test_roc_auc_rejects_bad_confidence():
    with pytest.raises(ValueError, match="confidence"):
        stats.roc_auc([1, 2], [1, 0], confidence=95)


def _articles() -> pd.DataFrame:
    # Generated articles (g*) have lower perplexity and higher log-prob than real (r*),
    # except g3, which looks human to the detector.
    return pd.DataFrame(
        {
            "article_id": ["g1", "g2", "g3", "r1", "r2", "r3"],
            "article_origin": ["generated"] * 3 + ["real"] * 3,
            "condition": ["gpt2-small", "gpt2-large", "gpt2-large", "real", "real", "real"],
            "mean_logprob": [-2.0, -2.5, -4.5, -3.0, -3.5, -4.0],
            "perplexity": [np.exp(2.0), np.exp(2.5), np.exp(4.5), np.exp(3.0), np.exp(3.5), 55.0],
            "rank_lt_10": [0.8, 0.7, 0.4, 0.5, 0.6, math.nan],
            "credible_share": [0.9, 0.2, 0.3, 0.8, 0.7, 0.6],
        }
    )


def test_detector_separation_uses_fixed_directions():
    table = stats.detector_separation(
        _articles(), score_columns=["mean_logprob", "perplexity", "rank_lt_10"]
    )
    assert list(table["score"]) == ["mean_logprob", "perplexity", "rank_lt_10"]
    assert list(table["direction"]) == ["higher", "lower", "higher"]
    by_score = table.set_index("score")
    # mean_logprob: g1, g2 beat all 3 real; g3 beats none -> 6/9.
    assert by_score.loc["mean_logprob", "auc"] == pytest.approx(6 / 9)
    # Perplexity = exp(-logprob) for all but r3 (55 ~ exp(4.007)): same order, lower = generated.
    assert by_score.loc["perplexity", "auc"] == pytest.approx(6 / 9)
    # rank_lt_10 drops r3 (NaN): g1 0.8, g2 0.7 beat 0.5 and 0.6; g3 0.4 beats none -> 4/6.
    assert by_score.loc["rank_lt_10", "auc"] == pytest.approx(4 / 6)
    assert (by_score.loc["rank_lt_10", "n_pos"], by_score.loc["rank_lt_10", "n_neg"]) == (3, 2)


def test_detector_direction_is_not_chosen_from_the_data():
    data = _articles()
    data["unknown_score"] = -data["mean_logprob"]  # points the "wrong" way
    table = stats.detector_separation(data, score_columns=["unknown_score"])
    assert table.loc[0, "direction"] == "higher"
    assert table.loc[0, "auc"] == pytest.approx(3 / 9)  # reported below 0.5, not flipped
    override = stats.detector_separation(
        data, score_columns=["unknown_score"], directions={"unknown_score": "lower"}
    )
    assert override.loc[0, "auc"] == pytest.approx(6 / 9)


def test_detector_separation_by_condition_against_all_real_articles():
    table = stats.detector_separation(_articles(), score_columns=["mean_logprob"], by="condition")
    assert list(table["condition"]) == ["gpt2-large", "gpt2-small"]
    large, small = table.iloc[0], table.iloc[1]
    # gpt2-large: g2 beats all 3 real, g3 none -> 3/6; gpt2-small: g1 beats all -> 1.
    assert large["auc"] == pytest.approx(3 / 6)
    assert (large["n_pos"], large["n_neg"]) == (2, 3)
    assert small["auc"] == 1.0
    assert math.isnan(small["se"])  # one positive: no DeLong SE


def test_detector_separation_rejects_bad_input():
    data = _articles()
    with pytest.raises(ValueError, match="missing column"):
        stats.detector_separation(data, score_columns=["no_such_score"])
    odd = data.copy()
    odd.loc[0, "article_origin"] = "paraphrased"
    with pytest.raises(ValueError, match="paraphrased"):
        stats.detector_separation(odd, score_columns=["mean_logprob"])
    twice = pd.concat([data, data.iloc[[0]]])
    with pytest.raises(ValueError, match="once"):
        stats.detector_separation(twice, score_columns=["mean_logprob"])
    with pytest.raises(ValueError, match="direction"):
        stats.detector_separation(
            data, score_columns=["mean_logprob"], directions={"mean_logprob": "up"}
        )


def test_human_separation_is_auc_of_one_minus_credible_share():
    table = stats.human_separation(_articles())
    assert list(table.columns) == stats.SEPARATION_COLUMNS
    row = table.iloc[0]
    # 1 - share: generated [0.1, 0.8, 0.7], real [0.2, 0.3, 0.4].
    # 0.1 beats none; 0.8 and 0.7 beat all three -> 6/9.
    assert row["auc"] == pytest.approx(6 / 9)
    # DeLong by hand: V10 = [0, 1, 1] -> S10 = 1/3; V01 = [2/3, 2/3, 2/3] -> S01 = 0.
    assert row["se"] == pytest.approx(math.sqrt((1 / 3) / 3))
    assert row["direction"] == "higher"


def test_human_separation_rejects_shares_outside_unit_interval():
    data = _articles()
    data.loc[0, "credible_share"] = 1.5
    with pytest.raises(ValueError, match="between 0 and 1"):
        stats.human_separation(data)


def test_disagreements_rank_by_percentile_gap():
    table = stats.human_detector_disagreements(_articles(), score_column="perplexity", top=3)
    assert list(table.columns) == stats.DISAGREEMENT_COLUMNS
    # Human machine-likeness 1 - share: g1 .1, g2 .8, g3 .7, r1 .2, r2 .3, r3 .4
    #   -> ranks 1, 6, 5, 2, 3, 4 -> pct (rank - .5) / 6 * 100.
    # Detector (lower perplexity = machine-like; r3's 55 sits between e^4 and e^4.5):
    #   order of -perplexity: g1 6, g2 5, r1 4, r2 3, r3 2, g3 1.
    # Gaps (human - detector) in ranks: g1 -5, g2 +1, g3 +4, r1 -2, r2 0, r3 +2.
    assert list(table["article_id"]) == ["g1", "g3", "r1"]  # |gap| 5, 4, then 2 (r1 < r3)
    assert list(table["gap"]) == pytest.approx([-5 / 6 * 100, 4 / 6 * 100, -2 / 6 * 100])
    assert table.loc[0, "human_machine_likeness_pct"] == pytest.approx(0.5 / 6 * 100)
    assert table.loc[0, "detector_machine_likeness_pct"] == pytest.approx(5.5 / 6 * 100)
    assert list(table["abs_gap"]) == pytest.approx(table["gap"].abs().tolist())


def test_disagreements_drop_unscored_articles_and_validate():
    table = stats.human_detector_disagreements(_articles(), score_column="rank_lt_10", top=10)
    assert "r3" not in set(table["article_id"])
    assert len(table) == 5
    with pytest.raises(ValueError, match="top"):
        stats.human_detector_disagreements(_articles(), score_column="perplexity", top=0)
    with pytest.raises(ValueError, match="missing column"):
        stats.human_detector_disagreements(_articles(), score_column="nope")
