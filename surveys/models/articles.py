"""The stimulus pool: real and generated articles (one per content hash) with their
provenance, and detectors' scores of them."""

from __future__ import annotations

import hashlib

from django.db import models
from django.db.models import Q, Value

from surveys.querysets import ArticleQuerySet

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
    fast_detectgpt = models.FloatField(
        null=True,
        blank=True,
        help_text="Fast-DetectGPT analytic sampling discrepancy (Bao et al. 2024), the "
        "scorer as its own sampling model; empty when it could not be computed.",
    )
    binoculars = models.FloatField(
        null=True,
        blank=True,
        help_text="Binoculars score (Hans et al. 2024): the scorer (observer) and "
        "binoculars_performer; empty when no second model sharing the tokenizer was available.",
    )
    # Database defaults too: migrations of other apps that write scores through an older
    # model state (generation/0005) leave these columns out of their inserts.
    binoculars_performer = models.JSONField(
        default=dict,
        db_default=Value({}, output_field=models.JSONField()),
        blank=True,
        help_text="What was loaded as the Binoculars performer.",
    )
    unavailable = models.JSONField(
        default=dict,
        db_default=Value({}, output_field=models.JSONField()),
        blank=True,
        help_text="Detector -> why it has no score for this article.",
    )
    created_at = models.DateTimeField(auto_now=True)

    METRICS = (
        "mean_logprob",
        "perplexity",
        "rank_lt_10",
        "rank_lt_100",
        "rank_lt_1000",
        "fast_detectgpt",
        "binoculars",
    )

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
