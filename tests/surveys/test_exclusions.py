"""Exclusion rules (surveys.exclusions): each rule on hand-made participants, its
boundaries, rule order, who is judged at all, launch validation and the admin inline."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from surveys.exclusions import (
    exclusion_rule_problems,
    exclusions_by_condition,
    participant_exclusions,
    study_exclusion_rules,
)
from surveys.models import Condition, ExclusionRule, Participant, Question, Study
from surveys.services import study_design_hash, study_set_status
from tests.factories import StudyFactory
from tests.surveys.exclusion_builders import add_rule, person, rules_study
from tests.surveys.test_admin import _study_form_data


def _keys(study: Study) -> dict[int, str]:
    return {pid: rule.key for pid, rule in participant_exclusions(study=study).items()}


# --- Failed attention checks ----------------------------------------------------------


@pytest.mark.django_db
def test_a_study_with_checks_and_no_rules_excludes_failed_checks_implicitly():
    study = rules_study()
    passed = person(study, attention=" blue ")  # stripped, case-insensitive: passes
    failed = person(study, attention="Red")
    rules = study_exclusion_rules(study=study)
    assert [(r.key, r.label, r.implicit) for r in rules] == [
        ("attention", "Failed an attention check", True)
    ]
    assert _keys(study) == {failed.pk: "attention"}
    assert passed.pk not in _keys(study)


@pytest.mark.django_db
def test_no_checks_and_no_rules_exclude_nobody():
    study = rules_study(attention=False)
    person(study, attention=None, believable=(1, 1), seconds=(0.1, 0.1))
    assert study_exclusion_rules(study=study) == []
    assert participant_exclusions(study=study) == {}


@pytest.mark.django_db
def test_an_explicit_failed_check_rule_replaces_the_implicit_one_at_its_position():
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.TOO_FAST, position=0, threshold=15)
    add_rule(study, ExclusionRule.Kind.FAILED_CHECK, position=1)
    rules = study_exclusion_rules(study=study)
    assert [(r.key, r.implicit) for r in rules] == [("too_fast", False), ("attention", False)]


# --- Too fast ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_too_fast_boundary_is_the_threshold_itself():
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.TOO_FAST, threshold=15)
    # 120 words: 8 s is exactly 15 words/s (kept), 7.9 s is faster (excluded).
    exactly = person(study, seconds=(4, 4))
    faster = person(study, seconds=(4, 3.9))
    slow = person(study, seconds=(30, 30))
    assert _keys(study) == {faster.pk: "too_fast"}
    assert {exactly.pk, slow.pk}.isdisjoint(_keys(study))


@pytest.mark.django_db
def test_too_fast_is_the_overall_speed_not_any_single_article():
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.TOO_FAST, threshold=15)
    # One article in 1 s (60 words/s) but 120 words over 11 s overall: 10.9 words/s.
    skimmed_one = person(study, seconds=(1, 10))
    assert skimmed_one.pk not in _keys(study)


@pytest.mark.django_db
def test_too_fast_prefers_the_browsers_visible_time_to_the_servers():
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.TOO_FAST, threshold=15)
    # Server says 60 s per page, but the page was visible 3 s each: 120 words / 6 s.
    hidden_tab = person(study, seconds=(60, 60), visible_ms=(3000, 3000))
    # Server says 2 s per page, visible 20 s each (clock skew cannot happen server-side,
    # but the client's measure wins whenever it exists): 120 / 40 = 3 words/s.
    by_client = person(study, seconds=(2, 2), visible_ms=(20_000, 20_000))
    # Mixed: one page measured by the browser (2 s), one by the server (10 s): 120 / 12.
    mixed = person(study, seconds=(60, 10), visible_ms=(2000, None))
    assert _keys(study) == {hidden_tab.pk: "too_fast"}
    assert {by_client.pk, mixed.pk}.isdisjoint(_keys(study))


@pytest.mark.django_db
def test_too_fast_skips_untimed_pages_and_participants():
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.TOO_FAST, threshold=15)
    never_timed = person(study, seconds=(None, None))
    # The untimed page's words do not count: 60 words in 3 s = 20 words/s.
    half_timed = person(study, seconds=(3, None))
    zero_visible = person(study, seconds=(30, 30), visible_ms=(0, 0))
    assert _keys(study) == {half_timed.pk: "too_fast", zero_visible.pk: "too_fast"}
    assert never_timed.pk not in _keys(study)


# --- Straight-lining --------------------------------------------------------------------


@pytest.mark.django_db
def test_straight_lining_on_one_question():
    study = rules_study(articles_per_participant=3)
    add_rule(study, ExclusionRule.Kind.STRAIGHT_LINING, question_key="believable")
    same = person(study, believable=(4, 4, 4), seconds=(60, 60, 60))
    varied = person(study, believable=(4, 4, 3), seconds=(60, 60, 60))
    one_article = person(study, believable=(4,), seconds=(60,))
    assert _keys(study) == {same.pk: "straight_lining_believable"}
    assert {varied.pk, one_article.pk}.isdisjoint(_keys(study))
    rule = study_exclusion_rules(study=study)[-1]  # after the implicit failed-check rule
    assert rule.label == 'Straight-lining: the same answer to "believable" on every article'


@pytest.mark.django_db
def test_straight_lining_on_every_rating_question_needs_all_of_them_constant():
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.STRAIGHT_LINING)
    # believable always 4, accurate always 1: each question constant -> excluded.
    flat = person(study, believable=(4, 4), accurate=(1, 1))
    # believable constant, accurate varies -> kept.
    partly = person(study, believable=(4, 4), accurate=(1, 2))
    # The yes/no question (always "yes" here) is not a rating question and never counts.
    assert _keys(study) == {flat.pk: "straight_lining"}
    assert partly.pk not in _keys(study)


# --- Who is judged, rule order, subsets ---------------------------------------------------


@pytest.mark.django_db
def test_only_completed_real_participants_are_judged():
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.FAILED_CHECK)
    add_rule(study, ExclusionRule.Kind.TOO_FAST, position=1, threshold=15)
    add_rule(study, ExclusionRule.Kind.STRAIGHT_LINING, position=2)
    bad = {"attention": "Red", "seconds": (1, 1), "believable": (4, 4)}
    judged = person(study, **bad)  # type: ignore[arg-type]
    for status in (
        Participant.Status.IN_PROGRESS,
        Participant.Status.WITHDRAWN,
        Participant.Status.SCREENED_OUT,
    ):
        person(study, status=status, **bad)  # type: ignore[arg-type]
    person(study, is_test=True, **bad)  # type: ignore[arg-type]
    assert _keys(study) == {judged.pk: "attention"}


@pytest.mark.django_db
def test_the_first_rule_by_position_wins():
    study = rules_study()
    # Positions, not creation order, decide: too fast is rule 1 here.
    add_rule(study, ExclusionRule.Kind.STRAIGHT_LINING, position=2, question_key="believable")
    add_rule(study, ExclusionRule.Kind.FAILED_CHECK, position=1)
    add_rule(study, ExclusionRule.Kind.TOO_FAST, position=0, threshold=15)
    everything = person(study, attention="Red", seconds=(1, 1), believable=(4, 4))
    check_and_flat = person(study, attention="Red", believable=(4, 4))
    only_flat = person(study, believable=(2, 2))
    assert _keys(study) == {
        everything.pk: "too_fast",
        check_and_flat.pk: "attention",
        only_flat.pk: "straight_lining_believable",
    }


@pytest.mark.django_db
def test_repeated_kinds_get_distinct_keys():
    study = rules_study(articles_per_participant=2)
    add_rule(study, ExclusionRule.Kind.STRAIGHT_LINING, position=0)
    add_rule(study, ExclusionRule.Kind.STRAIGHT_LINING, position=1, question_key="believable")
    add_rule(study, ExclusionRule.Kind.TOO_FAST, position=2, threshold=20)
    add_rule(study, ExclusionRule.Kind.TOO_FAST, position=3, threshold=15)
    keys = [r.key for r in study_exclusion_rules(study=study)]
    assert keys == [
        "attention",
        "straight_lining",
        "straight_lining_believable",
        "too_fast",
        "too_fast_2",
    ]
    assert len(set(keys)) == len(keys)


@pytest.mark.django_db
def test_a_subset_of_participants_is_judged_alone():
    study = rules_study()
    first = person(study, attention="Red")
    second = person(study, attention="Red")
    subset = Participant.objects.filter(pk=second.pk)
    assert set(participant_exclusions(study=study, participants=subset)) == {second.pk}
    assert set(participant_exclusions(study=study)) == {first.pk, second.pk}


@pytest.mark.django_db
def test_counts_by_condition_for_the_monitor():
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.TOO_FAST, position=1, threshold=15)
    person(study, attention="Red", condition="real")
    person(study, seconds=(1, 1), condition="real")
    person(study, seconds=(1, 1), condition="generated")
    person(study, condition="generated")
    counts = exclusions_by_condition(study=study)
    real, generated = (Condition.objects.get(study=study, name=n).pk for n in ("real", "generated"))
    assert counts == {
        real: {"Failed an attention check": 1, "Read faster than 15 words per second": 1},
        generated: {"Read faster than 15 words per second": 1},
    }


@pytest.mark.django_db
def test_query_count_does_not_grow_with_participants():
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.FAILED_CHECK)
    add_rule(study, ExclusionRule.Kind.TOO_FAST, position=1, threshold=15)
    add_rule(study, ExclusionRule.Kind.STRAIGHT_LINING, position=2)
    person(study)
    with CaptureQueriesContext(connection) as few:
        participant_exclusions(study=study)
    for _ in range(6):
        person(study, seconds=(1, 1))
    with CaptureQueriesContext(connection) as many:
        excluded = participant_exclusions(study=study)
    assert len(excluded) == 6
    assert len(many) == len(few) <= 6


# --- Validation at launch and the design hash ------------------------------------------


@pytest.mark.django_db
def test_valid_rules_have_no_problems_and_are_part_of_the_design_hash():
    study = rules_study()
    before = study_design_hash(study=study)
    add_rule(study, ExclusionRule.Kind.FAILED_CHECK)
    add_rule(study, ExclusionRule.Kind.TOO_FAST, position=1, threshold=15)
    add_rule(study, ExclusionRule.Kind.STRAIGHT_LINING, position=2, question_key="believable")
    assert exclusion_rule_problems(study=study) == []
    assert study_design_hash(study=study) != before
    live = study_set_status(study=study, status=Study.Status.LIVE)
    assert live.status == Study.Status.LIVE


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"kind": "failed_check", "threshold": 3.0}, "threshold is used by the reading-speed"),
        ({"kind": "failed_check", "question_key": "believable"}, "question key is used by"),
        ({"kind": "straight_lining", "question_key": "credible"}, '"credible" is not a rating'),
        ({"kind": "straight_lining", "question_key": "nope"}, '"nope" is not a rating'),
    ],
)
def test_bad_rules_are_refused_at_launch_and_nothing_changes(fields, expected):
    study = rules_study()
    ExclusionRule.objects.create(study=study, **fields)
    problems = exclusion_rule_problems(study=study)
    assert len(problems) == 1
    assert expected in problems[0]
    assert problems[0].startswith("Exclusion rule 1 (")
    with pytest.raises(ValidationError, match=expected):
        study_set_status(study=study, status=Study.Status.LIVE)
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT
    assert study.design_hash == ""


@pytest.mark.django_db
@pytest.mark.parametrize("threshold", [0.0, -2.0])
def test_a_speed_rule_with_a_speed_of_zero_or_less_cannot_be_saved(threshold):
    study = rules_study()
    with pytest.raises(ValidationError, match="too_fast_rule_has_threshold"):
        ExclusionRule(study=study, kind="too_fast", threshold=threshold).full_clean()


@pytest.mark.django_db
def test_the_database_refuses_a_speed_rule_without_a_positive_speed():
    study = rules_study()
    for threshold in (None, 0.0, -1.0):
        with pytest.raises(IntegrityError), transaction.atomic():
            add_rule(study, ExclusionRule.Kind.TOO_FAST, threshold=threshold)
    assert not study.exclusion_rules.exists()


@pytest.mark.django_db
def test_failed_check_rule_needs_an_attention_check():
    study = rules_study(attention=False)
    add_rule(study, ExclusionRule.Kind.FAILED_CHECK)
    assert exclusion_rule_problems(study=study) == [
        "Exclusion rule 1 (Failed an attention check): the study has no attention check."
    ]


@pytest.mark.django_db
def test_straight_lining_needs_two_articles_per_participant_and_a_rating_question():
    study = rules_study(articles_per_participant=1)
    study.questions.filter(kind=Question.Kind.LIKERT).delete()
    add_rule(study, ExclusionRule.Kind.STRAIGHT_LINING)
    problems = exclusion_rule_problems(study=study)
    assert len(problems) == 2
    assert "no rating-scale or slider question" in problems[0]
    assert "fewer than two articles" in problems[1]


@pytest.mark.django_db
def test_a_repeated_rule_is_a_problem():
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.TOO_FAST, position=0, threshold=15)
    add_rule(study, ExclusionRule.Kind.TOO_FAST, position=1, threshold=15)
    assert exclusion_rule_problems(study=study) == [
        "Exclusion rule 2 (Read articles faster than N words per second) repeats an earlier rule."
    ]


# --- The admin: rules are edited with the design and locked with it --------------------


def _with_rule(data: dict[str, object], study: Study, **fields: object) -> None:
    index = int(data["exclusion_rules-TOTAL_FORMS"])  # type: ignore[call-overload]
    data["exclusion_rules-TOTAL_FORMS"] = index + 1
    data[f"exclusion_rules-{index}-study"] = study.pk
    for name, value in fields.items():
        data[f"exclusion_rules-{index}-{name}"] = value


@pytest.mark.django_db
def test_admin_adds_a_rule_to_a_draft_study(admin_client):
    # No conditions or questions yet: the form then carries the rules only.
    study = StudyFactory.create()
    data = _study_form_data(study)
    _with_rule(data, study, position=0, kind="too_fast", threshold="15", question_key="")
    response = admin_client.post(reverse("admin:surveys_study_change", args=[study.pk]), data)
    assert response.status_code == 302
    assert list(study.exclusion_rules.values_list("kind", "threshold")) == [("too_fast", 15.0)]


@pytest.mark.django_db
def test_admin_refuses_a_speed_rule_without_a_speed_and_saves_nothing(admin_client):
    # No conditions or questions yet: the form then carries the rules only.
    study = StudyFactory.create()
    data = _study_form_data(study)
    _with_rule(data, study, position=0, kind="too_fast", threshold="", question_key="")
    response = admin_client.post(reverse("admin:surveys_study_change", args=[study.pk]), data)
    assert response.status_code == 200
    assert "Set the reading speed" in response.content.decode()
    assert not study.exclusion_rules.exists()


@pytest.mark.django_db
def test_admin_cannot_add_a_rule_once_live(admin_client):
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.TOO_FAST, threshold=15)
    study = study_set_status(study=study, status=Study.Status.LIVE)
    url = reverse("admin:surveys_study_change", args=[study.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert not page.context["inline_admin_formsets"][2].has_add_permission
    data = _study_form_data(study)
    _with_rule(data, study, position=1, kind="failed_check", threshold="", question_key="")
    response = admin_client.post(url, data)
    assert response.status_code == 302
    assert list(study.exclusion_rules.values_list("kind", flat=True)) == ["too_fast"]
    assert study_design_hash(study=study) == Study.objects.get(pk=study.pk).design_hash


@pytest.mark.django_db
def test_monitor_counts_exclusions_by_rule_per_condition(admin_client):
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.TOO_FAST, threshold=15)
    study = study_set_status(study=study, status=Study.Status.LIVE)
    person(study, seconds=(1, 1), condition="generated")
    person(study, seconds=(1, 1), condition="generated")
    person(study, attention="Red", condition="real")
    person(study, seconds=(1, 1), is_test=True)
    response = admin_client.get(reverse("admin:surveys_study_change", args=[study.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Excluded by rule" in content
    assert "<tr><td>real</td><td>Failed an attention check</td><td>1</td></tr>" in content
    assert (
        "<tr><td>generated</td><td>Read faster than 15 words per second</td><td>2</td></tr>"
        in content
    )
