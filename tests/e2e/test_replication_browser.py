"""docs/screenshots/replication-table.png: the replication section of the self-contained
HTML report (analysis.presentation_replication) as a browser draws it, for a simulated
study. Run with CREDENCE_SCREENSHOTS=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analysis.presentation import report_as_html
from analysis.services import study_report
from surveys.models import Condition, Study
from tests.analysis.conftest import make_participant, rating
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.mark.skipif(
    os.environ.get("CREDENCE_SCREENSHOTS") != "1", reason="set CREDENCE_SCREENSHOTS=1"
)
def test_screenshot_of_the_replication_table(browser):
    study = StudyFactory.create_live(title="GPT-2 credibility, a replication (simulated)")
    Study.objects.filter(pk=study.pk).update(
        original_citation="Illustration with simulated answers: the original rates are those "
        "of the GPT-2 release report (83% real, 72% GPT-2 774M); the original sample sizes "
        "(200 per condition) are made up for the picture.",
        equivalence_bound=0.10,
    )
    Condition.objects.filter(study=study, name="real").update(original_rate=0.83, original_n=200)
    Condition.objects.filter(study=study, name="generated").update(
        original_rate=0.72, original_n=200
    )
    for condition, yes, n in (("real", 66, 80), ("generated", 61, 80)):
        for i in range(n):
            make_participant(study, condition, [rating("yes" if i < yes else "no")])
    study.refresh_from_db()
    html = report_as_html(study_report(study=study))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_content(html)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / "replication-table.png"
    page.locator("#replication").screenshot(path=str(path))
    context.close()
    assert 5_000 < path.stat().st_size < 400_000
