"""The study the study-file tests export: a launched study with real and generated
articles (with their run and samples), manipulations, checks and exclusion rules."""

from __future__ import annotations

from datetime import date

from generation.models import GenerationRun, Sample
from surveys.models import (
    WIKINEWS_ATTRIBUTION,
    Article,
    ExclusionRule,
    Participant,
    Question,
    Study,
    Team,
)
from surveys.services import PanelIds, participant_enroll, study_set_status
from tests.factories import (
    ConditionFactory,
    GeneratedArticleFactory,
    GenerationRunFactory,
    QuestionFactory,
    RealArticleFactory,
    SampleFactory,
    StudyFactory,
)

WEIGHTS_SHA = "9f8e" * 16


def launched_study(*, team: Team | None = None, slug: str = "kreps-replication") -> Study:
    """A live between-subjects study: real articles against GPT-2 samples (with their
    run and provenance), a branded and disclaimed condition, quotas, the Kreps items,
    an attention and a comprehension check, a scored participant question, exclusion
    rules, and one participant."""
    study = StudyFactory.create(
        team=team,
        slug=slug,
        title="Kreps replication",
        articles_per_participant=2,
        require_panel_id=True,
        completion_code="C0DE42",
        failed_check_code="FAILED1",
        consent_text="Consent.\n\nSecond paragraph with  two spaces.",
    )
    real = ConditionFactory.create(
        study=study, name="real", label="Real articles", is_reference=True, quota=120
    )
    generated = ConditionFactory.create(
        study=study,
        name="gpt2-large",
        label="GPT-2 774M",
        quota=120,
        branding="The Daily Chronicle",
        disclaimer="This article was written by an AI system.",
    )
    run = GenerationRunFactory.create(
        name="GPT-2 large, lede prompts",
        model_name="gpt2-large",
        model_identity={"weights_sha256": WEIGHTS_SHA, "revision": "main", "n_params": 774},
        dtype="float32",
        batch_size=8,
        seed=20190820,
        top_k=40,
        temperature=0.9,
        team=team,
    )
    for i in range(3):
        source = RealArticleFactory.create(
            published=date(2020, 1, i + 1),
            attribution=WIKINEWS_ATTRIBUTION,
            external_id=f"wn-{i}",
            team=team,
        )
        real.articles.add(source)
        article = GeneratedArticleFactory.create(
            source_article=source, model_name="gpt2-large", team=team
        )
        SampleFactory.create(
            run=run,
            source_article=source,
            sample_index=0,
            article=article,
            review=Sample.Review.APPROVED,
            settings={"top_k": 40, "temperature": 0.9, "dtype": "float32", "batch_size": 8},
            cleanup_steps=["cut_at_end_of_text"],
            flags=["too_short"] if i == 0 else [],
        )
        generated.articles.add(article)
    QuestionFactory.create_kreps_set(study=study)
    QuestionFactory.create(
        study=study,
        key="attention",
        text='Choose "Blue".',
        kind=Question.Kind.CHOICE,
        scope=Question.Scope.ATTENTION_CHECK,
        choices=["Red", "Blue"],
        expected_answer="Blue",
        after_article=1,
    )
    QuestionFactory.create(
        study=study,
        key="understood",
        text="Do you rate articles?",
        scope=Question.Scope.COMPREHENSION,
        expected_answer="yes",
    )
    QuestionFactory.create(
        study=study,
        key="trust",
        text="How much do you trust news media?",
        kind=Question.Kind.SLIDER,
        scope=Question.Scope.PARTICIPANT,
        required=False,
    )
    ExclusionRule.objects.create(study=study, kind=ExclusionRule.Kind.TOO_FAST, threshold=15.0)
    ExclusionRule.objects.create(
        study=study, kind=ExclusionRule.Kind.STRAIGHT_LINING, question_key="believable", position=1
    )
    study = study_set_status(study=study, status=Study.Status.LIVE)
    participant_enroll(study=study, panel=PanelIds(panel="prolific", pid="P1"))
    return study


def empty_database() -> None:
    Participant.objects.all().delete()
    Study.objects.all().delete()
    Sample.objects.all().delete()
    GenerationRun.objects.all().delete()
    Article.objects.filter(origin=Article.Origin.GENERATED).delete()
    Article.objects.all().delete()
