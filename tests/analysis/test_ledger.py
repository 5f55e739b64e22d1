"""The exclusion ledger with pre-registered rules: recruited -> test -> incomplete ->
screened out -> one step per rule -> analysed, every count from the data, the same
participants in the ledger, the frames, the report and the wide export."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string

from analysis.exports import exclusion_reasons, wide_frame
from analysis.frames import (
    analysed_mask,
    exclusion_ledger,
    exclusion_reason_labels,
    exclusion_rule_steps,
    participants_frame,
)
from analysis.presentation import report_as_text, table_context
from analysis.services import study_report
from surveys.models import ExclusionRule, Participant, Study
from surveys.services import study_set_status
from tests.surveys.exclusion_builders import add_rule, person, rules_study

pytestmark = pytest.mark.django_db

SPEED_LABEL = "Read faster than 15 words per second"
FLAT_LABEL = 'Straight-lining: the same answer to "believable" on every article'


@pytest.fixture
def ruled_study() -> tuple[Study, dict[str, list[int]]]:
    """A live study whose pre-registered rules are: failed check, faster than 15 words
    per second, straight-lining on "believable"; and participants, by the step expected
    to remove them (articles are 60 words, two per participant)."""
    study = rules_study()
    add_rule(study, ExclusionRule.Kind.FAILED_CHECK, position=0)
    add_rule(study, ExclusionRule.Kind.TOO_FAST, position=1, threshold=15)
    add_rule(study, ExclusionRule.Kind.STRAIGHT_LINING, position=2, question_key="believable")
    study = study_set_status(study=study, status=Study.Status.LIVE)
    fails_everything = {"attention": "Red", "seconds": (1, 1), "believable": (4, 4)}
    people: dict[str, list[int]] = {
        "": [
            person(study, believable=(3, 2)).pk,
            person(study, believable=(1, 4), condition="generated").pk,
            # Exactly 15 words per second is not faster than 15.
            person(study, believable=(2, 3), seconds=(4, 4), condition="generated").pk,
        ],
        "test": [person(study, is_test=True, **fails_everything).pk],  # type: ignore[arg-type]
        "incomplete": [
            person(study, status=Participant.Status.IN_PROGRESS, attention=None).pk,
            person(study, status=Participant.Status.WITHDRAWN, **fails_everything).pk,  # type: ignore[arg-type]
        ],
        "screened_out": [person(study, status=Participant.Status.SCREENED_OUT).pk],
        "attention": [
            person(study, attention="green").pk,
            # Also too fast and straight-lining: the first rule takes them.
            person(study, condition="generated", **fails_everything).pk,  # type: ignore[arg-type]
        ],
        "too_fast": [person(study, seconds=(3, 4)).pk],  # 120 words in 7 s
        "straight_lining_believable": [
            person(study, believable=(1, 1)).pk,
            person(study, believable=(4, 4), condition="generated").pk,
        ],
    }
    return study, people


def test_ledger_has_a_step_per_rule_and_adds_up(ruled_study):
    study, _ = ruled_study
    frame = participants_frame(study=study)
    ledger = exclusion_ledger(frame, rules=exclusion_rule_steps(study=study))
    assert [(s.key, s.label, s.excluded, s.remaining) for s in ledger] == [
        ("recruited", "Recruited (all participations)", 0, 12),
        ("test", "Test / preview sessions excluded", 1, 11),
        ("incomplete", "Incomplete (in progress or withdrawn) excluded", 2, 9),
        ("screened_out", "Screened out by the comprehension questions, excluded", 1, 8),
        ("attention", "Failed an attention check, excluded", 2, 6),
        ("too_fast", f"{SPEED_LABEL}, excluded", 1, 5),
        ("straight_lining_believable", f"{FLAT_LABEL}, excluded", 2, 3),
        ("analysed", "Analysed", 0, 3),
    ]
    recruited = ledger[0].remaining
    assert recruited == Participant.objects.filter(study=study).count()
    assert recruited - sum(s.excluded for s in ledger) == ledger[-1].remaining
    assert ledger[-1].remaining == int(analysed_mask(frame).sum())


def test_each_participant_carries_the_reason_of_its_step(ruled_study):
    study, people = ruled_study
    frame = participants_frame(study=study).set_index("participant_id")
    for reason, ids in people.items():
        assert frame.loc[ids, "exclusion_reason"].tolist() == [reason] * len(ids), reason
    analysed = frame.index[analysed_mask(frame.reset_index()).to_numpy()]
    assert sorted(analysed) == sorted(people[""])
    assert exclusion_reason_labels(study=study) == {
        "": "analysed",
        "test": "Test / preview sessions excluded",
        "incomplete": "Incomplete (in progress or withdrawn) excluded",
        "screened_out": "Screened out by the comprehension questions, excluded",
        "attention": "Failed an attention check",
        "too_fast": SPEED_LABEL,
        "straight_lining_believable": FLAT_LABEL,
    }


def test_a_piece_of_the_study_gets_the_same_reasons_as_the_whole(ruled_study):
    # Exports walk a study in id ranges: a rule must judge a piece as it judges the whole.
    study, _ = ruled_study
    whole = participants_frame(study=study).set_index("participant_id")["exclusion_reason"]
    ids = sorted(whole.index)
    middle = (ids[3], ids[9])
    piece = participants_frame(study=study, id_range=middle).set_index("participant_id")
    assert piece["exclusion_reason"].to_dict() == whole.loc[ids[3] : ids[9]].to_dict()


def test_report_analyses_only_the_participants_no_rule_removed(ruled_study):
    study, _ = ruled_study
    report = study_report(study=study)
    assert report.analysed == 3
    assert [s.key for s in report.ledger][4:7] == [
        "attention",
        "too_fast",
        "straight_lining_believable",
    ]
    # Three analysed participants rated two articles each.
    assert int(report.proportions["n"].sum()) == 6
    text = report_as_text(report)
    assert f"{SPEED_LABEL}, excluded" in text
    assert f"{FLAT_LABEL}, excluded" in text
    speed_line = next(line for line in text.splitlines() if SPEED_LABEL in line)
    assert speed_line.split()[-2:] == ["-1", "5"]
    html = render_to_string("analysis/_tables.html", table_context(report))
    assert 'data-step="too_fast"' in html
    assert "Read faster than 15 words per second, excluded" in html
    assert "Straight-lining: the same answer to &quot;believable&quot; on every article" in html


def test_wide_export_labels_each_exclusion_with_its_rule(ruled_study):
    study, people = ruled_study
    wide = wide_frame(study=study, include_test=True).set_index("participant_id")
    for reason, ids in people.items():
        assert wide.loc[ids, "exclusion_reason"].tolist() == [reason] * len(ids), reason
    assert wide["analysed"].astype(str).eq("True").sum() == 3
    frame = participants_frame(study=study)
    assert exclusion_reasons(frame).tolist() == frame["exclusion_reason"].tolist()


def test_without_rules_or_checks_only_the_fixed_steps_remain():
    study = rules_study(attention=False)
    person(study, attention=None, seconds=(0.5, 0.5), believable=(4, 4))
    person(study, attention=None, status=Participant.Status.SCREENED_OUT)
    frame = participants_frame(study=study)
    rules = exclusion_rule_steps(study=study)
    assert rules == []
    ledger = exclusion_ledger(frame, rules=rules)
    assert [(s.key, s.excluded, s.remaining) for s in ledger] == [
        ("recruited", 0, 2),
        ("test", 0, 2),
        ("incomplete", 0, 2),
        ("screened_out", 1, 1),
        ("analysed", 0, 1),
    ]


def test_a_ledger_without_the_studys_rules_refuses_to_add_up_wrongly(ruled_study):
    study, _ = ruled_study
    frame = participants_frame(study=study)
    with pytest.raises(ValueError, match="attention, straight_lining_believable, too_fast"):
        exclusion_ledger(frame)
