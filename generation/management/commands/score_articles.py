"""`python manage.py score_articles <study-slug>`: detector scores for a study's articles.

Scores every article in the study's conditions (real and generated) with a scoring
language model and stores one ``surveys.ArticleScore`` per article and model, e.g.
``manage.py score_articles gpt2-credibility --model embedded``. Without ``--model``,
the models that generated the study's articles are used (each scores every article),
falling back to the embedded model for any that cannot be loaded here.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation import engine, scoring, services
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
            default=None,
            help='The scoring model: "embedded", a GPT-2 size, a model directory or a '
            "Hugging Face id. Default: the models that generated the study's articles "
            '(each scores every article), or "embedded" for any that cannot be loaded.',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f'There is no study "{options["study"]}".')
        named = options["model"]
        if named is not None:
            named = named.strip()
            try:
                engine.resolve_model(named, model_dir=services.model_dir())
            except engine.UnknownModelError as error:
                raise CommandError(str(error)) from None
        articles = list(Article.objects.filter(conditions__study=study).distinct().order_by("id"))
        if not articles:
            raise CommandError(f'Study "{study.slug}" has no articles in its conditions.')
        if named is not None:
            scorers = [named]
        else:
            choice = scoring.scorers_for_articles(articles=articles)
            for note in choice.notes:
                self.stdout.write(self.style.WARNING(note))
            scorers = choice.scorers
        for model_name in scorers:
            self._score(study=study, articles=articles, model_name=model_name)

    def _score(self, *, study: Study, articles: list[Article], model_name: str) -> None:
        scored, skipped = 0, []
        for article in articles:
            try:
                score = scoring.article_score(article=article, model_name=model_name)
            except engine.ModelUnavailableError as error:
                raise CommandError(str(error)) from None
            except ValidationError as error:
                skipped.append(" ".join(error.messages))
                continue
            scored += 1
            self.stdout.write(
                f"article {article.pk} ({article.origin}): {score.n_tokens} tokens, "
                f"perplexity {score.perplexity:.1f}, top-10 {score.rank_lt_10:.2f}"
            )
        self.stdout.write(
            self.style.SUCCESS(f"Scored {scored} article(s) of {study.slug} with {model_name}.")
        )
        for line in skipped:
            self.stdout.write(f"  skipped: {line}")
