"""`python manage.py score_articles <study-slug>`: detector scores for a study's articles.

Scores every article in the study's conditions (real and generated) with a scoring
language model and stores one ``DetectorScore`` per article and model, e.g.
``manage.py score_articles gpt2-credibility --model embedded``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation import engine, services
from surveys.models import Article, Study


class Command(BaseCommand):
    help = (
        "Compute detector scores (mean token log-probability, perplexity, GLTR top-10/100/"
        "1000 rank shares) for every article of a study, with a scoring model."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="The study's slug.")
        parser.add_argument(
            "--model",
            default=engine.EMBEDDED,
            help='The scoring model: "embedded" (default), a GPT-2 size, a model directory '
            "or a Hugging Face id. Prefer the model that generated the study's texts.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f'There is no study "{options["study"]}".')
        model_name = options["model"].strip()
        try:
            engine.resolve_model(model_name, model_dir=services.model_dir())
        except engine.UnknownModelError as error:
            raise CommandError(str(error)) from None
        articles = list(Article.objects.filter(conditions__study=study).distinct().order_by("id"))
        if not articles:
            raise CommandError(f'Study "{study.slug}" has no articles in its conditions.')
        scored, skipped = 0, []
        for article in articles:
            try:
                score = services.article_score(article=article, model_name=model_name)
            except engine.ModelUnavailableError as error:
                raise CommandError(str(error)) from None
            except ValidationError as error:
                skipped.append(" ".join(error.messages))
                continue
            scored += 1
            self.stdout.write(
                f"article {article.pk} ({article.origin}): {score.tokens} tokens, "
                f"perplexity {score.perplexity:.1f}, top-10 {score.rank_top10:.2f}"
            )
        self.stdout.write(
            self.style.SUCCESS(f"Scored {scored} article(s) of {study.slug} with {model_name}.")
        )
        for line in skipped:
            self.stdout.write(f"  skipped: {line}")
