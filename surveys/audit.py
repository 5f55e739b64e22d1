"""The audit log: who changed which study design, condition, question, article, exclusion
rule, team or generation run, and when; who exported participant data; who created or
deleted an API token.

django-auditlog records the model changes (its signal receivers diff each save, its
middleware puts the signed-in user in as the actor) and stores everything in its one
``LogEntry`` table, shown read-only in the admin. This module says what is audited
(:func:`register`, called from ``SurveysConfig.ready``), writes the two kinds of entries
that are not model changes (:func:`audit_export`, tokens), and tags every entry with the
team whose object it is, so that a team's researchers see their own trail
(``surveys.admin.TeamLogEntryAdmin``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from auditlog.models import LogEntry
from auditlog.registry import auditlog
from auditlog.signals import post_log
from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model
from django.db.models.signals import post_delete, post_save, pre_save

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from surveys.models import Study

# Model label -> the path from an instance to its team's id.
TEAM_PATHS: dict[str, str] = {
    "surveys.study": "team_id",
    "surveys.condition": "study.team_id",
    "surveys.question": "study.team_id",
    "surveys.exclusionrule": "study.team_id",
    "surveys.article": "team_id",
    "surveys.team": "pk",
    "surveys.teammembership": "team_id",
    "generation.generationrun": "team_id",
    "generation.sample": "run.team_id",
}
# Per model, django-auditlog's register() options. Many-to-many fields: which articles a
# condition shows, which articles prompted a run. A run's progress counters change with
# every chunk: only its settings and status are audited. Samples are written in bulk by
# the generator (no signals); their curation is audited.
REGISTER_OPTIONS: dict[str, dict[str, Any]] = {
    "surveys.condition": {"m2m_fields": {"articles"}},
    "generation.generationrun": {
        "m2m_fields": {"source_articles"},
        "exclude_fields": ["samples_done", "samples_total", "model_identity", "error"],
    },
    "generation.sample": {
        "include_fields": ["review", "reviewed_by", "reviewed_at", "rank", "article"]
    },
}


def register() -> None:
    """Register the audited models with django-auditlog (once, at start-up)."""
    for label in TEAM_PATHS:
        model = apps.get_model(label)
        if not auditlog.contains(model):
            auditlog.register(model, **REGISTER_OPTIONS.get(label, {}))
    # Tokens are saved as Token (API, commands) or as TokenProxy (DRF's admin): signals
    # name the class saved, so listen to both.
    for name in ("Token", "TokenProxy"):
        token = apps.get_model("authtoken", name)
        post_save.connect(_token_saved, sender=token, dispatch_uid=f"credence_audit_{name}_saved")
        post_delete.connect(
            _token_deleted, sender=token, dispatch_uid=f"credence_audit_{name}_deleted"
        )
    pre_save.connect(_tag_team, sender=LogEntry, dispatch_uid="credence_audit_tag_team")
    post_log.connect(_tag_team_after, dispatch_uid="credence_audit_tag_team_after")


def audit_export(
    *, user: AbstractBaseUser | AnonymousUser | None, study: Study, what: str
) -> LogEntry:
    """Record that ``user`` (None: a management command) exported or downloaded
    participant data of ``study``; ``what`` names the export, e.g. "responses CSV".
    Every export point calls this, and only this, after its access check."""
    actor = user if user is not None and user.is_authenticated else None
    entry: LogEntry = LogEntry.objects.log_create(
        study,
        force_log=True,
        action=LogEntry.Action.ACCESS,
        actor=actor,
        changes_text=f"Exported {what}",
        additional_data={"event": "export", "what": what, "team_id": study.team_id},
    )
    return entry


def _team_id_of(instance: Model) -> int | None:
    path = TEAM_PATHS.get(instance._meta.label_lower)
    if path is None:
        return None
    value: Any = instance
    try:
        for name in path.split("."):
            value = getattr(value, name)
    except ObjectDoesNotExist:
        return None
    return value if isinstance(value, int) else None


def _with_team(data: Any, team_id: int | None) -> dict[str, Any]:
    tagged = dict(data) if isinstance(data, dict) else {}
    tagged["team_id"] = team_id
    return tagged


def _tag_team(sender: type[LogEntry], instance: LogEntry, **kwargs: Any) -> None:
    """Before an entry is written: its object's team, while the object is still there
    (m2m changes and updates; deletions are tagged by :func:`_tag_team_after`)."""
    if isinstance(instance.additional_data, dict) and "team_id" in instance.additional_data:
        return
    model = instance.content_type.model_class()
    if model is None or model._meta.label_lower not in TEAM_PATHS:
        return
    obj = model._default_manager.filter(pk=instance.object_pk).first()
    if obj is not None:
        instance.additional_data = _with_team(instance.additional_data, _team_id_of(obj))


def _tag_team_after(
    sender: type[Model], instance: Model, log_entry: LogEntry | None = None, **kwargs: Any
) -> None:
    if log_entry is None or (
        isinstance(log_entry.additional_data, dict) and "team_id" in log_entry.additional_data
    ):
        return
    log_entry.additional_data = _with_team(log_entry.additional_data, _team_id_of(instance))
    LogEntry.objects.filter(pk=log_entry.pk).update(additional_data=log_entry.additional_data)


def _token_fingerprint(key: str) -> str:
    # The key is the token's primary key and its secret: the log names it by a hash.
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _token_entry(token: Any, action: int, event: str) -> None:
    LogEntry.objects.log_create(
        token,
        force_log=True,
        action=action,
        object_pk=_token_fingerprint(token.key),
        object_repr=f"API token of {token.user}",
        serialized_data=None,
        additional_data={"event": event, "user_id": token.user_id, "team_id": None},
    )


def _token_saved(sender: type[Model], instance: Any, created: bool, **kwargs: Any) -> None:
    if created:
        _token_entry(instance, LogEntry.Action.CREATE, "token_created")


def _token_deleted(sender: type[Model], instance: Any, **kwargs: Any) -> None:
    _token_entry(instance, LogEntry.Action.DELETE, "token_deleted")
