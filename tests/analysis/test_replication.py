"""A replication against a published result: Simonsohn's small telescopes and the TOST
equivalence test, each worked by hand from the formulas with scipy.stats.norm (the hand
numbers are in the comments), then the report, the results page, the HTML report, the
API and ``manage.py analyze``; the researcher's citation shown as text; and nothing at
all for a study without an original result. The design-hash side (the new fields enter
the design document only when set) is pinned in tests/surveys/test_kreps_template.py."""

from __future__ import annotations

import math

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from scipy import optimize
from scipy.stats import norm

from analysis import stats
from analysis.presentation import report_as_html, report_as_text
from analysis.services import study_report
from surveys.models import Condition, Study
from tests.analysis.conftest import make_participant, rating
from tests.analysis.test_commands import run
from tests.analysis.test_hostile_text import IMAGE, SCRIPT, _assert_no_markup_from_data

Z975 = norm.ppf(0.975)  # 1.959964


def _h(p: float) -> float:
    return 2 * math.asin(math.sqrt(p))


def _h33_by_hand(n1: int, n2: int) -> float:
    """The h that a two-sided z test at alpha 0.05 detects with probability 1/3, with n1
    and n2 per group: solve Phi(h s - z) + Phi(-h s - z) = 1/3, s = 1/sqrt(1/n1 + 1/n2)."""
    s = 1 / math.sqrt(1 / n1 + 1 / n2)

    def power(h: float) -> float:
        return norm.cdf(h * s - Z975) + norm.cdf(-h * s - Z975)

    return optimize.brentq(lambda h: power(h) - 1 / 3, 1e-6, 5.0, xtol=1e-12)


# ---------------------------------------------------------------------------------------
# Small telescopes, by hand


def test_h33_matches_the_power_equation_solved_by_hand():
    # n = 200 per group: s = sqrt(100) = 10. Ignoring the far tail, h s - 1.959964 =
    # Phi^-1(1/3) = -0.430727, so h33 ~ 1.529237 / 10 = 0.1529237; the far tail
    # (Phi(-3.49) ~ 0.00024) lowers it to 0.1528569. (statsmodels' solve_power stops at
    # 0.1528545, where the power is 0.333325: the code solves its power function itself.)
    assert norm.ppf(1 / 3) == pytest.approx(-0.430727, abs=1e-6)
    assert _h33_by_hand(200, 200) == pytest.approx(0.1528569, abs=1e-7)
    result = stats.small_telescopes(
        original_rate=0.72,
        original_n=200,
        original_reference_rate=0.83,
        original_reference_n=200,
        successes=150,
        n=200,
        reference_successes=160,
        reference_n=200,
    )
    # The original effect is negative (0.72 below 0.83), so h33 carries its sign.
    assert result.h33 == pytest.approx(-_h33_by_hand(200, 200), abs=1e-8)
    # Unequal groups: s = 1 / sqrt(1/100 + 1/300) = 8.660254.
    unequal = stats.small_telescopes(
        original_rate=0.72,
        original_n=100,
        original_reference_rate=0.83,
        original_reference_n=300,
        successes=150,
        n=200,
        reference_successes=160,
        reference_n=200,
    )
    assert unequal.h33 == pytest.approx(-_h33_by_hand(100, 300), abs=1e-8)


def test_a_replication_effect_not_smaller_than_d33_by_hand():
    result = stats.small_telescopes(
        original_rate=0.72,
        original_n=200,
        original_reference_rate=0.83,
        original_reference_n=200,
        successes=150,
        n=200,
        reference_successes=160,
        reference_n=200,
    )
    # Original h = 2 asin(sqrt .72) - 2 asin(sqrt .83) = 2.026750 - 2.291970 = -0.265220.
    assert result.original_h == pytest.approx(_h(0.72) - _h(0.83))
    assert result.original_h == pytest.approx(-0.265220, abs=1e-6)
    # Replication h = 2 asin(sqrt .75) - 2 asin(sqrt .80) = 2.094395 - 2.214297 = -0.119902;
    # se = sqrt(1/200 + 1/200) = 0.1; in the original's direction (sign -1):
    # z = (0.119902 - 0.152857) / 0.1 = -0.329545, p = Phi(z) = 0.370872.
    h_rep = _h(0.75) - _h(0.80)
    z = (-h_rep - _h33_by_hand(200, 200)) / math.sqrt(1 / 200 + 1 / 200)
    assert result.replication_h == pytest.approx(h_rep)
    assert result.se == pytest.approx(0.1)
    assert result.z == pytest.approx(z)
    assert result.z == pytest.approx(-0.329545, abs=1e-5)
    assert result.p_value == pytest.approx(norm.cdf(z))
    assert result.p_value == pytest.approx(0.370872, abs=1e-5)
    assert not result.smaller
    # d33 back on the proportion scale at the original reference rate:
    # sin^2(asin(sqrt .83) - 0.1528569 / 2) - 0.83 = 0.768958 - 0.83 = -0.061042.
    p33 = math.sin(math.asin(math.sqrt(0.83)) - _h33_by_hand(200, 200) / 2) ** 2
    assert result.d33_difference == pytest.approx(p33 - 0.83)
    assert result.d33_difference == pytest.approx(-0.061042, abs=1e-5)


def test_a_replication_effect_significantly_smaller_than_d33_by_hand():
    result = stats.small_telescopes(
        original_rate=0.72,
        original_n=200,
        original_reference_rate=0.83,
        original_reference_n=200,
        successes=800,
        n=1000,
        reference_successes=810,
        reference_n=1000,
    )
    # h = 2 asin(sqrt .80) - 2 asin(sqrt .81) = 2.214297 - 2.239539 = -0.025242;
    # se = sqrt(2/1000) = 0.044721; z = (0.025242 - 0.152857) / 0.044721 = -2.853564,
    # p = Phi(z) = 0.002162: smaller than an effect the original could detect.
    z = (-(_h(0.80) - _h(0.81)) - _h33_by_hand(200, 200)) / math.sqrt(2 / 1000)
    assert result.z == pytest.approx(z)
    assert result.z == pytest.approx(-2.853564, abs=1e-5)
    assert result.p_value == pytest.approx(norm.cdf(z))
    assert result.p_value == pytest.approx(0.002162, abs=1e-5)
    assert result.smaller


def test_a_positive_original_effect_is_tested_in_its_own_direction():
    # The mirror image of the test above (condition above the reference): same p.
    result = stats.small_telescopes(
        original_rate=0.83,
        original_n=200,
        original_reference_rate=0.72,
        original_reference_n=200,
        successes=810,
        n=1000,
        reference_successes=800,
        reference_n=1000,
    )
    assert result.h33 > 0
    assert result.p_value == pytest.approx(0.002162, abs=1e-5)


def test_an_original_without_a_difference_has_nothing_to_test():
    with pytest.raises(ValueError, match="no difference"):
        stats.small_telescopes(
            original_rate=0.8,
            original_n=100,
            original_reference_rate=0.8,
            original_reference_n=100,
            successes=5,
            n=10,
            reference_successes=5,
            reference_n=10,
        )


# ---------------------------------------------------------------------------------------
# TOST, by hand


def test_tost_not_equivalent_by_hand():
    result = stats.equivalence_test(
        successes=150, n=200, reference_successes=160, reference_n=200, bound=0.10
    )
    # diff = .75 - .80 = -0.05; se = sqrt(.75*.25/200 + .8*.2/200) = sqrt(0.0017375)
    # = 0.041683. Lower: z = (-0.05 + 0.10) / se = 1.199520, p = 1 - Phi(z) = 0.115163.
    # Upper: z = (-0.05 - 0.10) / se = -3.598561, p = Phi(z) = 0.000160.
    se = math.sqrt(0.75 * 0.25 / 200 + 0.8 * 0.2 / 200)
    assert result.difference == pytest.approx(-0.05)
    assert result.z_lower == pytest.approx((-0.05 + 0.10) / se)
    assert result.p_lower == pytest.approx(norm.sf((-0.05 + 0.10) / se))
    assert result.p_lower == pytest.approx(0.115163, abs=1e-5)
    assert result.z_upper == pytest.approx((-0.05 - 0.10) / se)
    assert result.p_upper == pytest.approx(norm.cdf((-0.05 - 0.10) / se))
    assert result.p_upper == pytest.approx(0.000160, abs=1e-6)
    assert result.p_value == pytest.approx(0.115163, abs=1e-5)
    assert not result.equivalent


def test_tost_equivalent_by_hand():
    result = stats.equivalence_test(
        successes=800, n=1000, reference_successes=810, reference_n=1000, bound=0.10
    )
    # diff = -0.01; se = sqrt(.8*.2/1000 + .81*.19/1000) = sqrt(0.0003139) = 0.017717.
    # Lower: z = 0.09 / se = 5.079815; upper: z = -0.11 / se = -6.208663; both p < 1e-6.
    se = math.sqrt(0.8 * 0.2 / 1000 + 0.81 * 0.19 / 1000)
    assert result.z_lower == pytest.approx(0.09 / se)
    assert result.z_lower == pytest.approx(5.0798, abs=1e-3)
    assert result.z_upper == pytest.approx(-0.11 / se)
    assert result.p_value == pytest.approx(max(norm.sf(0.09 / se), norm.cdf(-0.11 / se)))
    assert result.equivalent


def test_tost_refuses_a_bound_outside_0_and_1():
    with pytest.raises(ValueError, match="bound"):
        stats.equivalence_test(successes=1, n=2, reference_successes=1, reference_n=2, bound=0)


# ---------------------------------------------------------------------------------------
# The report, the pages, the API and the command

pytestmark_db = pytest.mark.django_db
CITATION = f"Kreps, McCain & Brundage (2022) {SCRIPT}{IMAGE}\nsecond line"


@pytest.fixture
def replicating_study(live_study: Study) -> Study:
    """The live study (reference "real") with an original result: real 83% of 200,
    generated 72% of 200, bound 10 pp; here real 8 of 10 credible, generated 5 of 10."""
    Study.objects.filter(pk=live_study.pk).update(
        original_citation=CITATION, equivalence_bound=0.10
    )
    Condition.objects.filter(study=live_study, name="real").update(
        original_rate=0.83, original_n=200
    )
    Condition.objects.filter(study=live_study, name="generated").update(
        original_rate=0.72, original_n=200
    )
    for condition, yes in (("real", 8), ("generated", 5)):
        for i in range(10):
            make_participant(live_study, condition, [rating("yes" if i < yes else "no")])
    live_study.refresh_from_db()
    return live_study


# Here: h = 2 asin(sqrt .5) - 2 asin(sqrt .8) = 1.570796 - 2.214297 = -0.643501, se =
# sqrt(1/10 + 1/10) = 0.447214, z = (0.643501 - 0.152857) / 0.447214 = 1.097114,
# p = Phi(z) = 0.863704: not smaller than d33.
TELESCOPE_Z = (-(_h(0.5) - _h(0.8)) - _h33_by_hand(200, 200)) / math.sqrt(0.2)
# TOST: diff -0.3, se = sqrt(.5*.5/10 + .8*.2/10) = sqrt(0.041) = 0.202485; lower
# z = -0.2 / se = -0.987730, p = 0.838357; upper z = -0.4 / se = -1.975459, p = 0.024108.
TOST_SE = math.sqrt(0.5 * 0.5 / 10 + 0.8 * 0.2 / 10)


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user(
        "analyst", password="pw", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client


@pytestmark_db
def test_the_report_puts_the_original_beside_this_study_with_both_tests(replicating_study):
    report = study_report(study=replicating_study)
    assert report.replication is not None
    assert report.replication_citation == CITATION
    (row,) = report.replication.to_dict("records")
    assert row["condition"] == "generated"
    assert row["reference"] == "real"
    assert row["original_share"] == 0.72
    assert row["original_n"] == 200
    assert row["original_reference_share"] == 0.83
    assert row["original_difference"] == pytest.approx(-0.11)
    assert row["ratings"] == 10
    assert row["share"] == pytest.approx(0.5)
    assert row["difference"] == pytest.approx(-0.3)
    assert row["diff_ci_low"] < -0.3 < row["diff_ci_high"]
    assert row["h33"] == pytest.approx(-0.1528569, abs=1e-6)
    assert row["telescope_z"] == pytest.approx(TELESCOPE_Z)
    assert row["telescope_z"] == pytest.approx(1.097114, abs=1e-5)
    assert row["telescope_p"] == pytest.approx(0.863704, abs=1e-5)
    assert row["equivalence_bound"] == 0.10
    assert row["tost_p_lower"] == pytest.approx(norm.sf(-0.2 / TOST_SE))
    assert row["tost_p_lower"] == pytest.approx(0.838357, abs=1e-5)
    assert row["tost_p_upper"] == pytest.approx(norm.cdf(-0.4 / TOST_SE))
    assert row["tost_p_upper"] == pytest.approx(0.024108, abs=1e-5)
    assert row["tost_p"] == pytest.approx(row["tost_p_lower"])


@pytestmark_db
def test_a_condition_without_original_numbers_gets_the_tost_only(replicating_study):
    Condition.objects.filter(study=replicating_study, name="generated").update(
        original_rate=None, original_n=None
    )
    report = study_report(study=replicating_study)
    assert report.replication is not None
    (row,) = report.replication.to_dict("records")
    assert math.isnan(row["original_share"])
    assert math.isnan(row["telescope_p"])
    assert row["tost_p"] == pytest.approx(0.838357, abs=1e-5)
    text = report_as_text(report)
    assert "small telescopes: not computed: needs the original rates and sample sizes" in text


@pytestmark_db
def test_analyze_prints_the_replication_with_its_conclusions(replicating_study):
    out, _ = run("analyze", replicating_study.slug)
    assert "Replication of a published result" in out
    # The citation on one line, as typed (text output is not HTML).
    assert f"Original study: Kreps, McCain & Brundage (2022) {SCRIPT}{IMAGE} second line" in out
    assert "original: 72.0% (n 200) vs 83.0% (n 200), difference -11.0 pp" in out
    assert "this study: 50.0% [" in out
    assert "p = 0.864" in out
    assert "The effect is not significantly smaller than one the original study" in out
    assert "TOST p = 0.838" in out
    assert "Not shown equivalent: the difference may lie outside ±10.0 percentage points." in out


@pytestmark_db
def test_results_page_and_html_report_show_the_table_and_the_citation_as_text(
    replicating_study, staff_client
):
    page = staff_client.get(reverse("analysis:results", args=[replicating_study.slug]))
    assert page.status_code == 200
    html = page.content.decode()
    for document in (html, report_as_html(study_report(study=replicating_study))):
        assert 'id="replication-table"' in document
        assert "generated vs real" in document
        assert "d33 = Cohen&#x27;s h -0.15" in document
        assert "Not shown equivalent" in document
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
        _assert_no_markup_from_data(document)


@pytestmark_db
def test_the_api_returns_the_replication_table_and_the_citation(replicating_study, staff_client):
    response = staff_client.get(reverse("api:study-results", args=[replicating_study.slug]))
    assert response.status_code == 200
    body = response.json()
    assert body["replication_citation"] == CITATION
    (row,) = body["replication"]
    assert row["condition"] == "generated"
    assert row["original_n"] == 200
    assert row["telescope_p"] == pytest.approx(0.863704, abs=1e-5)
    assert row["tost_p_upper"] == pytest.approx(0.024108, abs=1e-5)


@pytestmark_db
def test_before_any_answer_the_rows_say_so_and_nothing_is_tested(live_study):
    Study.objects.filter(pk=live_study.pk).update(equivalence_bound=0.05)
    live_study.refresh_from_db()
    report = study_report(study=live_study)
    assert report.replication is not None
    (row,) = report.replication.to_dict("records")
    assert math.isnan(row["tost_p"])
    assert "this study: no analysed answers yet" in report_as_text(report)


@pytestmark_db
def test_a_study_without_an_original_result_shows_nothing(rated_study, staff_client):
    report = study_report(study=rated_study)
    assert report.replication is None
    assert "Replication" not in report_as_text(report)
    page = staff_client.get(reverse("analysis:results", args=[rated_study.slug]))
    assert 'id="replication' not in page.content.decode()
    body = staff_client.get(reverse("api:study-results", args=[rated_study.slug])).json()
    assert body["replication"] is None
    assert body["replication_citation"] == ""
