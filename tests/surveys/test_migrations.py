"""The data step of 0003: trials made before trials recorded their condition get their
participant's condition (every such study was between-subjects)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("surveys", "0002_outcomes_quotas_withdrawal_timing")]
AFTER = [("surveys", "0003_within_design_question_kinds")]


@pytest.mark.django_db(transaction=True)
def test_existing_trials_get_their_participants_condition():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Study = old.get_model("surveys", "Study")
    Condition = old.get_model("surveys", "Condition")
    Article = old.get_model("surveys", "Article")
    Participant = old.get_model("surveys", "Participant")
    Trial = old.get_model("surveys", "Trial")
    study = Study.objects.create(slug="old", title="Old")
    real = Condition.objects.create(study=study, name="real", label="Real", is_reference=True)
    generated = Condition.objects.create(study=study, name="generated", label="Generated")
    now = timezone.now()
    expected = {}
    for i, condition in enumerate([real, generated, generated]):
        article = Article.objects.create(
            origin="real",
            title=f"T{i}",
            body=f"B{i}",
            lede=f"B{i}",
            word_count=1,
            content_hash=f"h{i}",
        )
        participant = Participant.objects.create(
            study=study, condition=condition, seed=i, consented_at=now, last_seen_at=now
        )
        trial = Trial.objects.create(participant=participant, article=article, position=1)
        expected[trial.pk] = condition.pk

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    rows = dict(new.get_model("surveys", "Trial").objects.values_list("pk", "condition_id"))
    assert rows == expected
    # Back to the latest state for the tests that follow.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
