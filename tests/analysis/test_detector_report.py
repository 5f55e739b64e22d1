"""Detector scores in the study report, results page, text report and API, against
values worked out by hand.

The study: 3 real (R1-R3) and 3 generated (G1-G3) articles; two participants per
condition rate all three articles of theirs. Share rated credible: R 1, 1/2, 0;
G 1, 0, 1/2. Stored mean_logprob: R -4, -3, -2; G -2.5, -1, -3.5.

- mean_logprob AUC (higher = generated): G1 beats 2 reals, G2 3, G3 1 -> 6/9 = 2/3.
  DeLong: V10 = (2/3, 1, 1/3), V01 = (1, 2/3, 1/3), both variances 1/9, so
  var = 1/9/3 + 1/9/3 = 2/27 and SE = sqrt(2/27); upper limit clipped at 1.
- perplexity = exp(-mean_logprob), lower = generated: the same AUC, 2/3.
- rank shares equal for every article: all pairs tie, AUC 1/2, SE 0.
- participants (1 - share): G 0 vs R {0, 1/2, 1} -> 1/2, G 1 -> 5/2, G 1/2 -> 3/2;
  4.5/9 = 1/2.
- disagreements: machine-likeness percentiles (mid-rank - 1/2) / 6 * 100. Humans:
  R1, G1 16.7; R2, G3 50; R3, G2 83.3. Detector: R1 8.3, G3 25, R2 41.7, G1 58.3,
  R3 75, G2 91.7. Gaps: G1 -41.7, G3 +25, the other four +-8.3.
"""

from __future__ import annotations

import math

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.test import APIClient

from analysis.frames import ARTICLE_SCORE_COLUMNS, article_scores_frame
from analysis.presentation import report_as_text
from analysis.report_tables import ALL_GENERATED, HUMAN_SCORER
from analysis.services import study_report
from surveys.models import Article, ArticleScore, Condition, Study
from tests.analysis.conftest import make_participant, rating
from tests.factories import GeneratedArticleFactory, StudyFactory

pytestmark = pytest.mark.django_db

Z95 = 1.959963984540054
REAL_LOGPROBS = [-4.0, -3.0, -2.0]
GENERATED_LOGPROBS = [-2.5, -1.0, -3.5]


def _articles(study: Study, condition: str) -> list[Article]:
    return list(Condition.objects.get(study=study, name=condition).articles.order_by("id"))


def _score(article: Article, mean_logprob: float, scorer: str = "gpt2") -> ArticleScore:
    return ArticleScore.objects.create(
        article=article,
        scorer=scorer,
        n_tokens=100,
        mean_logprob=mean_logprob,
        perplexity=math.exp(-mean_logprob),
        rank_lt_10=0.3,
        rank_lt_100=0.5,
        rank_lt_1000=0.9,
    )


def _rated(study: Study) -> Study:
    for answers in (["yes", "yes", "no"], ["yes", "no", "no"]):
        make_participant(study, "real", [rating(a) for a in answers])
    for answers in (["yes", "no", "no"], ["yes", "no", "yes"]):
        make_participant(study, "generated", [rating(a) for a in answers])
    return study


@pytest.fixture
def scored_study() -> Study:
    study = _rated(StudyFactory.create_live(articles_per_condition=3))
    for article, value in zip(_articles(study, "real"), REAL_LOGPROBS, strict=True):
        _score(article, value)
    for article, value in zip(_articles(study, "generated"), GENERATED_LOGPROBS, strict=True):
        _score(article, value)
    return study


def test_scores_frame_has_one_row_per_article_and_scorer(scored_study: Study) -> None:
    outsider = GeneratedArticleFactory.create()
    _score(outsider, -1.0)  # not in the study: left out
    _score(_articles(scored_study, "real")[0], -5.0, scorer="embedded")
    frame = article_scores_frame(study=scored_study)
    assert list(frame.columns) == ARTICLE_SCORE_COLUMNS
    assert len(frame) == 7
    assert outsider.pk not in set(frame["article_id"])
    assert list(frame["scorer"]) == ["embedded"] + ["gpt2"] * 6
    gpt2 = frame.loc[frame["scorer"] == "gpt2"].set_index("article_id")
    for article in _articles(scored_study, "generated"):
        assert gpt2.loc[article.pk, "condition"] == "generated"
        assert gpt2.loc[article.pk, "article_origin"] == "generated"
        assert gpt2.loc[article.pk, "title"] == article.title


def test_auc_table_matches_the_hand_computed_values(scored_study: Study) -> None:
    report = study_report(study=scored_study)
    assert report.detectors is not None
    table = report.detectors.set_index(["scorer", "score"])
    assert set(report.detectors["condition"]) == {ALL_GENERATED}  # one generated condition
    assert list(report.detectors["scorer"]) == [HUMAN_SCORER] + ["gpt2"] * 5

    logprob = table.loc[("gpt2", "mean_logprob")]
    se = math.sqrt(2 / 27)
    assert logprob["auc"] == pytest.approx(2 / 3)
    assert logprob["se"] == pytest.approx(se)
    assert logprob["ci_low"] == pytest.approx(2 / 3 - Z95 * se)
    assert logprob["ci_high"] == 1.0
    assert (logprob["n_pos"], logprob["n_neg"]) == (3, 3)
    assert table.loc[("gpt2", "perplexity"), "auc"] == pytest.approx(2 / 3)
    assert table.loc[("gpt2", "perplexity"), "direction"] == "lower"
    ties = table.loc[("gpt2", "rank_lt_10")]
    assert (ties["auc"], ties["se"]) == (pytest.approx(0.5), pytest.approx(0.0))

    human = report.detectors.iloc[0]
    assert human["auc"] == pytest.approx(0.5)
    assert (human["n_pos"], human["n_neg"]) == (3, 3)


def test_disagreements_are_ordered_by_the_size_of_the_gap(scored_study: Study) -> None:
    report = study_report(study=scored_study)
    assert report.disagreements is not None
    real, generated = _articles(scored_study, "real"), _articles(scored_study, "generated")
    rows = report.disagreements
    assert len(rows) == 6
    assert list(rows["article_id"][:2]) == [generated[0].pk, generated[2].pk]
    assert rows["gap"].iloc[0] == pytest.approx(100 / 6 - 350 / 6)
    assert rows["gap"].iloc[1] == pytest.approx(25.0)
    assert set(rows["article_id"][2:]) == {real[0].pk, real[1].pk, real[2].pk, generated[1].pk}
    assert rows["abs_gap"].iloc[2:].to_numpy() == pytest.approx([50 / 6] * 4)
    first = rows.iloc[0]
    assert first["title"] == generated[0].title
    assert first["credible_share"] == pytest.approx(1.0)
    assert first["mean_logprob"] == pytest.approx(-2.5)


def test_several_generated_conditions_get_one_auc_each(scored_study: Study) -> None:
    Study.objects.filter(pk=scored_study.pk).update(status=Study.Status.DRAFT)
    extra = Condition.objects.create(study=scored_study, name="bigger", label="Bigger model")
    for value in (-0.5, -0.6):  # both above every real article: AUC 1
        article = GeneratedArticleFactory.create()
        extra.articles.add(article)
        _score(article, value)
    report = study_report(study=scored_study)
    assert report.detectors is not None
    table = report.detectors.set_index(["scorer", "condition", "score"])
    assert table.loc[("gpt2", "bigger", "mean_logprob"), "auc"] == pytest.approx(1.0)
    assert table.loc[("gpt2", "bigger", "mean_logprob"), "n_pos"] == 2
    assert table.loc[("gpt2", "generated", "mean_logprob"), "auc"] == pytest.approx(2 / 3)
    # Nobody rated the new condition's articles: participants have no AUC for it.
    human = report.detectors.loc[report.detectors["scorer"] == HUMAN_SCORER]
    assert set(human["condition"]) == {"generated"}


def test_without_scores_the_sections_are_absent(staff_api: APIClient) -> None:
    study = _rated(StudyFactory.create_live(articles_per_condition=3))
    report = study_report(study=study)
    assert report.detectors is None
    assert report.disagreements is None
    assert "ROC AUC" not in report_as_text(report)
    response = staff_api.get(reverse("api:study-results", args=[study.slug]))
    assert response.status_code == 200
    assert response.json()["detectors"] is None
    assert response.json()["disagreements"] is None


def test_text_report_and_results_page_show_the_tables(scored_study: Study, client) -> None:  # type: ignore[no-untyped-def]
    text = report_as_text(study_report(study=scored_study))
    assert "ROC AUC" in text
    assert "gpt2  (all generated)  mean_logprob: AUC 0.667 [0.133, 1.000]  n 3 vs 3" in text
    assert "disagree most" in text
    # A superuser sees every study (team access: tests/analysis/test_access.py).
    user = get_user_model().objects.create_user(
        "analyst", password="pw", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    response = client.get(reverse("analysis:results", args=[scored_study.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="detectors"' in html
    assert 'id="disagreements"' in html
    assert "0.667" in html


@pytest.fixture
def staff_api() -> APIClient:
    # A superuser sees every study (team access: tests/analysis/test_access.py).
    user = get_user_model().objects.create_user(
        "api-analyst", password="pw", is_staff=True, is_superuser=True
    )
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_results_include_the_auc_table(scored_study: Study, staff_api: APIClient) -> None:
    response = staff_api.get(reverse("api:study-results", args=[scored_study.slug]))
    assert response.status_code == 200
    body = response.json()
    rows = {(r["scorer"], r["score"]): r for r in body["detectors"]}
    assert rows[("gpt2", "mean_logprob")]["auc"] == pytest.approx(2 / 3)
    assert rows[("gpt2", "mean_logprob")]["n_pos"] == 3
    assert rows[("gpt2", "mean_logprob")]["condition"] == ALL_GENERATED
    assert rows[(HUMAN_SCORER, "human (1 - credible_share)")]["auc"] == pytest.approx(0.5)
    assert len(body["disagreements"]) == 6
    generated = _articles(scored_study, "generated")
    assert body["disagreements"][0]["article_id"] == generated[0].pk
    assert body["disagreements"][0]["title"] == generated[0].title


def test_api_results_refuse_an_outsider(scored_study: Study) -> None:
    user = get_user_model().objects.create_user("outsider", password="pw")
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(reverse("api:study-results", args=[scored_study.slug]))
    assert response.status_code == 403
    assert "detectors" not in response.json()
