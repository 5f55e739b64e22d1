"""What the fraud signals (surveys.fraud) do once recorded: the burst window, quotas that
flagged participations do not fill, pre-registered exclusion rules and the ledger, the
monitor, the wide export and the API."""

from __future__ import annotations

import random
from datetime import timedelta

import pandas as pd
import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from analysis.exports import wide_frame
from analysis.frames import (
    analysed_mask,
    exclusion_ledger,
    exclusion_rule_steps,
    participants_frame,
)
from surveys import fraud
from surveys.exclusions import exclusion_rule_problems, participant_exclusions
from surveys.models import ExclusionRule, Participant, Study, Trial
from surveys.services import (
    condition_pick,
    study_close_if_full,
    study_design_document,
    study_design_hash,
    study_is_full,
    study_set_status,
)
from tests.surveys.exclusion_builders import add_rule, person, rules_study

pytestmark = pytest.mark.django_db

T0 = timezone.now() - timedelta(hours=1)


def _arrivals(minutes: list[float]) -> list[tuple[object, int]]:
    return [(T0 + timedelta(minutes=m), i) for i, m in enumerate(minutes)]


# ---------------------------------------------------------------------------------------
# The burst window


def test_a_burst_is_more_than_the_limit_inside_one_window():
    limits = fraud.BurstLimits(participations=3, minutes=10)
    # Four within ten minutes (0..10 inclusive): all four; the late one is not part of it.
    assert fraud._in_bursts(_arrivals([0, 2, 5, 10, 30]), limits) == {0, 1, 2, 3}  # type: ignore[arg-type]
    # Four spread so that no ten minutes hold more than three: none.
    assert fraud._in_bursts(_arrivals([0, 4, 8, 10.5, 30]), limits) == set()  # type: ignore[arg-type]
    # Exactly the limit: none.
    assert fraud._in_bursts(_arrivals([0, 1, 2]), limits) == set()  # type: ignore[arg-type]
    # Order of arrival in the list does not matter.
    assert fraud._in_bursts(_arrivals([10, 0, 5, 2]), limits) == {0, 1, 2, 3}  # type: ignore[arg-type]


def test_burst_limits_come_from_settings(settings, live_study):
    settings.CREDENCE_BURST_PARTICIPATIONS = 1
    settings.CREDENCE_BURST_MINUTES = 5
    pair = [
        Participant.objects.create(
            study=live_study,
            seed=1,
            consented_at=T0 + timedelta(minutes=m),
            last_seen_at=T0,
            network_hash="n" * 64,
        )
        for m in (0, 4)
    ]
    apart = Participant.objects.create(
        study=live_study, seed=1, consented_at=T0 + timedelta(minutes=20), last_seen_at=T0,
        network_hash="n" * 64,
    )  # fmt: skip
    assert fraud.network_burst_ids(study=live_study) == {p.pk for p in pair}
    assert apart.pk not in fraud.network_burst_ids(study=live_study)
    settings.CREDENCE_BURST_MINUTES = 3
    assert fraud.network_burst_ids(study=live_study) == set()


# ---------------------------------------------------------------------------------------
# Quotas


def _quota_study(*, hold_no_place: bool) -> Study:
    study = rules_study(attention=False, articles_per_participant=1)
    study.conditions.update(quota=1)
    study.flagged_hold_no_place = hold_no_place
    study.save()
    return study_set_status(study=study, status=Study.Status.LIVE)


def _flagged_completer(study: Study, condition: str) -> Participant:
    participant = person(study, believable=(3,), seconds=(60,), attention=None, condition=condition)
    Participant.objects.filter(pk=participant.pk).update(honeypot_filled=True)
    return participant


def test_a_flagged_participation_does_not_fill_its_condition_when_the_study_says_so():
    study = _quota_study(hold_no_place=True)
    _flagged_completer(study, "real")
    _flagged_completer(study, "generated")
    assert not study_is_full(study=study)
    assert condition_pick(study=study, rng=random.Random(1)).name in {"real", "generated"}
    assert study_close_if_full(study=study) is False
    # An unflagged completer in each condition fills them.
    person(study, believable=(3,), seconds=(60,), attention=None, condition="real")
    person(study, believable=(3,), seconds=(60,), attention=None, condition="generated")
    assert study_is_full(study=study)


def test_without_the_option_a_flagged_participation_fills_its_condition():
    study = _quota_study(hold_no_place=False)
    _flagged_completer(study, "real")
    _flagged_completer(study, "generated")
    assert study_is_full(study=study)
    assert study_close_if_full(study=study) is True


@pytest.mark.parametrize(
    "flag", ["honeypot", "copied", "pasted", "duplicate_browser", "network_burst"]
)
def test_every_flagging_signal_frees_the_place(flag, settings):
    study = _quota_study(hold_no_place=True)
    participant = person(study, believable=(3,), seconds=(60,), attention=None)
    other = person(study, believable=(3,), seconds=(60,), attention=None, condition="generated")
    assert study_is_full(study=study)  # neither is flagged yet
    if flag == "honeypot":
        Participant.objects.filter(pk=participant.pk).update(honeypot_filled=True)
    elif flag == "copied":
        Trial.objects.filter(participant=participant).update(copies=1)
    elif flag == "pasted":
        Trial.objects.filter(participant=participant).update(pastes=1)
    elif flag == "duplicate_browser":
        Participant.objects.filter(pk__in=[participant.pk, other.pk]).update(browser_hash="c" * 64)
    else:
        settings.CREDENCE_BURST_PARTICIPATIONS = 1
        Participant.objects.filter(pk__in=[participant.pk, other.pk]).update(network_hash="d" * 64)
    assert not study_is_full(study=study)


def test_answering_without_javascript_holds_a_place():
    study = _quota_study(hold_no_place=True)
    for condition in ("real", "generated"):
        participant = person(
            study, believable=(3,), seconds=(60,), attention=None, condition=condition
        )
        assert fraud.participation_signals(study=study)[participant.pk].no_javascript
    assert study_is_full(study=study)


def test_the_option_is_in_the_design_document_only_when_set():
    study = rules_study()
    before = study_design_hash(study=study)
    assert "flagged_hold_no_place" not in study_design_document(study=study)
    study.flagged_hold_no_place = True
    assert study_design_document(study=study)["flagged_hold_no_place"] is True
    assert study_design_hash(study=study) != before


# ---------------------------------------------------------------------------------------
# Exclusion rules and the ledger


@pytest.fixture
def flagged_study(settings) -> tuple[Study, dict[str, int]]:
    """A live study pre-registering every signal rule, and one completed participant per
    signal (two sharing a browser; the network-burst limit lowered to 1 in 10 minutes)."""
    settings.CREDENCE_BURST_PARTICIPATIONS = 1
    study = rules_study(attention=False)
    for position, kind in enumerate(
        [
            ExclusionRule.Kind.HONEYPOT,
            ExclusionRule.Kind.DUPLICATE_BROWSER,
            ExclusionRule.Kind.NETWORK_BURST,
            ExclusionRule.Kind.COPIED,
            ExclusionRule.Kind.NO_JAVASCRIPT,
        ]
    ):
        add_rule(study, kind, position=position)
    add_rule(study, ExclusionRule.Kind.PASTED, position=9, threshold=2)
    study = study_set_status(study=study, status=Study.Status.LIVE)
    people = {
        name: person(study, attention=None).pk
        for name in (
            "clean",
            "honeypot",
            "browser_a",
            "browser_b",
            "burst_a",
            "burst_b",
            "copied",
            "pasted_once",
            "pasted",
            "no_js",
        )
    }
    Trial.objects.filter(participant__study=study).update(copies=0, pastes=0)
    Participant.objects.filter(pk=people["honeypot"]).update(honeypot_filled=True)
    Participant.objects.filter(pk__in=[people["browser_a"], people["browser_b"]]).update(
        browser_hash="b" * 64
    )
    Participant.objects.filter(pk__in=[people["burst_a"], people["burst_b"]]).update(
        network_hash="n" * 64
    )
    Trial.objects.filter(participant=people["copied"], position=1).update(copies=1)
    Trial.objects.filter(participant=people["pasted_once"], position=1).update(pastes=1)
    Trial.objects.filter(participant=people["pasted"]).update(pastes=1)  # once per article
    Trial.objects.filter(participant=people["no_js"]).update(copies=None, pastes=None)
    return study, people


def test_each_signal_rule_excludes_its_flagged_participants(flagged_study):
    study, people = flagged_study
    excluded = {pid: rule.key for pid, rule in participant_exclusions(study=study).items()}
    assert excluded == {
        people["honeypot"]: "honeypot",
        people["browser_a"]: "duplicate_browser",
        people["browser_b"]: "duplicate_browser",
        people["burst_a"]: "network_burst",
        people["burst_b"]: "network_burst",
        people["copied"]: "copied",
        people["pasted"]: "pasted",
        people["no_js"]: "no_javascript",
    }


def test_the_ledger_reports_a_step_per_signal_rule(flagged_study):
    study, people = flagged_study
    frame = participants_frame(study=study)
    ledger = exclusion_ledger(frame, rules=exclusion_rule_steps(study=study))
    burst = "Arrived in a burst: more than 1 participations from one network within 10 minutes"
    assert [(s.key, s.label, s.excluded, s.remaining) for s in ledger[4:]] == [
        ("honeypot", "Filled in the hidden honeypot field, excluded", 1, 9),
        ("duplicate_browser", "Same browser as another participation, excluded", 2, 7),
        ("network_burst", f"{burst}, excluded", 2, 5),
        ("copied", "Copied article text 1 time or more, excluded", 1, 4),
        ("no_javascript", "Answered without JavaScript, excluded", 1, 3),
        ("pasted", "Pasted into a free-text answer 2 times or more, excluded", 1, 2),
        ("analysed", "Analysed", 0, 2),
    ]
    assert frame.loc[analysed_mask(frame), "participant_id"].tolist() == sorted(
        [people["clean"], people["pasted_once"]]
    )


def test_signal_rule_thresholds_are_checked_before_launch():
    study = rules_study(attention=False)
    add_rule(study, ExclusionRule.Kind.PASTED, threshold=0.5)
    add_rule(study, ExclusionRule.Kind.COPIED, position=1, threshold=3)
    add_rule(study, ExclusionRule.Kind.HONEYPOT, position=2, threshold=3)
    problems = exclusion_rule_problems(study=study)
    assert len(problems) == 2
    assert "whole number from 1" in problems[0]
    assert "Honeypot" in problems[1] or "honeypot" in problems[1]


# ---------------------------------------------------------------------------------------
# Monitor, exports, API


def test_monitor_counts_each_signal_per_condition(flagged_study):
    study, _ = flagged_study
    person(study, attention=None, condition="generated", is_test=True)  # never counted
    rows = {row.condition: row for row in fraud.study_signal_counts(study=study)}
    names = [name for name, _ in fraud.SIGNALS]
    real = dict(zip(names, rows["real"].counts, strict=True))
    assert real == {
        "duplicate_browser": 2,
        "network_burst": 2,
        "honeypot": 1,
        "copied": 1,
        "pasted": 2,
        "no_javascript": 1,
    }
    assert rows["real"].participations == 10
    assert rows["real"].flagged == 8  # all but "clean" and "no_js"
    assert rows["generated"].participations == 0
    assert rows["all"].counts == rows["real"].counts


def test_change_page_shows_the_signal_table(admin_client, flagged_study):
    study, _ = flagged_study
    html = admin_client.get(reverse("admin:surveys_study_change", args=[study.pk])).content
    page = html.decode()
    assert "Fraud and assisted-answering signals" in page
    assert '<tr data-signals="real"><td>real</td><td>10</td><td>2</td><td>2</td><td>1</td>' in page


def test_wide_export_and_participants_frame_carry_the_signals(flagged_study):
    study, people = flagged_study
    wide = wide_frame(study=study).set_index("participant_id")
    assert bool(wide.loc[people["honeypot"], "honeypot_filled"]) is True
    assert bool(wide.loc[people["clean"], "honeypot_filled"]) is False
    assert bool(wide.loc[people["browser_a"], "duplicate_browser"]) is True
    assert bool(wide.loc[people["burst_b"], "network_burst"]) is True
    assert wide.loc[people["pasted"], "answer_pastes"] == 2
    assert wide.loc[people["copied"], "article_copies"] == 1
    assert wide.loc[people["no_js"], "article_copies"] is pd.NA
    assert bool(wide.loc[people["no_js"], "javascript"]) is False
    assert bool(wide.loc[people["clean"], "javascript"]) is True


def test_api_participants_carry_the_signals(flagged_study, admin_user):
    study, people = flagged_study
    client = APIClient()
    client.force_authenticate(admin_user)
    response = client.get(reverse("api:participant-list", args=[study.slug]))
    assert response.status_code == 200
    rows = {row["participant_id"]: row for row in response.json()["results"]}
    assert rows[people["honeypot"]]["honeypot_filled"] is True
    assert rows[people["clean"]]["honeypot_filled"] is False
    assert rows[people["browser_b"]]["duplicate_browser"] is True
    assert rows[people["burst_a"]]["network_burst"] is True
    assert rows[people["pasted"]]["answer_pastes"] == 2
    assert rows[people["no_js"]]["article_copies"] is None
    assert rows[people["no_js"]]["javascript"] is False
    assert rows[people["clean"]]["javascript"] is True
    csv_response = client.get(reverse("api:participant-list", args=[study.slug]), {"format": "csv"})
    assert csv_response.status_code == 200
    header = csv_response.content.decode().splitlines()[0]
    assert header.endswith(
        "duplicate_browser,network_burst,honeypot_filled,article_copies,answer_pastes,javascript"
    )


def test_the_quota_option_is_editable_in_a_draft_and_locked_once_live(admin_client, live_study):
    draft = rules_study()
    draft_form = admin_client.get(reverse("admin:surveys_study_change", args=[draft.pk]))
    assert "flagged_hold_no_place" in draft_form.context["adminform"].form.fields
    live_form = admin_client.get(reverse("admin:surveys_study_change", args=[live_study.pk]))
    assert "flagged_hold_no_place" not in live_form.context["adminform"].form.fields
    assert "flagged_hold_no_place" in live_form.content.decode()  # shown, read-only
