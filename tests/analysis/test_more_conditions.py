"""The report of a study with more than two conditions: the omnibus test and the pairwise
comparisons with the preregistered correction, the r x c test of a multi-option answer,
detection accuracy against guessing, pooled and per-participant d', and the sample size
with and without continuity correction - in the report, the text, the results page and
the API. The statistics themselves are pinned against R in test_stats_groups.py; here the
expected values are counted by hand from the answers the test gives."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from analysis import stats
from analysis.presentation import report_as_text
from analysis.report_tables import ALL_CONDITIONS, power_table, with_participant_d_prime
from analysis.services import study_report
from surveys.instruments import DETECTION_OPTIONS, INSTRUMENTS
from surveys.models import Study
from surveys.selectors.power import study_power_plan
from tests.analysis.conftest import make_participant
from tests.factories import ConditionFactory, GeneratedArticleFactory, QuestionFactory

pytestmark = pytest.mark.django_db

HUMAN_ANSWER, MACHINE_ANSWER = DETECTION_OPTIONS[0], DETECTION_OPTIONS[4]
DETECTION_KEY = "written_by"  # the detection instrument's question
# Credible answers per condition (yes, of n): a between-subjects study of three conditions.
COUNTS = {"real": (8, 10), "generated": (5, 10), "small": (1, 10)}


@pytest.fixture
def three_conditions(live_study: Study) -> Study:
    """The live study plus a third condition, "small"; per condition the credible
    answers of COUNTS, and on the detection question: real articles called human by the
    first 7 of 10, generated ones machine by the first 6, "small" by the first 9."""
    small = ConditionFactory.create(study=live_study, name="small", label="GPT-2 small")
    for _ in range(3):
        small.articles.add(GeneratedArticleFactory.create())
    (spec,) = INSTRUMENTS["detection"].questions
    assert spec.key == DETECTION_KEY
    QuestionFactory.create(
        study=live_study, key=spec.key, text=spec.text, kind=spec.kind, choices=list(spec.choices)
    )
    right = {"real": 7, "generated": 6, "small": 9}
    for condition, (yes, n) in COUNTS.items():
        truth = HUMAN_ANSWER if condition == "real" else MACHINE_ANSWER
        wrong = MACHINE_ANSWER if condition == "real" else HUMAN_ANSWER
        for i in range(n):
            answer = {"credible": "yes" if i < yes else "no"}
            answer[DETECTION_KEY] = truth if i < right[condition] else wrong
            make_participant(live_study, condition, [answer])
    return live_study


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user(
        "analyst", password="pw", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client


def test_three_conditions_get_the_omnibus_and_every_pair_with_holm(three_conditions):
    report = study_report(study=three_conditions)
    assert report.omnibus is not None
    assert report.omnibus.df == 2
    assert report.omnibus.n == 30
    assert set(report.omnibus.rows) == set(COUNTS)
    # The same test on the counts by hand (pinned against R prop.test elsewhere).
    expected = stats.k_proportions_test([5, 8, 1], [10, 10, 10])
    assert report.omnibus.p_value == pytest.approx(expected.p_value, rel=1e-12)
    pairs = {(r.condition, r.other): r for r in report.pairwise.itertuples()}
    assert set(pairs) == {("generated", "real"), ("generated", "small"), ("real", "small")}
    assert pairs[("real", "small")].difference == pytest.approx(0.7)
    # Holm by hand: the smallest of three p-values times 3, the next times 2 (monotone).
    raw = sorted((r.p_value, key) for key, r in pairs.items())
    assert pairs[raw[0][1]].p_adjusted == pytest.approx(min(1.0, 3 * raw[0][0]))
    assert pairs[raw[1][1]].p_adjusted == pytest.approx(min(1.0, max(3 * raw[0][0], 2 * raw[1][0])))
    assert set(report.pairwise["adjustment"]) == {"holm"}


def test_benjamini_hochberg_when_the_study_preregistered_it(three_conditions):
    Study.objects.filter(pk=three_conditions.pk).update(multiple_comparisons="bh")
    three_conditions.refresh_from_db()
    report = study_report(study=three_conditions)
    assert report.multiple_comparisons == "bh"
    p = report.pairwise.sort_values("p_value")
    raw, adjusted = p["p_value"].tolist(), p["p_adjusted"].tolist()
    # BH by hand: the largest stays, the others min over (m / rank) p from the top.
    assert adjusted[2] == pytest.approx(raw[2])
    assert adjusted[1] == pytest.approx(min(raw[2], 3 / 2 * raw[1]))
    assert adjusted[0] == pytest.approx(min(adjusted[1], 3 * raw[0]))
    assert "Benjamini-Hochberg" in report_as_text(report)


def test_two_conditions_have_no_omnibus_or_pairwise_table(rated_study, staff_client):
    report = study_report(study=rated_study)
    assert report.omnibus is None
    assert report.pairwise.empty
    page = staff_client.get(reverse("analysis:results", args=[rated_study.slug]))
    assert page.status_code == 200
    assert 'id="pairwise"' not in page.content.decode()


def test_the_detection_scale_is_tested_by_condition(three_conditions):
    report = study_report(study=three_conditions)
    (_key, test), *others = [t for t in report.answer_tests if t[0] == DETECTION_KEY]
    assert not others
    assert test.columns == (HUMAN_ANSWER, MACHINE_ANSWER)  # options nobody chose dropped
    table = dict(zip(test.rows, test.observed, strict=True))
    assert table == {"generated": (4, 6), "real": (7, 3), "small": (1, 9)}
    assert test.df == 2
    # Pearson's X^2 by hand: column totals 12 and 18 of 30, so E = 4 and 6 per row.
    by_hand = sum(
        (o - e) ** 2 / e for row in table.values() for o, e in zip(row, (4, 6), strict=True)
    )
    assert test.statistic == pytest.approx(by_hand)


def test_detection_accuracy_is_tested_against_guessing(three_conditions):
    report = study_report(study=three_conditions)
    assert report.detection_binomial is not None
    rows = report.detection_binomial.set_index("condition")
    assert rows.loc["real", "correct"] == 7
    assert rows.loc["real", "decided"] == 10
    assert rows.loc[ALL_CONDITIONS, "correct"] == 22
    assert rows.loc[ALL_CONDITIONS, "decided"] == 30
    # binom.test(9, 10): two-sided p = 2 * (10 + 1) / 2^10 = 0.021484375 exactly.
    assert rows.loc["small", "p_value"] == pytest.approx(22 / 1024)
    assert rows.index[0] == "real"  # the reference first


def test_between_subjects_has_a_pooled_d_prime_and_no_per_participant_one(three_conditions):
    report = study_report(study=three_conditions)
    summary = report.detection_summary.set_index("condition")
    assert not math.isnan(summary.loc[ALL_CONDITIONS, "d_prime"])
    assert summary.loc[ALL_CONDITIONS, "d_prime_participants"] == 0
    assert math.isnan(summary.loc[ALL_CONDITIONS, "mean_participant_d_prime"])


def test_mean_of_participants_d_prime_next_to_the_pooled_one():
    # Within subjects: p1 hits 3 of 4 machine articles and calls 1 of 4 human ones
    # machine; p2 hits 4 of 4 and calls 0 of 4 machine. Log-linear rates:
    # p1 (3.5/5, 1.5/5) = (0.7, 0.3): d' = 2 z(0.7) = 1.0488010;
    # p2 (4.5/5, 0.5/5) = (0.9, 0.1): d' = 2 z(0.9) = 2.5631031; mean 1.8059521.
    # Pooled: (7.5/9, 1.5/9): d' = 2 z(5/6) = 1.9348431.
    rows = []
    for person, hits, false_alarms in (("p1", 3, 1), ("p2", 4, 0)):
        for i in range(4):
            rows.append((person, "generated", MACHINE_ANSWER if i < hits else HUMAN_ANSWER))
            rows.append((person, "real", MACHINE_ANSWER if i < false_alarms else HUMAN_ANSWER))
    answers = pd.DataFrame(rows, columns=["participant_id", "article_origin", "value"])
    answers["condition"] = "within"
    summary = pd.DataFrame({"condition": [ALL_CONDITIONS], "d_prime": [1.9348431]})
    got = with_participant_d_prime(summary, answers).iloc[0]
    assert got["d_prime_participants"] == 2
    assert got["mean_participant_d_prime"] == pytest.approx(1.8059521, abs=1e-6)
    pooled = stats.signal_detection(7, 8, 1, 8)
    assert pooled.d_prime == pytest.approx(1.9348431, abs=1e-6)


def test_power_table_gives_both_sample_sizes():
    comparisons = pd.DataFrame(
        [{"condition": "gpt2", "reference": "real", "share": 0.72, "reference_share": 0.83,
          "n": 100, "reference_n": 100}]
    )  # fmt: skip
    row = power_table(comparisons).iloc[0]
    # ceil(225.04) without, ceil(242.88) with Fleiss-Tytun-Ury's correction.
    assert (row["n_for_80"], row["n_for_80_cc"]) == (226, 243)


def test_text_page_and_api_show_the_new_tables(three_conditions, staff_client):
    report = study_report(study=three_conditions)
    text = report_as_text(report)
    assert "All 3 conditions rated credible equally often" in text
    assert "p corrected by Holm, as preregistered" in text
    assert "Answers to written_by by condition: chi-squared(2) =" in text
    assert "Detection accuracy against guessing (50%)" in text
    assert "pooled d'=" in text
    assert "mean participant d'=n/a" in text
    assert "(z test, no continuity correction; 243 with it" in text

    page = staff_client.get(reverse("analysis:results", args=[three_conditions.slug]))
    assert page.status_code == 200
    html = page.content.decode()
    for marker in ('id="omnibus"', 'id="pairwise"', 'id="answers-written_by"'):
        assert marker in html
    assert 'id="detection-binomial"' in html
    assert "p (Holm)" in html
    assert "d\u2032 (pooled)" in html
    assert "Mean of participants\u2019 d\u2032" in html

    api = staff_client.get(reverse("api:study-results", args=[three_conditions.slug]))
    assert api.status_code == 200
    body = api.json()
    assert body["multiple_comparisons"] == "holm"
    assert body["omnibus"]["df"] == 2
    assert body["omnibus"]["p_value"] == pytest.approx(report.omnibus.p_value)
    assert len(body["pairwise"]) == 3
    assert {row["adjustment"] for row in body["pairwise"]} == {"holm"}
    (detection,) = [t for t in body["answer_tests"] if t["question_key"] == DETECTION_KEY]
    assert detection["observed"] == [[4, 6], [7, 3], [1, 9]]
    assert body["detection_binomial"][0]["condition"] == "real"


def test_results_of_a_study_without_answers_have_no_nan(live_study, staff_client):
    api = staff_client.get(reverse("api:study-results", args=[live_study.slug]))
    assert api.status_code == 200
    body = api.json()
    assert body["omnibus"] is None
    assert body["pairwise"] == []
    assert body["answer_tests"] == []


def test_planning_box_gives_both_sample_sizes(admin_client, live_study):
    (row,) = study_power_plan(study=live_study).rows
    assert (row.n_needed, row.n_needed_cc) == (226, 243)
    content = admin_client.get(reverse("admin:surveys_study_change", args=[live_study.pk]))
    html = content.content.decode()
    assert "no continuity correction" in html
    assert "<td>226</td>\n    <td>243</td>" in html
