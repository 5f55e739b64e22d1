"""The data step of 0009: existing participations get the keyed hash of their panel id
(which the one-participation constraint now uses); withdrawn ones and withdrawal logs
stop keeping the id itself."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from surveys.privacy import keyed_hash

BEFORE = [("surveys", "0008_participant_network_and_browser_hash")]
AFTER = [("surveys", "0009_panel_id_hashes_and_required_panel_ids")]


@pytest.mark.django_db(transaction=True)
def test_existing_panel_ids_are_hashed_and_withdrawn_ones_cleared():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Study = old.get_model("surveys", "Study")
    Participant = old.get_model("surveys", "Participant")
    WithdrawalLog = old.get_model("surveys", "WithdrawalLog")
    study = Study.objects.create(slug="old", title="Old")
    now = timezone.now()

    def participant(pid: str, status: str):  # type: ignore[no-untyped-def]
        return Participant.objects.create(
            study=study, panel_pid=pid, status=status, seed=0, consented_at=now, last_seen_at=now
        )

    kept = participant("P1", "completed")
    gone = participant("P2", "withdrawn")
    anonymous = participant("", "in_progress")
    WithdrawalLog.objects.create(
        study=study,
        participant=gone,
        panel_pid="P2",
        token=uuid.uuid4(),
        condition_name="",
        previous_status="in_progress",
        withdrawn_at=now,
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    rows = {
        pk: (pid, pid_hash)
        for pk, pid, pid_hash in new.get_model("surveys", "Participant").objects.values_list(
            "pk", "panel_pid", "panel_pid_hash"
        )
    }
    assert rows == {
        kept.pk: ("P1", keyed_hash(value="P1", purpose="panel")),
        gone.pk: ("", keyed_hash(value="P2", purpose="panel")),
        anonymous.pk: ("", ""),
    }
    assert list(new.get_model("surveys", "WithdrawalLog").objects.values_list("panel_pid")) == [
        ("",)
    ]
    # The withdrawn id still holds its place in the constraint.
    NewParticipant = new.get_model("surveys", "Participant")
    with pytest.raises(IntegrityError), transaction.atomic():
        NewParticipant.objects.create(
            study_id=study.pk,
            panel_pid="P2",
            panel_pid_hash=keyed_hash(value="P2", purpose="panel"),
            seed=1,
            consented_at=now,
            last_seen_at=now,
        )
