"""study_report's mixed-model and moderator sections: when they appear, what they are
fitted on, and that a model that cannot be fitted leaves a note instead of an error.
(The statistics themselves are checked against references in test_stats_mixed.py and
test_stats_moderators.py.)"""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.presentation import report_as_html, report_as_text
from analysis.services import repeated_ratings_model, study_report
from surveys.instruments import PREFER_NOT
from surveys.models import Condition, Participant, Question, Study
from tests.analysis.conftest import ParticipantFactory, ResponseFactory, TrialFactory
from tests.factories import (
    ConditionFactory,
    GeneratedArticleFactory,
    QuestionFactory,
    RealArticleFactory,
    StudyFactory,
)

pytestmark = pytest.mark.django_db

# Each participant's answers to three articles: varied within and between people.
REAL_PATTERNS = [
    ("yes", "yes", "no"),
    ("yes", "no", "yes"),
    ("yes", "yes", "yes"),
    ("no", "yes", "no"),
]
GENERATED_PATTERNS = [
    ("no", "no", "yes"),
    ("yes", "no", "no"),
    ("no", "no", "no"),
    ("yes", "yes", "no"),
]


def _study(*, disclaimers: dict[str, str] | None = None, demographics: bool = False) -> Study:
    """A draft study with conditions (name -> disclaimer text; the first is the
    reference, names starting with "real" hold real articles), three articles each, the
    "credible" question and, with ``demographics``, party ID and ideology."""
    study = StudyFactory.create()
    for index, (name, disclaimer) in enumerate(
        (disclaimers or {"real": "", "generated": ""}).items()
    ):
        condition = ConditionFactory.create(
            study=study, name=name, is_reference=index == 0, disclaimer=disclaimer
        )
        make = RealArticleFactory if name.startswith("real") else GeneratedArticleFactory
        for _ in range(3):
            condition.articles.add(make.create())
    QuestionFactory.create(study=study, key="credible", position=0)
    if demographics:
        QuestionFactory.create(
            study=study,
            key="party_id",
            kind=Question.Kind.CHOICE,
            scope=Question.Scope.PARTICIPANT,
            choices=["Democrat", "Republican", "Independent", "Something else", PREFER_NOT],
            position=10,
        )
        QuestionFactory.create(
            study=study,
            key="ideology",
            kind=Question.Kind.LIKERT,
            scope=Question.Scope.PARTICIPANT,
            scale_min=1,
            scale_max=7,
            position=11,
        )
    return study


def _participant(
    study: Study, condition_name: str, answers: tuple[str, ...], about: dict[str, str] | None = None
) -> Participant:
    condition = Condition.objects.get(study=study, name=condition_name)
    participant = ParticipantFactory.create(condition=condition)
    credible = study.questions.get(key="credible")
    for position, (article, value) in enumerate(
        zip(condition.articles.order_by("id"), answers, strict=False), start=1
    ):
        trial = TrialFactory.create(participant=participant, article=article, position=position)
        ResponseFactory.create(participant=participant, trial=trial, question=credible, value=value)
    for key, value in (about or {}).items():
        ResponseFactory.create(
            participant=participant, question=study.questions.get(key=key), value=value
        )
    return participant


def _fill(study: Study, conditions: list[str], people: int, about: bool = False) -> None:
    parties = ["Democrat", "Republican", "Democrat", "Republican", PREFER_NOT]
    for i in range(people):
        for c_index, name in enumerate(conditions):
            patterns = REAL_PATTERNS if name.startswith("real") else GENERATED_PATTERNS
            extra = (
                {"party_id": parties[(i + c_index) % 5], "ideology": str(1 + (i + 2 * c_index) % 7)}
                if about
                else None
            )
            _participant(study, name, patterns[(i + c_index) % 4], extra)


def test_several_ratings_per_participant_get_a_mixed_model():
    study = _study()
    _fill(study, ["real", "generated"], 12)
    report = study_report(study=study)
    fit = report.mixed
    assert fit is not None
    assert fit.n_obs == 72  # 24 participants x 3 ratings, all analysed
    assert list(fit.table["term"]) == ["(intercept)", "generated"]
    effects = fit.random_effects.set_index("group")
    assert effects.loc["participant_id", "levels"] == 24
    assert effects.loc["article_id", "levels"] == 6
    # The hand-built answers: real 28 of 36 yes, generated 12 of 36.
    assert fit.table.set_index("term").loc["generated", "log_odds"] < 0
    text = report_as_text(report)
    assert "Mixed-effects logistic regression of credible on condition" in text
    assert "participant_id SD" in text
    html = report_as_html(report)
    assert 'id="mixed-model"' in html


def test_one_rating_per_participant_gets_no_mixed_model(rated_study):
    report = study_report(study=rated_study)
    assert report.mixed is None
    assert not any("mixed" in note.lower() for note in report.notes)
    assert "Mixed-effects" not in report_as_text(report)


def test_party_and_ideology_questions_get_moderator_models():
    study = _study(demographics=True)
    _fill(study, ["real", "generated"], 20, about=True)
    report = study_report(study=study)
    fits = {fit.moderator: fit for fit in report.moderators}
    assert set(fits) == {"party_id", "ideology"}
    party = fits["party_id"]
    # "Prefer not to say" is missing, not a party: 8 of 40 participants, 3 ratings each.
    assert party.dropped == 24
    assert party.n_obs == 96
    assert party.interactions == ["generated:party_id[Republican]"]
    assert party.n_clusters == 32
    assert fits["ideology"].numeric
    assert fits["ideology"].dropped == 0
    text = report_as_text(report)
    assert "Moderator: condition x party_id (reference level Democrat)" in text
    assert "Wald chi2(1)" in text
    assert 'id="moderator-ideology"' in report_as_html(report)


def test_disclaimer_crossed_with_origin_gets_a_moderator_model():
    study = _study(
        disclaimers={
            "real": "",
            "generated": "",
            "real-labelled": "This article may have been written by an AI system.",
            "generated-labelled": "This article may have been written by an AI system.",
        }
    )
    _fill(study, ["real", "generated", "real-labelled", "generated-labelled"], 8)
    report = study_report(study=study)
    (fit,) = report.moderators
    assert fit.moderator == "disclaimer"
    assert fit.moderator_reference == "none"
    assert fit.interactions == ["generated:disclaimer[shown]"]
    assert fit.n_obs == 96


def test_disclaimer_on_generated_articles_only_is_explained_not_fitted():
    study = _study(disclaimers={"real": "", "generated": "Written by an AI system."})
    _fill(study, ["real", "generated"], 8)
    report = study_report(study=study)
    assert report.moderators == []
    assert any(
        note.startswith("No disclaimer moderator analysis") and "confounded" in note
        for note in report.notes
    )


def test_a_mixed_model_that_cannot_be_fitted_leaves_a_note():
    notes: list[str] = []
    data = pd.DataFrame(
        {
            "participant_id": [1, 1, 2, 2, 3, 3, 4, 4],
            "article_id": [1, 2, 1, 2, 3, 4, 3, 4],
            "condition": ["real"] * 4 + ["generated"] * 4,
            "value_numeric": [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    assert repeated_ratings_model(binary=data, reference="real", notes=notes) is None
    assert notes == [
        "No mixed-effects model: Every answer is the same in generated: the odds ratio "
        "is infinite and the regression undefined."
    ]


def test_a_study_too_large_for_the_page_skips_the_mixed_model_with_a_note(monkeypatch):
    monkeypatch.setattr("analysis.services.MIXED_MODEL_MAX_RATINGS", 5)
    notes: list[str] = []
    data = pd.DataFrame(
        {
            "participant_id": [1, 1, 2, 2, 3, 3],
            "article_id": [1, 2, 1, 2, 3, 4],
            "condition": ["real"] * 4 + ["generated"] * 2,
            "value_numeric": [1.0, 0.0, 1.0, 1.0, 0.0, 1.0],
        }
    )
    assert repeated_ratings_model(binary=data, reference="real", notes=notes) is None
    assert len(notes) == 1
    assert notes[0].startswith("No mixed-effects model in this report: 6 ratings")
    assert "run `manage.py analyze <slug>`" in notes[0]
    # A higher cap (the analyze command's) fits it: singular on this tiny data set.
    notes.clear()
    fit = repeated_ratings_model(binary=data, reference="real", notes=notes, max_ratings=6)
    assert fit is not None
    assert fit.n_obs == 6
    assert len(notes) == 1
    assert "estimated at zero" in notes[0]


def test_a_singular_mixed_model_is_kept_with_a_note():
    from tests.analysis.test_stats_mixed import equal_articles_frame

    notes: list[str] = []
    fit = repeated_ratings_model(binary=equal_articles_frame(), reference="real", notes=notes)
    assert fit is not None
    assert len(notes) == 1
    assert "random-intercept SD of article_id is estimated at zero" in notes[0]


def test_the_report_loads_only_the_columns_it_reads():
    from analysis.frames import RESPONSE_COLUMNS, responses_frame
    from analysis.services import REPORT_RESPONSE_COLUMNS

    study = _study()
    _fill(study, ["real", "generated"], 2)
    full = responses_frame(study=study)
    narrow = responses_frame(study=study, columns=REPORT_RESPONSE_COLUMNS)
    assert list(full.columns) == RESPONSE_COLUMNS
    assert list(narrow.columns) == REPORT_RESPONSE_COLUMNS
    assert len(narrow) == 12
    pd.testing.assert_frame_equal(narrow, full[REPORT_RESPONSE_COLUMNS])
    empty = responses_frame(study=_study(), columns=["participant_id", "value_numeric"])
    assert list(empty.columns) == ["participant_id", "value_numeric"]
    assert empty.empty
    with pytest.raises(ValueError, match="unknown response column"):
        responses_frame(study=study, columns=["participant_id", "password"])


def test_plots_are_drawn_without_fitting_the_mixed_model(monkeypatch, client):
    # The results page requests several figures at once, and none shows the mixed
    # model: fitting it for each would multiply the page's slowest step.
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    from analysis import stats

    study = _study()
    _fill(study, ["real", "generated"], 12)
    fits = []
    fit = stats.mixed_logistic_regression
    monkeypatch.setattr(
        stats, "mixed_logistic_regression", lambda *a, **k: fits.append(1) or fit(*a, **k)
    )
    client.force_login(
        get_user_model().objects.create_user("root", is_staff=True, is_superuser=True)
    )
    response = client.get(reverse("analysis:plot", args=[study.slug, "credible"]))
    assert response.status_code == 200
    assert fits == []
    assert study_report(study=study).mixed is not None  # the report itself still fits it
    assert fits == [1]
