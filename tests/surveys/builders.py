"""Study builders for the within-subjects and question-kind tests (factories stay in
tests/factories.py; these compose them)."""

from __future__ import annotations

from surveys.instruments import instrument_apply
from surveys.models import Article, Question, Study
from surveys.services import study_set_status
from tests.factories import (
    ConditionFactory,
    GeneratedArticleFactory,
    QuestionFactory,
    RealArticleFactory,
    StudyFactory,
)


def within_study(
    *,
    stories: int = 10,
    generated_stories: int | None = None,
    real_each: int = 3,
    generated_each: int = 3,
    launch: bool = True,
    **kwargs: object,
) -> Study:
    """A within-subjects study over ``stories`` real articles; the generated condition
    holds one version generated from each of the first ``generated_stories`` of them
    (all by default). Kreps questions and the attention check, like create_live."""
    study = StudyFactory.create(design=Study.Design.WITHIN, **kwargs)
    real = ConditionFactory.create(
        study=study, name="real", label="Real", is_reference=True, per_participant=real_each
    )
    generated = ConditionFactory.create(
        study=study, name="generated", label="Generated", per_participant=generated_each
    )
    sources = RealArticleFactory.create_batch(stories)
    real.articles.add(*sources)
    count = stories if generated_stories is None else generated_stories
    for source in sources[:count]:
        generated.articles.add(GeneratedArticleFactory.create(source_article=source))
    QuestionFactory.create_kreps_set(study=study)
    QuestionFactory.create(
        study=study,
        key="attention",
        text='To show you are reading carefully, choose "Blue".',
        kind=Question.Kind.CHOICE,
        scope=Question.Scope.ATTENTION_CHECK,
        choices=["Red", "Blue", "Green"],
        expected_answer="Blue",
    )
    if launch:
        study = study_set_status(study=study, status=Study.Status.LIVE)
    return study


def story_of(article: Article) -> int:
    return article.source_article_id or article.pk


def with_demographics_and_detection(study: Study) -> Study:
    """Adds the demographics (about-you page) and detection (per article) sets to a draft
    study, then launches it."""
    instrument_apply(study=study, name="demographics")
    instrument_apply(study=study, name="detection")
    return study_set_status(study=study, status=Study.Status.LIVE)
