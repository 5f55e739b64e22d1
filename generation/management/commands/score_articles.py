"""`python manage.py score_articles <study-slug>`: detector scores for a study's articles.

Scores every article in the study's conditions (real and generated) with a scoring
language model and stores one ``surveys.ArticleScore`` per article and model, e.g.
``manage.py score_articles gpt2-credibility --model embedded``. Without ``--model``,
the models that generated the study's articles are used (each scores every article),
falling back to the embedded model for any that cannot be loaded here. Each scorer is
also the Binoculars observer beside ``--performer`` (default: its known sibling sharing
the tokenizer); when none can be loaded, Binoculars is stored empty with the reason.
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
        "1000 rank shares, Fast-DetectGPT, Binoculars) for every article of a study, with "
        "a scoring model."
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
        parser.add_argument(
            "--performer",
            default=None,
            help="Binoculars' second model, sharing the scoring model's tokenizer. Default: "
            "the scorer's known sibling (e.g. gpt2 -> gpt2-medium); Binoculars is left "
            "empty, with the reason stored, when none can be loaded.",
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
            self._score(
                study=study,
                articles=articles,
                model_name=model_name,
                performer=options["performer"],
            )

    def _score(
        self, *, study: Study, articles: list[Article], model_name: str, performer: str | None
    ) -> None:
        scored, skipped = 0, []
        try:
            plan = scoring.binoculars_plan(model_name=model_name, performer=performer)
        except engine.ModelUnavailableError as error:  # the scorer itself is missing
            raise CommandError(str(error)) from None
        if plan.performer is None:
            self.stdout.write(self.style.WARNING(f"Binoculars left empty: {plan.reason}."))
        for article in articles:
            try:
                score = scoring.article_score(
                    article=article, model_name=model_name, binoculars=plan
                )
            except engine.ModelUnavailableError as error:
                raise CommandError(str(error)) from None
            except ValidationError as error:
                skipped.append(" ".join(error.messages))
                continue
            scored += 1
            self.stdout.write(
                f"article {article.pk} ({article.origin}): {score.n_tokens} tokens, "
                f"perplexity {score.perplexity:.1f}, top-10 {score.rank_lt_10:.2f}, "
                f"Fast-DetectGPT {_shown(score.fast_detectgpt)}, "
                f"Binoculars {_shown(score.binoculars)}"
            )
        self.stdout.write(
            self.style.SUCCESS(f"Scored {scored} article(s) of {study.slug} with {model_name}.")
        )
        for line in skipped:
            self.stdout.write(f"  skipped: {line}")


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
