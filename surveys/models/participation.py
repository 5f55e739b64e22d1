"""Participants and what they did: their trials (the articles they read), their answers,
and the log kept when one withdraws."""

from __future__ import annotations

import secrets
import uuid

from django.db import models
from django.db.models import Q

from surveys.models.articles import Article
from surveys.models.studies import Condition, Question, Study
from surveys.querysets import ParticipantQuerySet, ResponseQuerySet


def _new_completion_code() -> str:
    return secrets.token_hex(4).upper()


class Participant(models.Model):
    """One participation in a study, from consent to completion."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        WITHDRAWN = "withdrawn", "Withdrawn"
        SCREENED_OUT = "screened_out", "Screened out"

    class Panel(models.TextChoices):
        NONE = "", "Direct link"
        PROLIFIC = "prolific", "Prolific"
        MTURK = "mturk", "MTurk"

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="participants")
    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Null in within-subjects designs, where each trial records its own condition.
    condition = models.ForeignKey(
        Condition,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="participants",
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    panel = models.CharField(max_length=12, choices=Panel.choices, blank=True, default="")
    # Longer panel ids are refused at the door (never cut: two ids would share a row).
    # Cleared on withdrawal, replaced by a pseudonym by ``pseudonymise_panel_ids``.
    panel_pid = models.CharField(max_length=100, blank=True)
    # surveys.privacy.keyed_hash(purpose="panel") of the panel id as it arrived: what
    # lookups and the one-participation constraint use, so that re-entry stays blocked
    # after the id itself is withdrawn or pseudonymised.
    panel_pid_hash = models.CharField(max_length=64, blank=True, default="")
    panel_study_id = models.CharField(max_length=100, blank=True)
    panel_session_id = models.CharField(max_length=100, blank=True)
    is_test = models.BooleanField(
        default=False, help_text="Preview sessions; excluded from analysis."
    )
    seed = models.BigIntegerField(help_text="Seeds this participant's article order.")
    design_hash = models.CharField(max_length=64, blank=True)
    consented_at = models.DateTimeField()
    instructions_seen_at = models.DateTimeField(null=True, blank=True)
    # Set when the "about you" page was submitted: its questions may all be optional, so
    # stored answers alone cannot tell that the page is done.
    about_submitted_at = models.DateTimeField(null=True, blank=True)
    # Counted under the participant's row lock, one per accepted submission of the
    # comprehension page: the stored answers are those of the last try only.
    comprehension_tries = models.PositiveSmallIntegerField(
        default=0, help_text="How many times the comprehension questions were answered."
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField()
    completion_code = models.CharField(max_length=64, default=_new_completion_code)
    user_agent = models.CharField(max_length=300, blank=True)
    # Pseudonyms from surveys.privacy (keyed hashes; never the address or cookie itself):
    # the client's IP address, and a first-party browser cookie, for fraud signals and
    # per-client limits.
    network_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    browser_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    # --- Fraud signals (surveys.fraud) -------------------------------------------------
    honeypot_filled = models.BooleanField(
        default=False,
        help_text="The consent form's hidden field, which people never see, came back filled "
        "in (as a form-filling bot does).",
    )
    page_pastes = models.JSONField(
        default=dict,
        blank=True,
        help_text="Pastes into free-text answers of the pages asked once (comprehension, "
        "attention checks, about you), by page: the most any accepted submission of the "
        "page reported; only pages with a paste. Counted in the browser, never contents.",
    )
    # --- end of fraud signals -----------------------------------------------------------

    objects = ParticipantQuerySet.as_manager()

    class Meta:
        ordering = ["study", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "panel_pid_hash"],
                condition=~Q(panel_pid_hash=""),
                name="one_participation_per_panel_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.panel_pid or self.token}"


class Trial(models.Model):
    """One article shown to one participant, at one position in their sequence."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="trials")
    article = models.ForeignKey(Article, on_delete=models.PROTECT, related_name="trials")
    # The condition the article was drawn from: the participant's own in a between-subjects
    # design, one of several in a within-subjects design. Analyses group by this.
    condition = models.ForeignKey(
        Condition, null=True, on_delete=models.PROTECT, related_name="trials"
    )
    position = models.PositiveSmallIntegerField(help_text="1-based order of presentation.")
    first_shown_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    # Measured in the browser (Page Visibility API) until the first accepted answer; null
    # when the browser ran no JavaScript or sent nothing usable.
    visible_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Time the article page was visible before answering."
    )
    tab_aways = models.PositiveIntegerField(
        null=True, blank=True, help_text="Times the participant left the tab before answering."
    )
    # --- Fraud signals (surveys.fraud) -------------------------------------------------
    # Counted in the browser (surveys/static/surveys/signals.js), the most any accepted
    # submission of the page reported; null when no submission ran the script.
    copies = models.PositiveIntegerField(
        null=True, blank=True, help_text="Times text of the article was copied."
    )
    pastes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Times something was pasted into a free-text answer."
    )
    # --- end of fraud signals -----------------------------------------------------------

    class Meta:
        ordering = ["participant", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "position"], name="unique_trial_position"
            ),
            models.UniqueConstraint(fields=["participant", "article"], name="unique_trial_article"),
        ]

    def __str__(self) -> str:
        return f"{self.participant} #{self.position}"


class Response(models.Model):
    """One answer: to a question about a trial's article, or to a once-asked question."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="responses")
    trial = models.ForeignKey(
        Trial, null=True, blank=True, on_delete=models.CASCADE, related_name="responses"
    )
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="responses")
    value = models.TextField(help_text="The answer as submitted (normalised).")
    value_numeric = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ResponseQuerySet.as_manager()

    class Meta:
        ordering = ["participant", "trial", "question"]
        constraints = [
            models.UniqueConstraint(
                fields=["trial", "question"],
                condition=Q(trial__isnull=False),
                name="one_response_per_trial_question",
            ),
            models.UniqueConstraint(
                fields=["participant", "question"],
                condition=Q(trial__isnull=True),
                name="one_response_per_participant_question",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.question.key}={self.value}"


class WithdrawalLog(models.Model):
    """That a participant withdrew: their answers are deleted, this record stays.

    Keeps what the debrief needs (the articles they read) and what the researcher must be
    able to report (who withdrew, when, under which design), nothing they answered.
    """

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="withdrawals")
    participant = models.OneToOneField(
        Participant, on_delete=models.PROTECT, related_name="withdrawal"
    )
    # Always empty since withdrawal stopped keeping panel ids; kept for older logs, which
    # migration 0009 cleared.
    panel_pid = models.CharField(max_length=100, blank=True)
    token = models.UUIDField()
    condition_name = models.CharField(max_length=80)
    previous_status = models.CharField(max_length=12)
    is_test = models.BooleanField(default=False)
    design_hash = models.CharField(max_length=64, blank=True)
    article_ids = models.JSONField(
        default=list, help_text="The articles the participant was shown, in order."
    )
    withdrawn_at = models.DateTimeField()

    class Meta:
        ordering = ["-withdrawn_at"]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.panel_pid or self.token} withdrew"
