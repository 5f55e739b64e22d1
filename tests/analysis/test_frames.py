"""ORM -> DataFrame loaders and the exclusion ledger."""

from __future__ import annotations

import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analysis.frames import (
    RESPONSE_COLUMNS,
    RuleStep,
    analysed_mask,
    exclusion_ledger,
    exclusion_rule_steps,
    participants_frame,
    responses_frame,
)
from surveys.models import Participant
from tests.analysis.conftest import make_participant, rating
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


def test_responses_frame_has_one_row_per_article_answer(rated_study):
    frame = responses_frame(study=rated_study)
    # 13 non-test participants x 1 article x 4 questions; the test session is left out,
    # attention checks (no article) are not rows here.
    assert len(frame) == 13 * 4
    assert list(frame.columns) == RESPONSE_COLUMNS
    assert not frame["is_test"].any()
    assert set(frame["question_key"]) == {"credible", "believable", "accurate", "clear"}


def test_responses_frame_includes_test_sessions_only_when_asked(rated_study):
    frame = responses_frame(study=rated_study, include_test=True)
    assert len(frame) == 14 * 4
    assert frame["is_test"].sum() == 4


def test_responses_frame_carries_article_and_participant_details(rated_study):
    frame = responses_frame(study=rated_study)
    participant = Participant.objects.filter(study=rated_study, condition__name="generated").first()
    rows = frame.loc[frame["participant_id"] == participant.pk]
    trial = participant.trials.get()
    article = trial.article
    credible = rows.loc[rows["question_key"] == "credible"].iloc[0]
    assert credible["participant_token"] == str(participant.token)
    assert credible["panel_pid"] == participant.panel_pid
    assert credible["condition"] == "generated"
    assert credible["participant_status"] == "completed"
    assert credible["article_id"] == article.pk
    assert credible["article_origin"] == "generated"
    assert credible["source_article_id"] == article.source_article_id
    assert credible["model_name"] == "tiny-test-model"
    assert credible["trial_position"] == 1
    assert credible["question_kind"] == "binary"
    assert credible["value"] in ("yes", "no")
    assert credible["value_numeric"] == (1.0 if credible["value"] == "yes" else 0.0)
    assert credible["first_shown_at"] == trial.first_shown_at
    believable = rows.loc[rows["question_key"] == "believable"].iloc[0]
    assert believable["value_numeric"] == float(believable["value"])


def test_responses_frame_real_articles_carry_url_and_license(rated_study):
    frame = responses_frame(study=rated_study)
    real = frame.loc[frame["condition"] == "real"]
    assert real["url"].str.startswith("https://en.wikinews.org/").all()
    assert (real["license"] == "CC-BY-2.5").all()
    assert real["source_article_id"].isna().all()


def test_responses_frame_leaves_out_other_studies(rated_study):
    other = StudyFactory.create_live()
    make_participant(other, "real", [rating("yes")])
    frame = responses_frame(study=rated_study)
    assert len(frame) == 13 * 4
    assert len(responses_frame(study=other)) == 4


def test_responses_frame_query_count_does_not_grow_with_rows(rated_study):
    # A page of participants costs a fixed number of queries, however many rows it has.
    with CaptureQueriesContext(connection) as few:
        before = len(responses_frame(study=rated_study))
    for _ in range(5):
        make_participant(rated_study, "real", [rating("yes")])
    with CaptureQueriesContext(connection) as more:
        frame = responses_frame(study=rated_study)
    assert len(frame) == before + 5 * 4
    assert len(more) == len(few) <= 10


def test_export_queries_read_one_table_each(rated_study, monkeypatch):
    # A join's plan depends on the planner's statistics (after a bulk load, one export
    # query ran for fifteen minutes); a read of one table by an indexed column has one
    # plan. The rows are joined in pandas. (The exclusion rules' own queries belong to
    # surveys.exclusions and are left out here.)
    monkeypatch.setattr("analysis.frames.participants.participant_exclusions", lambda **kwargs: {})
    with CaptureQueriesContext(connection) as queries:
        responses_frame(study=rated_study)
        participants_frame(study=rated_study, id_range=(0, 10**9))
    statements = [query["sql"] for query in queries if not query["sql"].startswith("SAVEPOINT")]
    joins = [sql for sql in statements if " JOIN " in sql.upper()]
    assert statements
    assert joins == [], joins


def test_empty_study_gives_empty_frames_with_columns(live_study):
    frame = responses_frame(study=live_study)
    assert frame.empty
    assert list(frame.columns) == RESPONSE_COLUMNS
    people = participants_frame(study=live_study)
    assert people.empty
    rules = exclusion_rule_steps(study=live_study)
    assert [step.remaining for step in exclusion_ledger(people, rules=rules)] == [0] * 6


def test_participants_frame_judges_attention_checks(rated_study):
    people = participants_frame(study=rated_study)
    assert len(people) == 14
    by_answer = {}
    for participant in Participant.objects.filter(study=rated_study):
        response = participant.responses.filter(trial__isnull=True).first()
        by_answer[participant.pk] = response.value if response else None
    people["answer"] = people["participant_id"].map(by_answer)
    # Stripped and case-insensitive, as surveys.selectors.participant_passed_checks.
    assert people.loc[people["answer"] == " blue ", "passed_checks"].all()
    assert not people.loc[people["answer"].isin(["Red", "green"]), "passed_checks"].any()
    # Not answered (still in progress) does not count as failed.
    assert people.loc[people["answer"].isna(), "passed_checks"].all()
    assert people.loc[people["answer"].isna(), "checks_answered"].tolist() == [0]


def test_exclusion_ledger_counts_each_step(rated_study):
    people = participants_frame(study=rated_study)
    ledger = exclusion_ledger(people, rules=exclusion_rule_steps(study=rated_study))
    assert [step.key for step in ledger] == [
        "recruited",
        "test",
        "incomplete",
        "screened_out",
        "attention",
        "analysed",
    ]
    assert [(step.excluded, step.remaining) for step in ledger] == [
        (0, 14),
        (1, 13),
        (2, 11),
        (0, 11),
        (2, 9),
        (0, 9),
    ]
    assert analysed_mask(people).sum() == 9


def test_exclusion_ledger_order_counts_a_test_session_once():
    # A test session that also failed its check is counted as a test session only.
    people = pd.DataFrame(
        {
            "is_test": [True, False, False],
            "status": ["completed", "completed", "in_progress"],
            "exclusion_reason": ["test", "", "incomplete"],
        }
    )
    ledger = exclusion_ledger(people, rules=[RuleStep("attention", "Failed a check")])
    assert [step.excluded for step in ledger] == [0, 1, 1, 0, 0, 0]
    assert ledger[-1].remaining == 1


def test_passed_checks_agrees_with_the_surveys_selector(rated_study):
    from surveys.selectors import participant_passed_checks

    people = participants_frame(study=rated_study).set_index("participant_id")
    for participant in Participant.objects.filter(study=rated_study):
        assert people.loc[participant.pk, "passed_checks"] == participant_passed_checks(
            participant=participant
        )


@pytest.mark.django_db
def test_within_subjects_ratings_carry_the_condition_of_the_article_not_the_participant():
    from surveys.simulation import simulate
    from tests.surveys.builders import within_study

    study = within_study(stories=8, real_each=2, generated_each=2)
    simulate(study=study, n=6, rates={"real": 1.0, "generated": 0.0}, seed=3, progress=False)

    frame = responses_frame(study=study)
    credible = frame.loc[frame["question_key"] == "credible"]
    # Every participant rated both conditions, and each rating is labelled by the
    # condition its article came from: the bot said yes to every real one only.
    assert (credible.groupby("participant_id")["condition"].nunique() == 2).all()
    assert set(credible.loc[credible["article_origin"] == "real", "condition"]) == {"real"}
    assert credible.groupby("condition")["value_numeric"].mean().to_dict() == {
        "generated": 0.0,
        "real": 1.0,
    }
