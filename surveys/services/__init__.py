"""Writes: the study lifecycle, enrolment and assignment, answers and completion,
withdrawal. Every function here that touches several rows runs in one transaction.
Concurrency is handled by locking the row that serialises the decision (the study for
assignment, the participant for answers) and, underneath, by the database constraints in
models.py.

Callers import from this package; the modules say where each rule lives:
``lifecycle`` (design document and hash, validation, status), ``enrolment`` (panel ids,
entry, assignment), ``assignment`` (the within-subjects pick), ``answers`` (storing
answers, completion), ``withdrawal`` (withdrawal, pseudonymising panel ids). Parsing what
participants send is ``surveys.forms``.
"""

from surveys.services.answers import (
    ComprehensionOutcome,
    ParticipationClosedError,
    about_answer,
    attention_answer,
    comprehension_answer,
    instructions_mark_seen,
    participant_complete,
    study_close_if_full,
    trial_answer,
    trial_mark_shown,
)
from surveys.services.enrolment import (
    PANEL_VALUE_MAX,
    PanelIdRequiredError,
    PanelIds,
    StudyClosedError,
    StudyFullError,
    articles_pick,
    condition_pick,
    conditions_with_fill,
    panel_pid_hash,
    participant_enroll,
    participant_find,
    study_is_full,
    within_articles_pick,
)
from surveys.services.lifecycle import (
    condition_add_articles,
    study_assert_editable,
    study_design_document,
    study_design_hash,
    study_set_status,
    study_sync_articles_per_participant,
    study_validate_design,
)
from surveys.services.withdrawal import (
    StudyStillOpenError,
    participant_withdraw,
    study_pseudonymise_panel_ids,
)

__all__ = [
    "PANEL_VALUE_MAX",
    "ComprehensionOutcome",
    "PanelIdRequiredError",
    "PanelIds",
    "ParticipationClosedError",
    "StudyClosedError",
    "StudyFullError",
    "StudyStillOpenError",
    "about_answer",
    "articles_pick",
    "attention_answer",
    "comprehension_answer",
    "condition_add_articles",
    "condition_pick",
    "conditions_with_fill",
    "instructions_mark_seen",
    "panel_pid_hash",
    "participant_complete",
    "participant_enroll",
    "participant_find",
    "participant_withdraw",
    "study_assert_editable",
    "study_close_if_full",
    "study_design_document",
    "study_design_hash",
    "study_is_full",
    "study_pseudonymise_panel_ids",
    "study_set_status",
    "study_sync_articles_per_participant",
    "study_validate_design",
    "trial_answer",
    "trial_mark_shown",
    "within_articles_pick",
]
