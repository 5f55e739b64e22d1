"""Research teams and study designs: studies, their conditions, questions and exclusion
rules."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q

from studyplatform.measures.scoring import scoring_errors
from surveys.models.articles import Article
from surveys.querysets import StudyQuerySet

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

    # --- Analysis plan, frozen with the design (analysis.stats.groups) -------------------
    class MultipleComparisons(models.TextChoices):
        HOLM = "holm", "Holm (family-wise error rate)"
        BH = "bh", "Benjamini-Hochberg (false discovery rate)"

    multiple_comparisons = models.CharField(
        "correction for multiple comparisons",
        max_length=4,
        choices=MultipleComparisons.choices,
        default=MultipleComparisons.HOLM,
        help_text="With three or more conditions the report tests whether all conditions "
        "have the same credible share, then compares every pair of conditions with their "
        "p-values corrected by this method. Holm bounds the chance of any false positive; "
        "Benjamini-Hochberg the expected share of false positives among the significant "
        "pairs (more power, a weaker promise). Frozen with the design.",
    )
    # The preregistration's own words (analysis.preregistration writes the rest from the
    # design). Frozen with the design; in the design document only when filled in.
    hypotheses = models.TextField(
        blank=True,
        help_text="The main question or hypothesis, as it will be preregistered, e.g. "
        '"People rate articles written by GPT-2 1.5B credible less often than real ones." '
        "Frozen with the design.",
    )
    primary_comparison = models.CharField(
        max_length=80,
        blank=True,
        help_text="The name of the condition whose credible share, against the reference "
        "condition's, is the primary test (the others are secondary). Empty: every "
        "comparison with the reference is primary. Frozen with the design.",
    )

    # --- The published result this study replicates (analysis.stats.replication) -------
    # Per condition: Condition.original_rate and original_n. Both study fields enter the
    # design document only when set, so that existing designs keep their hash.
    original_citation = models.TextField(
        "original study",
        blank=True,
        help_text="The published study this one replicates, as you would cite it (shown as "
        "plain text in the report). Enter its per-condition credible rates and sample sizes "
        "on the conditions below. Frozen with the design.",
    )
    equivalence_bound = models.FloatField(
        "equivalence bound",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001), MaxValueValidator(0.999)],
        help_text="The smallest difference in credible shares that would matter, as a "
        "proportion (0.10 = 10 percentage points): the report tests whether each "
        "condition's difference to the reference lies within plus or minus this bound "
        "(TOST equivalence test). Empty: no equivalence test. Frozen with the design.",
    )
    design_hash = models.CharField(max_length=64, blank=True, editable=False)
    launched_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = StudyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(equivalence_bound__isnull=True)
                | Q(equivalence_bound__gt=0, equivalence_bound__lt=1),
                name="equivalence_bound_between_0_and_1",
            ),
        ]

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
    # The published result this condition replicates (Study.original_citation); in the
    # design document only when set.
    original_rate = models.FloatField(
        "original credible rate",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="The share of ratings the original study reported as credible in this "
        "condition, as a proportion (0.72 for 72%). Empty: not reported.",
    )
    original_n = models.PositiveIntegerField(
        "original sample size",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="How many ratings (or participants) the original study had in this "
        "condition; needed for the small-telescopes test. Empty: not reported.",
    )

    class Meta:
        ordering = ["study", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(original_rate__isnull=True)
                | Q(original_rate__gte=0, original_rate__lte=1),
                name="original_rate_is_a_proportion",
            ),
            models.CheckConstraint(
                condition=Q(original_n__isnull=True) | Q(original_n__gte=1),
                name="original_n_is_positive",
            ),
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
