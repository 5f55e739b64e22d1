"""The preregistration written from a frozen design (``analysis.preregistration``), and
the report held against it (``analysis.preregistered``)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse

from analysis.preregistration import preregistration, preregistration_markdown
from analysis.presentation import report_as_text
from analysis.services import study_report
from surveys.models import ExclusionRule, Study
from surveys.services import study_design_hash, study_set_status, study_validate_design
from tests.factories import ConditionFactory, GeneratedArticleFactory, StudyFactory

pytestmark = pytest.mark.django_db

HYPOTHESIS = "People rate GPT-2 articles credible less often than real ones."


def _draft_with_plan(**fields: object) -> Study:
    """A live study's design, set back to draft to fill in its preregistration."""
    study = StudyFactory.create_live()
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT, design_hash="", **fields)
    study.refresh_from_db()
    return study


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user(
        "researcher", password="pw", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client


def test_the_document_answers_every_aspredicted_question_from_the_frozen_design():
    study = _draft_with_plan(hypotheses=HYPOTHESIS, primary_comparison="generated")
    study.conditions.filter(name="generated").update(quota=150)
    ExclusionRule.objects.create(
        study=study, kind=ExclusionRule.Kind.TOO_FAST, threshold=15, position=1
    )
    study = study_set_status(study=study, status=Study.Status.LIVE)

    text = preregistration_markdown(study=study)

    for number in range(1, 9):
        assert f"\n## {number}. " in text
    assert HYPOTHESIS in text
    assert study.design_hash in text
    assert "No. No participant had started" in text
    assert "Between subjects: each participant is assigned one condition" in text
    assert "- **real** (the reference)" in text
    assert "3 real and 0 generated article(s)" in text
    assert "0 real and 3 generated article(s) by tiny-test-model" in text
    assert '**Primary.** The share answering yes to "credible" in generated against real' in text
    assert "participant-clustered standard errors" in text
    assert "Read faster than 15 words per second" in text
    assert "- generated: 150 participants (its quota)" in text
    # The reference has no quota: the power calculation's n for 0.83 against 0.72.
    assert "- real: 226 participants (the power calculation)" in text
    assert "need 226 per condition for 80% power" in text
    assert "at the quotas" not in text  # one quota only
    assert "those of the GPT-2 release study (Credence's default)" in text


def test_the_plan_uses_the_original_studys_rates_where_recorded():
    study = _draft_with_plan()
    study.conditions.filter(name="real").update(original_rate=0.9)
    study.conditions.filter(name="generated").update(original_rate=0.7)
    study = study_set_status(study=study, status=Study.Status.LIVE)
    text = preregistration_markdown(study=study)
    # power.prop.test(p1 = 0.9, p2 = 0.7, power = 0.8) in R: n = 61.6 per group -> 62.
    assert "credible shares of 0.70 and 0.90 need 62 per condition" in text
    assert "the original study's, as recorded on the conditions" in text
    assert "- generated: 62 participants (the power calculation)" in text


def test_with_three_conditions_the_correction_is_named():
    study = _draft_with_plan(multiple_comparisons=Study.MultipleComparisons.BH)
    third = ConditionFactory.create(study=study, name="gpt2-xl")
    for _ in range(3):
        third.articles.add(GeneratedArticleFactory.create())
    study = study_set_status(study=study, status=Study.Status.LIVE)
    document = preregistration(study=study)
    plan = [a.description for a in document.analyses]
    assert any("corrected by Benjamini-Hochberg" in line for line in plan)
    # No primary comparison named: every comparison with the reference is primary.
    assert [a.primary for a in document.analyses if " against real" in a.name] == [True, True]


def test_a_draft_has_no_preregistration(staff_client):
    study = _draft_with_plan()
    with pytest.raises(ValueError, match="Pilot or launch"):
        preregistration(study=study)
    url = reverse("analysis:preregistration", args=[study.slug, "md"])
    response = staff_client.get(url)
    assert response.status_code == 409
    assert "Pilot or launch" in response.content.decode()


def test_downloads_as_markdown_and_a_self_contained_page_with_hostile_text_as_text(staff_client):
    hostile = '<script>alert("x")</script> =cmd|"/c calc"!A1'
    study = _draft_with_plan(hypotheses=hostile)
    study = study_set_status(study=study, status=Study.Status.PILOT)
    markdown = staff_client.get(reverse("analysis:preregistration", args=[study.slug, "md"]))
    assert markdown.status_code == 200
    assert markdown["Content-Type"] == "text/markdown; charset=utf-8"
    assert f"preregistration-{study.design_hash[:12]}.md" in markdown["Content-Disposition"]
    page = staff_client.get(reverse("analysis:preregistration", args=[study.slug, "html"]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "<script>" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    assert "<link" not in body  # nothing fetched from elsewhere
    assert "src=" not in body
    bad = staff_client.get(reverse("analysis:preregistration", args=[study.slug, "pdf"]))
    assert bad.status_code == 404


def test_the_preregistration_fields_enter_the_design_hash_only_when_filled_in():
    study = _draft_with_plan()
    before = study_design_hash(study=study)
    study.hypotheses = HYPOTHESIS
    study.save(update_fields=["hypotheses"])
    with_hypothesis = study_design_hash(study=study)
    assert with_hypothesis != before
    study.primary_comparison = "generated"
    study.save(update_fields=["primary_comparison"])
    assert study_design_hash(study=study) not in (before, with_hypothesis)
    study.hypotheses = study.primary_comparison = ""
    study.save(update_fields=["hypotheses", "primary_comparison"])
    assert study_design_hash(study=study) == before


@pytest.mark.parametrize("name", ["real", "gpt5"])
def test_the_primary_comparison_must_be_a_condition_compared_with_the_reference(name):
    study = _draft_with_plan(primary_comparison=name)
    with pytest.raises(ValidationError, match="primary comparison"):
        study_validate_design(study=study)


def test_the_report_says_what_was_planned_and_flags_a_sample_short_of_plan(rated_study):
    report = study_report(study=rated_study)
    check = report.preregistration
    assert check is not None
    assert check.design_hash == rated_study.design_hash
    assert ("comparisons with the reference", "planned") in check.analyses
    assert ("logistic regression", "planned") in check.analyses
    assert ("rating scales", "exploratory") in check.analyses
    # rated_study: 4 real and 5 generated participants analysed; no quotas, so the plan
    # is the power calculation's 226 per condition (0.83 against 0.72).
    assert check.deviations == [
        "real: 4 analysed participant(s) of 226 planned (the power calculation); the sample "
        "fell short of the plan so far (the study is still open).",
        "generated: 5 analysed participant(s) of 226 planned (the power calculation); the "
        "sample fell short of the plan so far (the study is still open).",
    ]
    text = report_as_text(report)
    assert "  comparisons with the reference: planned" in text
    assert "  Deviation: generated: 5 analysed participant(s) of 226 planned" in text


def test_a_design_changed_behind_the_lock_is_a_deviation(rated_study):
    rated_study.conditions.update(quota=40)  # bypassing the admin's lock
    check = study_report(study=rated_study).preregistration
    assert check is not None
    assert check.deviations[0] == (
        "The design differs from the one frozen with the preregistration."
    )
    assert "generated: 5 analysed participant(s) of 40 planned (its quota)" in check.deviations[2]


def test_the_results_page_and_api_show_the_check(staff_client, rated_study):
    page = staff_client.get(reverse("analysis:results", args=[rated_study.slug]))
    assert 'id="preregistration"' in page.content.decode()
    assert 'data-analysis="logistic regression"' in page.content.decode()
    api = staff_client.get(reverse("api:study-results", args=[rated_study.slug]))
    assert api.status_code == 200
    data = json.loads(api.content)["preregistration"]
    assert data["design_hash"] == rated_study.design_hash
    assert {"analysis": "logistic regression", "status": "planned"} in data["analyses"]


def test_a_draft_report_says_it_has_no_preregistration():
    study = _draft_with_plan()
    report = study_report(study=study)
    assert report.preregistration is None
    assert "Preregistration: none (a draft's design is not frozen)." in report_as_text(report)
