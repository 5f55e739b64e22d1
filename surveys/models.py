"""The stimulus pool, study designs, participants and their answers.

Invariants that matter to the data are database constraints first: one participation per
panel id per study, one response per trial x question, one article per content hash.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q

from studyplatform.measures.scoring import scoring_errors
from surveys.querysets import ArticleQuerySet, ParticipantQuerySet, StudyQuerySet

WIKINEWS_ATTRIBUTION = (
    "News articles from Wikinews (https://en.wikinews.org), licensed under Creative Commons "
    "Attribution 2.5 (https://creativecommons.org/licenses/by/2.5/). Each article's original "
    "URL is given with it. Text was extracted from the published pages; datelines, image "
    "captions, chart legends and pull-quote attributions were removed, and whitespace was "
    "normalised."
)


def content_hash(title: str, body: str) -> str:
    """Hash identifying an article's text, insensitive to surrounding whitespace."""
    normalised = " ".join(title.split()) + "\n" + " ".join(body.split())
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


# Participants' browsers follow the completion URL: only http(s). javascript:, data:,
# vbscript: or a scheme-relative //host would run script on our page or send people to
# whoever wrote it. Django's URLValidator also refuses whitespace and control characters,
# which browsers strip from a scheme (" java\tscript:").
completion_url_validator = URLValidator(
    schemes=["http", "https"],
    message="Enter an http:// or https:// address, e.g. "
    "https://app.prolific.com/submissions/complete?cc={code}.",
)


def completion_url_is_safe(url: str) -> bool:
    """Whether ``url`` may be rendered as the link participants follow at the end (the
    validator's rule, also for rows stored before it existed)."""
    try:
        completion_url_validator(url)
    except ValidationError:
        return False
    return True


def word_count(text: str) -> int:
    return len(text.split())


def first_paragraph(body: str) -> str:
    return body.strip().split("\n\n", 1)[0].strip()


class Article(models.Model):
    """One news article in the stimulus pool, written by people or by a model."""

    class Origin(models.TextChoices):
        REAL = "real", "Real (human-written)"
        GENERATED = "generated", "Machine-generated"

    origin = models.CharField(max_length=16, choices=Origin.choices)
    external_id = models.CharField(
        max_length=200, blank=True, help_text="Identifier in the source corpus, if any."
    )
    title = models.CharField(max_length=500)
    body = models.TextField(help_text="Paragraphs separated by a blank line.")
    lede = models.TextField(help_text="The first paragraph; prompts are built from it.")
    outlet = models.CharField(max_length=200, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    published = models.DateField(null=True, blank=True)
    license = models.CharField(max_length=64, blank=True)
    attribution = models.TextField(blank=True)
    word_count = models.PositiveIntegerField(editable=False)
    content_hash = models.CharField(max_length=64, unique=True, editable=False)
    in_demo_pool = models.BooleanField(
        default=True,
        help_text="False for interviews and very long features, which read unlike news stories.",
    )
    # For generated articles: the real article whose lede was the prompt, and the model.
    source_article = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="generated_versions",
    )
    model_name = models.CharField(max_length=200, blank=True)
    # The team that added the article: its members see it, its researchers change it.
    # Without a team it is in the shared pool (the imported corpus): every team reads it,
    # superusers and holders of the model permission change it (surveys.selectors).
    team = models.ForeignKey(
        "Team",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="articles",
        help_text="Only this team's members (and superusers) see the article. Empty: the "
        "shared pool, which every team reads.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ArticleQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(origin="real") | Q(source_article__isnull=False),
                name="generated_article_has_source",
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.origin}] {self.title[:80]}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.word_count = word_count(self.body)
        self.content_hash = content_hash(self.title, self.body)
        if not self.lede:
            self.lede = first_paragraph(self.body)
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in self.body.split("\n\n") if p.strip()]


class Team(models.Model):
    """A research team: its members, and nobody else but superusers, see its studies' data."""

    name = models.CharField(max_length=200, unique=True)
    members = models.ManyToManyField(  # type: ignore[var-annotated]
        settings.AUTH_USER_MODEL, through="TeamMembership", related_name="research_teams"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    """One person's role in a research team."""

    class Role(models.TextChoices):
        RESEARCHER = "researcher", "Researcher: designs and runs studies, sees their data"
        ANALYST = "analyst", "Analyst: sees and exports data, cannot change designs"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships"
    )
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.RESEARCHER)

    class Meta:
        ordering = ["team", "user"]
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class Study(models.Model):
    """A credibility study: conditions, questions, texts, and its lifecycle."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PILOT = "pilot", "Pilot"
        LIVE = "live", "Live"
        CLOSED = "closed", "Closed"

    class Design(models.TextChoices):
        BETWEEN = "between", "Between subjects: each participant sees one condition"
        WITHIN = "within", "Within subjects: each participant sees articles of every condition"

    slug = models.SlugField(max_length=80, unique=True)
    title = models.CharField(max_length=200)
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="studies",
        help_text="Only this team's members (and superusers) see the study and its data. "
        "A study without a team is visible to superusers only.",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    design = models.CharField(
        max_length=8,
        choices=Design.choices,
        default=Design.BETWEEN,
        help_text="Between: each participant is assigned one condition and reads "
        "'articles per participant' articles of it. Within: each participant reads "
        "'per participant' articles of every condition (e.g. 5 real + 5 generated), "
        "never two versions of the same story, mixed in a random order.",
    )
    articles_per_participant = models.PositiveSmallIntegerField(
        default=1,
        help_text="Between-subjects designs only. In a within-subjects design it is derived: "
        "the sum of the conditions' 'per participant' counts (set when the study is "
        "piloted or launched).",
    )
    consent_text = models.TextField(
        default="You are invited to take part in a study about how people read news. "
        "You will read short news articles and answer a few questions about each. "
        "It takes about 5 minutes. Taking part is voluntary; you may stop at any time. "
        "We record your answers and the time you spend on each page, and nothing that "
        "identifies you beyond the panel id your recruiter passes to us."
    )
    instructions_text = models.TextField(
        default="On each page you will read one news article. Read it as you would read the "
        "news, then answer the questions below it. There are no right or wrong answers."
    )
    debrief_text = models.TextField(
        default="Thank you for taking part. This study looks at whether people can tell "
        "news written by journalists from news written by a computer program (a language "
        "model). Some of the articles you read were written by a machine: they are not real "
        "news and the events they describe may never have happened."
    )
    completion_code = models.CharField(
        max_length=64,
        blank=True,
        help_text="Code shown at the end (e.g. Prolific's study code). "
        "Leave empty to give each participant a unique code.",
    )
    completion_url = models.CharField(
        max_length=1000,
        blank=True,
        validators=[completion_url_validator],
        help_text="Where to send participants when done, e.g. "
        "https://app.prolific.com/submissions/complete?cc={code}. "
        "{code} is replaced by the completion code.",
    )
    failed_check_code = models.CharField(
        max_length=64,
        blank=True,
        help_text="Code given instead of the completion code to participants who completed "
        "but failed an attention check (Prolific asks for a separate code so that they can "
        "be screened or asked to return). Leave empty to give them the completion code.",
    )
    screened_out_code = models.CharField(
        max_length=64,
        blank=True,
        help_text="Code shown to participants screened out because they did not pass the "
        "comprehension questions (sent to the completion URL as {code}). Leave empty to "
        "show no code and no link.",
    )
    comprehension_attempts = models.PositiveSmallIntegerField(
        default=2,
        help_text="How many tries participants get at the comprehension questions (asked "
        "after the instructions) before they are screened out.",
    )
    withdrawn_code = models.CharField(
        max_length=64,
        blank=True,
        help_text="Code shown to participants who withdraw (and sent to the completion URL "
        "as {code}). Leave empty to show no code and no link.",
    )
    seed = models.BigIntegerField(
        default=0, help_text="Seeds assignment and article order; the design is reproducible."
    )
    reservation_minutes = models.PositiveIntegerField(
        default=60,
        help_text="A participant who has not finished after this long no longer holds a "
        "place in their condition, so drop-outs are refilled.",
    )
    # --- Fraud signals (surveys.fraud) -------------------------------------------------
    flagged_hold_no_place = models.BooleanField(
        "flagged participations hold no place",
        default=False,
        help_text="Participations flagged by a fraud signal (the same browser under another "
        "panel id, a burst from one network, the hidden honeypot field filled in, article "
        "text copied or pasted into an answer) do not count towards the conditions' "
        "quotas, so the study recruits others in their place. They are kept and exported "
        "with their flags.",
    )
    # --- end of fraud signals -----------------------------------------------------------
    require_panel_id = models.BooleanField(
        default=False,
        help_text="Only people who arrive with a panel id (Prolific's PROLIFIC_PID or MTurk's "
        "workerId in the link) may take part; anyone else is shown a page asking them to "
        "use the link from their panel. Turn on for every study recruited through a panel.",
    )
    design_hash = models.CharField(max_length=64, blank=True, editable=False)
    launched_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = StudyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_design_locked(self) -> bool:
        return self.status in (self.Status.LIVE, self.Status.CLOSED)

    @property
    def accepts_participants(self) -> bool:
        return self.status in (self.Status.PILOT, self.Status.LIVE)


class Condition(models.Model):
    """One arm of a study: the set of articles a participant in it may see."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="conditions")
    name = models.SlugField(max_length=80, help_text='Short code used in data, e.g. "real".')
    label = models.CharField(max_length=200, help_text="Human-readable description.")
    is_reference = models.BooleanField(
        default=False,
        help_text="The control (usually the real articles) others are tested against.",
    )
    articles = models.ManyToManyField(Article, related_name="conditions", blank=True)
    quota = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Most participants to complete this condition; empty for no limit. Once "
        "every condition has reached its quota the study closes itself. Between-subjects "
        "designs only.",
    )
    per_participant = models.PositiveSmallIntegerField(
        default=0,
        help_text="Within-subjects designs only: how many of this condition's articles each "
        "participant reads. Unused (0) in between-subjects designs.",
    )
    # Presentation manipulations: everything else on the article page is identical across
    # conditions, so these are the only differences a participant can see.
    branding = models.CharField(
        max_length=200,
        blank=True,
        help_text="Outlet name shown as a masthead above each article of this condition "
        "(the branding manipulation). Empty: no masthead.",
    )
    disclaimer = models.TextField(
        blank=True,
        help_text='Notice shown above each article of this condition, e.g. "This article '
        'was written by an AI system." Empty: no notice.',
    )

    class Meta:
        ordering = ["study", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="unique_condition_name"),
            models.UniqueConstraint(
                fields=["study"],
                condition=Q(is_reference=True),
                name="one_reference_condition_per_study",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.name}"


class Question(models.Model):
    """A question asked about each article, or an attention check asked once."""

    class Kind(models.TextChoices):
        BINARY = "binary", "Yes / no"
        LIKERT = "likert", "Rating scale"
        FREE_TEXT = "free_text", "Free text"
        CHOICE = "choice", "Single choice"
        SLIDER = "slider", "Slider (whole number)"
        MULTI_CHOICE = "multi_choice", "Multiple choice (tick all that apply)"

    class Scope(models.TextChoices):
        PER_ARTICLE = "article", "Asked about each article"
        ATTENTION_CHECK = "attention", "Attention check (asked once, among the articles)"
        COMPREHENSION = "comprehension", "Comprehension check (after the instructions)"
        PARTICIPANT = "participant", "About the participant (asked once, after the articles)"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="questions")
    key = models.SlugField(max_length=60, help_text='Column name in exports, e.g. "credible".')
    text = models.TextField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.PER_ARTICLE)
    scale_min = models.SmallIntegerField(null=True, blank=True)
    scale_max = models.SmallIntegerField(null=True, blank=True)
    min_label = models.CharField(max_length=100, blank=True)
    max_label = models.CharField(max_length=100, blank=True)
    choices = models.JSONField(
        default=list,
        blank=True,
        help_text='For single and multiple choice: a list of options, e.g. ["A", "B"]. '
        'Multiple-choice answers are stored as a JSON list, e.g. ["A","B"].',
    )
    required = models.BooleanField(default=True)
    expected_answer = models.CharField(
        max_length=200,
        blank=True,
        help_text="For attention and comprehension checks: the answer that passes.",
    )
    after_article = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Attention checks only: asked right after the participant's n-th article "
        "(1 = after the first). Empty: after the last article.",
    )
    position = models.PositiveSmallIntegerField(default=0)
    # What analysis scores this question as (schema: studyplatform.measures.scoring).
    # Stored with the question so a custom key or custom option wording is still scored;
    # not in the design hash (the question is locked once the study is live, which freezes it).
    scoring = models.JSONField(
        default=dict,
        blank=True,
        help_text='How analysis scores this question; {} = not scored. {"role": "credible"} '
        '(the yes/no credibility question), {"role": "credibility_item"} (one of the three '
        '1-4 items of the Kreps credibility index), or {"role": "detection", "human": [...], '
        '"machine": [...], "neutral": [...]} (human or machine?, each choice in one list).',
    )

    class Meta:
        ordering = ["study", "scope", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "key"], name="unique_question_key"),
            models.CheckConstraint(
                condition=~Q(kind="likert")
                | Q(
                    scale_min__isnull=False,
                    scale_max__isnull=False,
                    scale_min__lt=models.F("scale_max"),
                ),
                name="likert_has_scale",
            ),
            models.CheckConstraint(
                condition=~Q(kind="slider")
                | Q(scale_min__isnull=True, scale_max__isnull=True)
                | Q(
                    scale_min__isnull=False,
                    scale_max__isnull=False,
                    scale_min__lt=models.F("scale_max"),
                ),
                name="slider_scale_is_a_range",
            ),
        ]

    def __str__(self) -> str:
        return self.key

    def clean(self) -> None:
        # A non-field error: the admin's question form does not show ``scoring``, and a
        # field error for a field missing from a ModelForm raises ValueError.
        errors = scoring_errors(
            scoring=self.scoring, kind=self.kind, scope=self.scope, choices=self.choices
        )
        if errors:
            raise ValidationError(errors)

    # A slider without a scale runs from 0 to 100.
    SLIDER_DEFAULT = (0, 100)

    @property
    def bounds(self) -> tuple[int, int] | None:
        """(lowest, highest) accepted number for rating scales and sliders, else None."""
        if self.kind == self.Kind.SLIDER:
            if self.scale_min is None or self.scale_max is None:
                return self.SLIDER_DEFAULT
            return (self.scale_min, self.scale_max)
        if (
            self.kind == self.Kind.LIKERT
            and self.scale_min is not None
            and self.scale_max is not None
        ):
            return (self.scale_min, self.scale_max)
        return None


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


class ExclusionRule(models.Model):
    """A rule, fixed before launch, that removes participants from the analysis.

    Test sessions and incomplete participations are always left out; these rules come
    after them, in ``position`` order, and each excluded participant is recorded with the
    first rule that removed them.
    """

    class Kind(models.TextChoices):
        FAILED_CHECK = "failed_check", "Failed an attention check"
        TOO_FAST = "too_fast", "Read articles faster than N words per second"
        STRAIGHT_LINING = "straight_lining", "Gave the same answer to every article"
        # Fraud signals (surveys.fraud).
        DUPLICATE_BROWSER = "duplicate_browser", "Same browser as another participation"
        NETWORK_BURST = "network_burst", "Part of a burst of participations from one network"
        HONEYPOT = "honeypot", "Filled in the hidden honeypot field"
        COPIED = "copied", "Copied article text N times or more"
        PASTED = "pasted", "Pasted into a free-text answer N times or more"
        NO_JAVASCRIPT = "no_javascript", "Answered without JavaScript"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="exclusion_rules")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Too fast: the reading speed in words per second above which an article "
        "counts as not read (e.g. 15; people read about 4). Copied, pasted: how many times "
        "(over all articles) excludes a participant; empty for once.",
    )
    question_key = models.SlugField(
        max_length=60,
        blank=True,
        help_text="Straight-lining: the rating question to check. Empty: every rating-scale "
        "and slider question about the articles.",
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["study", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="too_fast") | Q(threshold__isnull=False, threshold__gt=0),
                name="too_fast_rule_has_threshold",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}: {self.get_kind_display()}"


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


class ArticleScore(models.Model):
    """How machine-like an article's text looks to a scoring language model (GLTR-style).

    A property of the stimulus, so it lives with the articles: generation computes it,
    analysis compares it with participants' judgements. One row per article x scorer
    (the scoring model's name as given); rescoring with the same scorer replaces it.
    """

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="scores")
    scorer = models.CharField(max_length=300, help_text="The scoring model's name as given.")
    scorer_identity = models.JSONField(
        default=dict, blank=True, help_text="What was actually loaded (files, hashes, size)."
    )
    scorer_version = models.CharField(
        max_length=50, blank=True, help_text="Version of the scoring procedure."
    )
    n_tokens = models.PositiveIntegerField(help_text="How many tokens were scored.")
    mean_logprob = models.FloatField(help_text="Mean natural-log probability per token.")
    perplexity = models.FloatField(help_text="exp(-mean_logprob).")
    rank_lt_10 = models.FloatField(help_text="Share of tokens ranked in the model's top 10.")
    rank_lt_100 = models.FloatField(help_text="Share of tokens ranked in the model's top 100.")
    rank_lt_1000 = models.FloatField(help_text="Share of tokens ranked in the model's top 1000.")
    created_at = models.DateTimeField(auto_now=True)

    METRICS = ("mean_logprob", "perplexity", "rank_lt_10", "rank_lt_100", "rank_lt_1000")

    class Meta:
        ordering = ["article", "scorer"]
        constraints = [
            models.UniqueConstraint(fields=["article", "scorer"], name="unique_score_per_scorer"),
            models.CheckConstraint(
                condition=Q(rank_lt_10__gte=0)
                & Q(rank_lt_10__lte=models.F("rank_lt_100"))
                & Q(rank_lt_100__lte=models.F("rank_lt_1000"))
                & Q(rank_lt_1000__lte=1),
                name="score_rank_shares_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.article_id} scored by {self.scorer}"
