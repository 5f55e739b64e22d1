"""study_report over the fixture study whose numbers are worked out by hand:
real 3 of 4 credible, generated 2 of 5 (see conftest.rated_study)."""

from __future__ import annotations

import math

import pytest

from analysis.services import binary_question_for, study_report
from surveys.models import Question
from tests.analysis.conftest import make_participant, rating
from tests.factories import ConditionFactory, QuestionFactory, StudyFactory

pytestmark = pytest.mark.django_db


def test_report_analyses_only_included_participants(rated_study):
    report = study_report(study=rated_study)
    assert report.analysed == 9
    assert report.binary_question == "credible"
    assert report.reference == "real"
    table = report.proportions.set_index("condition")
    assert list(report.proportions["condition"]) == ["real", "generated"]  # reference first
    assert (table.loc["real", "successes"], table.loc["real", "n"]) == (3, 4)
    assert (table.loc["generated", "successes"], table.loc["generated", "n"]) == (2, 5)
    # Wilson 95% for 3/4 (R binom.confint(3, 4, methods="wilson"): 0.3006418 0.9544127).
    assert table.loc["real", "ci_low"] == pytest.approx(0.3006418, abs=1e-7)
    assert table.loc["real", "ci_high"] == pytest.approx(0.9544127, abs=1e-7)


def test_report_compares_generated_with_real(rated_study):
    report = study_report(study=rated_study)
    assert len(report.comparisons) == 1
    row = report.comparisons.iloc[0]
    assert (row["condition"], row["reference"]) == ("generated", "real")
    assert row["difference"] == pytest.approx(-0.35)
    # By hand: pooled p = 5/9, se = sqrt(5/9 * 4/9 * (1/5 + 1/4)) = 1/3, z = -0.35 * 3.
    assert row["z"] == pytest.approx(-1.05)
    assert row["chi2"] == pytest.approx(1.05**2)
    assert row["p_holm"] == pytest.approx(row["p_value"])  # a single comparison


def test_report_likert_means_by_condition(rated_study):
    likert = study_report(study=rated_study).likert.set_index(["condition", "question_key"])
    assert likert.loc[("real", "believable"), "mean"] == pytest.approx(3.0)  # 4,4,3,1
    assert likert.loc[("generated", "believable"), "mean"] == pytest.approx(2.0)  # 2,2,2,3,1
    assert likert.loc[("real", "believable"), "n"] == 4
    assert set(likert.index.get_level_values("question_key")) == {"believable", "accurate", "clear"}


def test_report_on_empty_study_has_ledger_and_empty_tables(live_study):
    report = study_report(study=live_study)
    assert report.analysed == 0
    assert report.proportions.empty
    assert report.comparisons.empty
    assert report.likert.empty
    assert any("no analysed answers" in note for note in report.notes)


def test_report_without_reference_condition_compares_nothing(db):
    study = StudyFactory.create()
    ConditionFactory.create(study=study, name="only")
    QuestionFactory.create(study=study, key="credible")
    report = study_report(study=study)
    assert report.reference is None
    assert report.comparisons.empty
    assert any("reference" in note for note in report.notes)


def test_binary_question_prefers_credible_then_first_binary(db):
    study = StudyFactory.create()
    QuestionFactory.create(study=study, key="trust", position=0)
    QuestionFactory.create(study=study, key="credible", position=5)
    assert binary_question_for(study=study).key == "credible"
    other = StudyFactory.create()
    QuestionFactory.create(study=other, key="second", position=2)
    QuestionFactory.create(study=other, key="first", position=1)
    QuestionFactory.create(
        study=other,
        key="attention",
        kind=Question.Kind.BINARY,
        scope=Question.Scope.ATTENTION_CHECK,
        position=0,
        expected_answer="yes",
    )
    assert binary_question_for(study=other).key == "first"


def test_report_when_one_condition_has_no_variation(live_study):
    for _ in range(3):
        make_participant(live_study, "real", [rating("yes")])
        make_participant(live_study, "generated", [rating("yes")])
    row = study_report(study=live_study).comparisons.iloc[0]
    assert row["difference"] == 0
    assert math.isnan(row["z"])


def test_report_regression_slope_is_the_table_log_odds_ratio(rated_study):
    fit = study_report(study=rated_study).regression
    assert fit is not None
    assert (fit.n_obs, fit.n_clusters, fit.reference) == (9, 9, "real")
    row = fit.table.set_index("term").loc["generated"]
    # By hand: generated odds 2/3, real odds 3/1, so OR = 2/9; Woolf variance
    # 1/2 + 1/3 + 1/3 + 1/1; one rating each, so clustered = plain * sqrt(9/8 * 8/7).
    assert row["log_odds"] == pytest.approx(math.log(2 / 9), abs=1e-7)
    woolf = math.sqrt(1 / 2 + 1 / 3 + 1 / 3 + 1)
    assert row["se"] == pytest.approx(woolf * math.sqrt(9 / 7), rel=1e-6)


def test_report_power_at_observed_rates(rated_study):
    power = study_report(study=rated_study).power
    assert list(power["condition"]) == ["generated"]
    row = power.iloc[0]
    # R power.prop.test's formula by hand with pbar = (5*0.4 + 4*0.75)/9 = 5/9.
    from scipy.stats import norm

    null_se = math.sqrt(5 / 9 * 4 / 9 * (1 / 5 + 1 / 4))
    alt_se = math.sqrt(0.4 * 0.6 / 5 + 0.75 * 0.25 / 4)
    assert row["power"] == pytest.approx(norm.cdf((0.35 - 1.959964 * null_se) / alt_se), abs=1e-6)
    # (1.959964 sqrt(2 * 0.575 * 0.425) + 0.841621 sqrt(0.24 + 0.1875))^2 / 0.35^2 = 30.11
    assert row["n_for_80"] == 31


def test_report_without_regression_explains_why(live_study):
    make_participant(live_study, "real", [rating("yes")])
    make_participant(live_study, "real", [rating("yes")])
    make_participant(live_study, "generated", [rating("no")])
    make_participant(live_study, "generated", [rating("yes")])
    report = study_report(study=live_study)
    assert report.regression is None
    assert any("infinite" in note for note in report.notes)
    assert len(report.comparisons) == 1
    assert math.isnan(report.power.iloc[0]["power"])


# ---------------------------------------------------------------------------------------
# Credibility index and detection, worked out by hand from the fixture's ratings.


def test_report_credibility_index_by_hand(rated_study):
    report = study_report(study=rated_study)
    assert report.has_index_items
    means = report.index_means.set_index("condition")
    assert list(report.index_means["condition"]) == ["real", "generated"]
    # Real: believable 4,4,3,1 with accurate = clear = 3 -> sums 10,10,9,7 -> index
    # (sum - 2) 8,8,7,5: mean 7, sd sqrt(6/3). Generated: sums 8,8,8,9,7 -> 6,6,6,7,5.
    assert means.loc["real", "mean"] == pytest.approx(7.0)
    assert means.loc["real", "sd"] == pytest.approx(math.sqrt(2.0))
    assert means.loc["generated", "mean"] == pytest.approx(6.0)
    assert means.loc["generated", "n"] == 5
    row = report.index_tests.iloc[0]
    # Welch: se = sqrt(0.5/5 + 2/4) = sqrt(0.6); df = 0.36 / (0.1^2/4 + 0.5^2/3).
    assert row["welch_t"] == pytest.approx(-1 / math.sqrt(0.6))
    assert row["welch_df"] == pytest.approx(0.36 / (0.01 / 4 + 0.25 / 3))
    # Student: pooled variance (4 * 0.5 + 3 * 2) / 7 = 8/7 on 7 df.
    assert row["student_t"] == pytest.approx(-1 / math.sqrt(8 / 7 * (1 / 5 + 1 / 4)))
    assert row["student_df"] == 7
    anova, kruskal = report.index_across
    # With two groups F is Student's t squared.
    assert anova.statistic == pytest.approx(row["student_t"] ** 2)
    assert anova.df == (1.0, 7.0)
    assert kruskal.df == (1.0,)
    # Accurate and clear never vary: item variances sum to the total's, so alpha is 0.
    assert report.index_alpha == pytest.approx(0.0, abs=1e-12)


def test_report_without_the_three_items_has_no_index(db):
    study = StudyFactory.create()
    ConditionFactory.create(study=study, name="only", is_reference=True)
    QuestionFactory.create(study=study, key="credible")
    report = study_report(study=study)
    assert not report.has_index_items
    assert report.index.empty
    assert report.index_alpha is None
    assert report.detection is None


DETECTION_CHOICES = [
    "Very likely written by a human",
    "Likely written by a human",
    "Likely written by a machine",
    "Very likely written by a machine",
    "I don't know",
]


def test_report_detection_by_hand(live_study):
    QuestionFactory.create(
        study=live_study,
        key="detection",
        kind=Question.Kind.CHOICE,
        choices=DETECTION_CHOICES,
        position=9,
    )
    for answer in ["Very likely written by a human", "Likely written by a machine", "I don't know"]:
        make_participant(live_study, "real", [{"detection": answer}])
    for answer in [
        "Likely written by a machine",
        "Very likely written by a machine",
        "Likely written by a human",
    ]:
        make_participant(live_study, "generated", [{"detection": answer}])
    report = study_report(study=live_study)
    assert report.detection is not None
    assert report.detection_summary is not None
    summary = report.detection_summary.set_index("condition")
    assert list(summary.index) == ["real", "generated", "(all conditions)"]
    # Real: accuracies 1, 0 and undefined (only "I don't know"); generated: 1, 1, 0.
    assert summary.loc["real", "mean_accuracy"] == pytest.approx(0.5)
    assert summary.loc["real", "mean_unsure_rate"] == pytest.approx(1 / 3)
    assert summary.loc["generated", "mean_accuracy"] == pytest.approx(2 / 3)
    assert summary.loc["(all conditions)", "mean_accuracy"] == pytest.approx(0.6)
    # A between-subjects condition holds one kind of article: d' needs both.
    assert math.isnan(summary.loc["real", "d_prime"])
    pooled = summary.loc["(all conditions)"]
    # 2 hits of 3 machine articles decided, 1 false alarm of 2 human ones; log-linear:
    # H = 2.5/4, F = 1.5/3 = 0.5, so d' = z(0.625) = 0.3186 (normal table) and c = -d'/2.
    assert pooled["hit_rate"] == pytest.approx(0.625)
    assert pooled["false_alarm_rate"] == pytest.approx(0.5)
    assert pooled["d_prime"] == pytest.approx(0.3186, abs=1e-4)
    assert pooled["criterion"] == pytest.approx(-0.3186 / 2, abs=1e-4)
    # Krippendorff by hand: units {human, machine} and {machine, machine, human};
    # o_hm = o_mh = 2, o_mm = 1, n_h = 2, n_m = 3, n = 5: 1 - 4 * 4 / (2 * 2 * 3) = -1/3.
    assert pooled["krippendorff_alpha"] == pytest.approx(-1 / 3)
