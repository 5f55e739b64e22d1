"""Generation runs and their samples: how every machine-written stimulus was made.

A sample is reproducible from its record: model identity, prompt, decoding settings and
the seed are stored with it. Samples are unique per run x source article x sample index,
so a resumed run never duplicates one.
"""

from __future__ import annotations

from django.db import models

from surveys.models import Article


class GenerationRun(models.Model):
    """One batch of generation: a model, a set of prompts, decoding settings, a seed."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class PromptKind(models.TextChoices):
        # Values are those of generation.prompts.KINDS.
        LEDE = "lede", "First paragraph (lede)"
        FIRST_SENTENCE = "first_sentence", "First sentence"
        FIRST_TWO_PARAGRAPHS = "first_two_paragraphs", "First two paragraphs"
        HEADLINE_FIRST_SENTENCE = "headline_first_sentence", "Headline and first sentence"
        HEADLINE_LEDE = "headline_lede", "Headline and lede"
        HEADLINE_LEDE_CONTEXT = (
            "headline_lede_context",
            "Headline and lede, after k earlier articles as context",
        )

    class DType(models.TextChoices):
        # Values are those of generation.engine.DTYPES.
        AUTO = "auto", "Automatic (bfloat16 where native, float32 elsewhere and for GGUF)"
        FLOAT32 = "float32", "float32"
        BFLOAT16 = "bfloat16", "bfloat16"
        FLOAT16 = "float16", "float16"

    class LengthMatch(models.TextChoices):
        SOURCE = "source", "The real article's length"
        FIXED = "fixed", "A fixed word budget"
        NONE = "none", "No length matching"

    name = models.CharField(max_length=200, blank=True)
    model_name = models.CharField(
        max_length=300,
        help_text='"embedded" (offline SmolLM2-135M), a GPT-2 size (gpt2, gpt2-medium, '
        "gpt2-large, gpt2-xl), a local model directory, or a Hugging Face id.",
    )
    source_articles = models.ManyToManyField(
        Article, related_name="+", help_text="Real articles whose ledes are the prompts."
    )
    prompt_kind = models.CharField(
        max_length=32, choices=PromptKind.choices, default=PromptKind.LEDE
    )
    context_articles = models.PositiveSmallIntegerField(
        default=0,
        help_text="For headline_lede_context: how many earlier real articles (by published "
        "date) precede the prompt.",
    )
    length_match = models.CharField(
        max_length=8,
        choices=LengthMatch.choices,
        default=LengthMatch.SOURCE,
        help_text="Clean-up truncates each continuation at the sentence end nearest this "
        "length in words.",
    )
    word_budget = models.PositiveIntegerField(
        null=True, blank=True, help_text="Words of the continuation, for a fixed length match."
    )
    prepend_lede = models.BooleanField(
        default=True,
        help_text="Begin each generated article with the real opening it was prompted with.",
    )
    samples_per_prompt = models.PositiveSmallIntegerField(default=1)
    max_new_tokens = models.PositiveIntegerField(default=200)
    top_k = models.PositiveIntegerField(default=40, help_text="0 disables top-k (GPT-2 used 40).")
    top_p = models.FloatField(default=1.0)
    temperature = models.FloatField(default=1.0)
    repetition_penalty = models.FloatField(
        default=1.0,
        help_text="CTRL-style penalty on tokens already in the prompt or the continuation "
        "(1 disables it; GPT-2's samples used none).",
    )
    min_new_tokens = models.PositiveIntegerField(
        default=0, help_text="End-of-text is suppressed until this many tokens are generated."
    )
    seed = models.BigIntegerField(default=0)
    batch_size = models.PositiveSmallIntegerField(default=16)
    dtype = models.CharField(
        max_length=8,
        choices=DType.choices,
        default=DType.AUTO,
        help_text="Weights' number format; auto is bfloat16 where the hardware computes it "
        "natively, float32 elsewhere and for GGUF files. Samples record the format used.",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    # Filled in when the model is loaded: what was actually run.
    model_identity = models.JSONField(default=dict, blank=True, editable=False)
    error = models.TextField(blank=True, editable=False)
    samples_total = models.PositiveIntegerField(default=0, editable=False)
    samples_done = models.PositiveIntegerField(default=0, editable=False)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The team that made the run (see surveys.selectors.pool_visible_to): its members see
    # it and its samples, its researchers run and curate it. Runs without a team (made
    # before teams owned runs) are shared: readable by every team, changed by superusers
    # and holders of the model permission.
    team = models.ForeignKey(
        "surveys.Team",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="generation_runs",
        help_text="Only this team's members (and superusers) see the run and its samples.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(top_p__gt=0, top_p__lte=1), name="top_p_range"
            ),
            models.CheckConstraint(
                condition=models.Q(temperature__gt=0), name="temperature_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(repetition_penalty__gt=0), name="repetition_penalty_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"Run {self.pk} ({self.model_name})"


class Sample(models.Model):
    """One generated text, with everything needed to make it again."""

    class Review(models.TextChoices):
        PENDING = "pending", "Pending review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="samples")
    source_article = models.ForeignKey(Article, on_delete=models.PROTECT, related_name="samples")
    sample_index = models.PositiveSmallIntegerField()
    prompt = models.TextField()
    seed = models.BigIntegerField()
    settings = models.JSONField(help_text="Decoding settings and model identity used.")
    raw_text = models.TextField(help_text="The continuation exactly as the model produced it.")
    clean_text = models.TextField(
        help_text="After clean-up: cut at end-of-text, no partial sentence."
    )
    cleanup_version = models.CharField(max_length=20, blank=True)
    cleanup_steps = models.JSONField(
        default=list, blank=True, help_text="The clean-up steps that changed the text, in order."
    )
    word_budget = models.PositiveIntegerField(
        null=True, blank=True, help_text="The continuation's word budget used by clean-up."
    )
    flags = models.JSONField(
        default=list,
        blank=True,
        help_text="Quality flags: too_short, repetition, near_duplicate, source_overlap.",
    )
    selected_by = models.CharField(
        max_length=20, blank=True, help_text="The selection mode that made it a stimulus."
    )
    rank = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Curator's rank among the prompt's samples (1 = best)."
    )
    new_tokens = models.PositiveIntegerField(default=0)
    review = models.CharField(max_length=8, choices=Review.choices, default=Review.PENDING)
    reviewed_by = models.CharField(max_length=150, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    article = models.OneToOneField(
        Article,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sample",
        help_text="The stimulus made from this sample once approved.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "source_article", "sample_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "source_article", "sample_index"],
                name="unique_sample_per_run_prompt_index",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run} / {self.source_article_id} #{self.sample_index}"


class GenerationChunk(models.Model):
    """A slice of a run's (article, sample index) units, made as one batch: the unit of
    work, one task of the queue (``generation.tasks``) or one step of the foreground
    ``manage.py generate``.

    Status, worker and attempts are bookkeeping of who made it and how often it was
    started (a task delivered again after its worker died starts it again); nothing
    reclaims a chunk but the queue's redelivery. Making a chunk twice is harmless: a
    sample is unique per run x article x sample index.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    units = models.JSONField(help_text="[[source article id, sample index], ...] of this chunk.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    worker = models.CharField(max_length=200, blank=True, help_text="Who started it last.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How often it was started.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="unique_chunk_per_run_index"),
        ]
        indexes = [models.Index(fields=["run", "status"], name="chunk_run_status")]

    def __str__(self) -> str:
        return f"{self.run} chunk {self.index} ({self.status})"
