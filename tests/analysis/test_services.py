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
