"""The best machine detector against the participants on the same articles, in the study
report, results page, text report and API, against values worked out by hand.

The study of ``test_detector_report``: 3 real (R1-R3) and 3 generated (G1-G3) articles,
share rated credible R 1, 1/2, 0; G 1, 0, 1/2 (participants' AUC 1/2), mean_logprob
R -4, -3, -2; G -2.5, -1, -3.5 (AUC 2/3). Here Fast-DetectGPT is stored too:
R 0.1, 0.2, 0.3; G 0.5, 0.6, 0.25, so G1 and G2 beat every real article and G3 two:
AUC 8/9, the best of the 6 candidate scores (Binoculars is missing: no candidate).

DeLong, detector (A) vs participants (B, 1 - share):
- A: V10 = (1, 1, 2/3), V01 = (1, 1, 2/3), variances 1/27 and 1/27.
- B: V10 = (1/6, 5/6, 1/2), V01 = (5/6, 1/2, 1/6), variances 1/9 and 1/9.
- cov(V10_A, V10_B) = [(1/9)(-1/3) + (1/9)(1/3) + 0] / 2 = 0;
  cov(V01_A, V01_B) = [(1/9)(1/3) + 0 + (-2/9)(-1/3)] / 2 = 1/18.
- var(A - B) = (1/27 + 1/9 - 0) / 3 + (1/27 + 1/9 - 1/9) / 3 = 5/81, SE = sqrt(5) / 9.
- difference 8/9 - 1/2 = 7/18, z = (7/18) / (sqrt(5)/9) = 7 / (2 sqrt(5)) = 1.5652,
  p = erfc(z / sqrt 2) = 0.1175, Bonferroni over 6 candidates: 0.7051.
Disagreements (machine-likeness percentiles, (mid-rank - 1/2) / 6 x 100): people R1, G1
16.7; R2, G3 50; R3, G2 83.3; Fast-DetectGPT R1 8.3, R2 25, G3 41.7, R3 58.3, G1 75,
G2 91.7. Gaps: G1 -58.3, R2 +25, R3 +25, R1 +8.3, G3 +8.3, G2 -8.3.
"""

from __future__ import annotations

import math

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.test import APIClient

from analysis.presentation import report_as_text
from analysis.services import study_report
from surveys.models import ArticleScore, Study
from tests.analysis.test_detector_report import _articles, _score, scored_study  # noqa: F401

pytestmark = pytest.mark.django_db

REAL_FAST = [0.1, 0.2, 0.3]
GENERATED_FAST = [0.5, 0.6, 0.25]
Z = 7 / (2 * math.sqrt(5))
P = math.erfc(Z / math.sqrt(2))
NO_PERFORMER = 'no second model sharing the tokenizer of "gpt2" was named'


@pytest.fixture
def fast_study(scored_study: Study) -> Study:  # noqa: F811
    for condition, values in (("real", REAL_FAST), ("generated", GENERATED_FAST)):
        for article, value in zip(_articles(scored_study, condition), values, strict=True):
            ArticleScore.objects.filter(article=article, scorer="gpt2").update(
                fast_detectgpt=value, unavailable={"binoculars": NO_PERFORMER}
            )
    return scored_study


def test_the_best_detector_is_tested_against_the_participants_as_by_hand(
    fast_study: Study,
) -> None:
    report = study_report(study=fast_study)
    assert report.people_vs_detector is not None
    row = report.people_vs_detector.iloc[0]
    assert len(report.people_vs_detector) == 1
    assert (row["scorer"], row["score"], row["direction"]) == ("gpt2", "fast_detectgpt", "higher")
    assert row["candidates"] == 6
    assert row["auc_detector"] == pytest.approx(8 / 9, abs=1e-12)
    assert row["auc_people"] == pytest.approx(1 / 2, abs=1e-12)
    assert row["difference"] == pytest.approx(7 / 18, abs=1e-12)
    assert row["se"] == pytest.approx(math.sqrt(5) / 9, abs=1e-12)
    assert row["z"] == pytest.approx(Z, abs=1e-12)
    assert row["p_value"] == pytest.approx(P, abs=1e-12)
    assert row["p_adjusted"] == pytest.approx(6 * P, abs=1e-12)
    assert (row["n_pos"], row["n_neg"]) == (3, 3)


def test_the_new_detectors_get_rows_and_a_missing_one_a_reason(fast_study: Study) -> None:
    report = study_report(study=fast_study)
    assert report.detectors is not None
    scores = set(report.detectors["score"])
    assert "fast_detectgpt" in scores
    assert "binoculars" not in scores  # nothing stored: no row, a note instead
    fast = report.detectors.set_index("score").loc["fast_detectgpt"]
    assert fast["auc"] == pytest.approx(8 / 9)
    assert any(
        note.startswith('Binoculars with scorer "gpt2" is missing for 6 article(s): ')
        and NO_PERFORMER in note
        for note in report.notes
    )


def test_the_articles_people_and_the_best_detector_disagree_on_most(fast_study: Study) -> None:
    report = study_report(study=fast_study)
    worst = report.best_disagreements
    assert worst is not None
    real, generated = _articles(fast_study, "real"), _articles(fast_study, "generated")
    assert worst.iloc[0]["article_id"] == generated[0].pk
    assert worst.iloc[0]["gap"] == pytest.approx(100 / 6 - 75, abs=1e-9)
    assert worst.iloc[0]["score_value"] == pytest.approx(0.5)
    assert worst.iloc[0]["title"] == generated[0].title
    assert set(worst.iloc[1:3]["article_id"]) == {real[1].pk, real[2].pk}
    assert list(worst.iloc[1:3]["gap"]) == pytest.approx([25.0, 25.0])
    assert set(worst["score"]) == {"fast_detectgpt"}


def test_without_ratings_there_is_no_comparison(scored_study: Study) -> None:  # noqa: F811
    from surveys.models import Participant

    Participant.objects.filter(study=scored_study).delete()
    report = study_report(study=scored_study)
    assert report.people_vs_detector is None
    assert report.best_disagreements is None


def test_text_report_results_page_and_api_show_the_comparison(fast_study: Study, client) -> None:  # type: ignore[no-untyped-def]
    text = report_as_text(study_report(study=fast_study))
    assert "DeLong's paired test of two correlated AUCs" in text
    assert (
        "gpt2  fast_detectgpt: AUC 0.889 vs participants 0.500, difference +0.389 "
        "[-0.098, 0.876], z = 1.57, p = 0.118, Bonferroni over 6 scores p = 0.705, n 3 vs 3"
    ) in text
    assert "best detector (fast_detectgpt) disagree most" in text
    assert "Binoculars with scorer" in text

    user = get_user_model().objects.create_user(
        "analyst", password="pw", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    response = client.get(reverse("analysis:results", args=[fast_study.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="people-vs-detector"' in html
    assert 'id="best-disagreements"' in html
    assert "+0.389" in html

    api = APIClient()
    api.force_authenticate(user)
    response = api.get(reverse("api:study-results", args=[fast_study.slug]))
    assert response.status_code == 200
    body = response.json()
    assert body["people_vs_detector"][0]["p_value"] == pytest.approx(P)
    assert body["people_vs_detector"][0]["candidates"] == 6
    assert body["best_disagreements"][0]["article_id"] == _articles(fast_study, "generated")[0].pk


def test_api_comparison_is_null_without_scores(client) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import StudyFactory

    study = StudyFactory.create_live(articles_per_condition=1)
    user = get_user_model().objects.create_user(
        "analyst2", password="pw", is_staff=True, is_superuser=True
    )
    api = APIClient()
    api.force_authenticate(user)
    body = api.get(reverse("api:study-results", args=[study.slug])).json()
    assert body["people_vs_detector"] is None
    assert body["best_disagreements"] is None
