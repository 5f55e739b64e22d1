"""Question.scoring: bad definitions are refused with a clear message, the instruments
store valid ones, and migration 0007 fills them for questions made before."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from surveys.instruments import DETECTION_OPTIONS, instrument_apply
from surveys.models import Question
from tests.factories import QuestionFactory, StudyFactory

BEFORE = [("surveys", "0006_participant_comprehension_tries")]
AFTER = [("surveys", "0007_question_scoring")]

OPTIONS = ["A person", "A program", "No idea"]


def _detection_question(scoring: object) -> Question:
    return QuestionFactory.build(
        study=StudyFactory.create(),
        key="guess",
        kind=Question.Kind.CHOICE,
        choices=OPTIONS,
        scoring=scoring,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scoring", "message"),
    [
        ({"role": "detection", "human": ["A person"], "machine": ["A robot"]}, "not one of"),
        (
            {"role": "detection", "human": ["A person"], "machine": ["A person"]},
            "in both",
        ),
        ({"role": "detection", "human": ["A person"], "machine": ["A program"]}, "missing"),
        ({"role": "detection"}, "option lists"),
        ({"role": "guess"}, "role must be one of"),
        ({"role": "credible"}, "yes/no"),
        ({"role": "detection", "human": "A person"}, "must be a list"),
        (["detection"], "JSON object"),
    ],
)
def test_bad_definition_is_refused(scoring, message):
    question = _detection_question(scoring)
    with pytest.raises(ValidationError) as error:
        question.full_clean()
    assert message in " ".join(error.value.messages)
    assert not Question.objects.filter(key="guess").exists()


@pytest.mark.django_db
def test_good_definition_passes():
    question = _detection_question(
        {
            "role": "detection",
            "human": ["A person"],
            "machine": ["A program"],
            "neutral": ["No idea"],
        }
    )
    question.full_clean()


@pytest.mark.django_db
def test_instruments_store_valid_definitions():
    study = StudyFactory.create()
    for name in ("kreps", "detection", "detection_4"):
        instrument_apply(study=study, name=name)
    roles = {q.key: q.scoring.get("role") for q in study.questions.all()}
    assert roles == {
        "credible": "credible",
        "believable": "credibility_item",
        "accurate": "credibility_item",
        "clear": "credibility_item",
        "written_by": "detection",
        "written_by_4": "detection",
    }
    for question in study.questions.all():
        question.full_clean()
    written_by = study.questions.get(key="written_by")
    # The five-point scale's midpoint is neutral, not a machine judgement.
    assert DETECTION_OPTIONS[2] in written_by.scoring["neutral"]


@pytest.mark.django_db(transaction=True)
def test_migration_fills_scoring_for_old_style_questions():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Study = old.get_model("surveys", "Study")
    OldQuestion = old.get_model("surveys", "Question")
    study = Study.objects.create(slug="old", title="Old")
    make = OldQuestion.objects.create
    make(study=study, key="credible", text="?", kind="binary", position=0)
    make(study=study, key="believable", text="?", kind="likert", scale_min=1, scale_max=4)
    make(study=study, key="written_by_4", text="?", kind="choice", choices=["Human", "Machine"])
    make(study=study, key="detection", text="?", kind="choice", choices=list(DETECTION_OPTIONS))
    make(study=study, key="mood", text="?", kind="likert", scale_min=1, scale_max=4)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    rows = dict(new.get_model("surveys", "Question").objects.values_list("key", "scoring"))
    assert rows["credible"] == {"role": "credible"}
    assert rows["believable"] == {"role": "credibility_item"}
    assert rows["mood"] == {}
    # Only the detection question analysis used to pick ("detection" before the others),
    # its options sorted by the words they name, as analysis did, except the midpoint:
    # it names "machine" but is neutral (the old rule's bug, corrected here).
    assert rows["written_by_4"] == {}
    assert rows["detection"] == {
        "role": "detection",
        "human": list(DETECTION_OPTIONS[:2]),
        "machine": list(DETECTION_OPTIONS[3:5]),
        "neutral": [DETECTION_OPTIONS[2], DETECTION_OPTIONS[5]],
    }
    # Back to the latest state for the tests that follow.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def _admin_form(study: object, scoring: str) -> object:
    from surveys.admin import QuestionForm

    return QuestionForm(
        data={
            "study": study.pk,  # type: ignore[attr-defined]
            "position": 0,
            "key": "guess",
            "text": "Who wrote this?",
            "kind": "choice",
            "scope": "article",
            "required": True,
            "choices": '["A person", "A program", "No idea"]',
            "scoring": scoring,
        }
    )


@pytest.mark.django_db
def test_admin_form_saves_a_custom_definition_and_refuses_a_bad_one():
    study = StudyFactory.create()
    bad = _admin_form(study, '{"role": "detection", "human": ["A robot"], "machine": []}')
    assert not bad.is_valid()
    assert "not one of the choices" in str(bad.errors)
    assert not study.questions.exists()

    good = _admin_form(
        study,
        '{"role": "detection", "human": ["A person"], "machine": ["A program"], '
        '"neutral": ["No idea"]}',
    )
    assert good.is_valid(), good.errors
    good.save()
    saved = study.questions.get(key="guess")
    assert saved.scoring["machine"] == ["A program"]

    empty = _admin_form(study, "")
    empty.data["key"] = "other"
    assert empty.is_valid(), empty.errors
    assert empty.save().scoring == {}


def test_the_word_rule_reads_the_five_point_midpoint_as_neutral():
    # It names a machine, but it is the scale's neutral point (GPT-3 paper's accuracy
    # rule leaves neutral answers out), as is "I don't know".
    from studyplatform.measures.scoring import HUMAN, MACHINE, UNSURE, detection_judgement

    judged = [detection_judgement(option) for option in DETECTION_OPTIONS]
    assert judged == [HUMAN, HUMAN, UNSURE, MACHINE, MACHINE, UNSURE]
