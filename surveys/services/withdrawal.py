"""Withdrawal (a participant's data deleted, a log of it kept) and pseudonymising a
closed study's panel ids."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from surveys.models import Participant, Response, Study, Trial, WithdrawalLog
from surveys.services.enrolment import panel_pid_hash


@transaction.atomic
def participant_withdraw(*, participant: Participant) -> WithdrawalLog:
    """Withdraw a participant from the study, in progress or completed.

    Their responses and trials are deleted; the participant row stays, with status
    ``withdrawn``, so that enrolment counts stay honest (a withdrawn participant holds no
    place). The panel id itself is cleared, here and in the log: only its keyed hash
    stays, which keeps the same id from entering again. A WithdrawalLog keeps who withdrew, when,
    under which design, and which articles they read (for their debrief). The code
    shown from now on is the study's withdrawn code (possibly none). Idempotent: a
    second call returns the first call's log and changes nothing.
    """
    locked = (
        # Only the participant row: the condition is nullable (within-subjects), and
        # PostgreSQL cannot lock the nullable side of an outer join.
        Participant.objects.select_for_update(of=("self",))
        .select_related("study", "condition")
        .get(pk=participant.pk)
    )
    if locked.status == Participant.Status.WITHDRAWN:
        existing = WithdrawalLog.objects.filter(participant=locked).first()
        if existing is not None:
            return existing
    article_ids = list(
        Trial.objects.filter(participant=locked)
        .order_by("position")
        .values_list("article_id", flat=True)
    )
    log = WithdrawalLog.objects.create(
        study=locked.study,
        participant=locked,
        token=locked.token,
        # Empty in within-subjects designs: the trials' conditions were many.
        condition_name=locked.condition.name if locked.condition is not None else "",
        previous_status=locked.status,
        is_test=locked.is_test,
        design_hash=locked.design_hash,
        article_ids=article_ids,
        withdrawn_at=timezone.now(),
    )
    Response.objects.filter(participant=locked).delete()
    Trial.objects.filter(participant=locked).delete()
    locked.status = Participant.Status.WITHDRAWN
    locked.completion_code = locked.study.withdrawn_code
    # Nothing kept beyond what blocks re-entry (the id's hash) and the counts.
    locked.user_agent = ""
    locked.panel_pid = ""
    locked.panel_study_id = ""
    locked.panel_session_id = ""
    locked.last_seen_at = log.withdrawn_at
    locked.save(
        update_fields=[
            "status",
            "completion_code",
            "user_agent",
            "panel_pid",
            "panel_study_id",
            "panel_session_id",
            "last_seen_at",
        ]
    )
    return log


# ---------------------------------------------------------------------------------------
# Personal data


class StudyStillOpenError(Exception):
    """Panel ids are still needed: the study is not closed yet."""


@transaction.atomic
def study_pseudonymise_panel_ids(*, study: Study) -> int:
    """Replace the panel ids of a closed study's participations by their keyed hash
    (surveys.privacy, purpose "panel"), once its participants are paid.

    Each id becomes the same pseudonym everywhere, so exports and analysis group the
    same rows as before, and the one-participation constraint and participant_find
    keep working (they use the hash), so the id still cannot enter again. The panel's
    session ids (one per person and study) are cleared. Returns how many participations
    changed; a second run changes none. Raises StudyStillOpenError unless closed.
    """
    locked = Study.objects.select_for_update().get(pk=study.pk)
    if locked.status != Study.Status.CLOSED:
        raise StudyStillOpenError(
            f'The study "{study.slug}" is {locked.status}: close it (and pay its '
            "participants) before pseudonymising their panel ids."
        )
    rows = Participant.objects.filter(study=locked)
    # Rows from before the hash existed get it first (migration 0009 fills it anyway).
    for participant in rows.filter(panel_pid_hash="").exclude(panel_pid=""):
        Participant.objects.filter(pk=participant.pk).update(
            panel_pid_hash=panel_pid_hash(pid=participant.panel_pid)
        )
    pending = rows.exclude(panel_pid="").exclude(panel_pid=F("panel_pid_hash"))
    changed = pending.update(panel_pid=F("panel_pid_hash"), panel_session_id="")
    rows.exclude(panel_session_id="").update(panel_session_id="")
    WithdrawalLog.objects.filter(study=locked).exclude(panel_pid="").update(panel_pid="")
    return changed
