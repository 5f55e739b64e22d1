"""docs/screenshots/preregistration.png: the preregistration page (analysis.preregistration)
of a launched study as a browser draws it. Run with CREDENCE_SCREENSHOTS=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analysis.preregistration import preregistration_html
from surveys.models import Condition, ExclusionRule, Study
from surveys.services import study_set_status
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.mark.skipif(
    os.environ.get("CREDENCE_SCREENSHOTS") != "1", reason="set CREDENCE_SCREENSHOTS=1"
)
def test_screenshot_of_the_preregistration(browser):
    study = StudyFactory.create_live(title="Do readers believe GPT-2's news?")
    Study.objects.filter(pk=study.pk).update(
        status=Study.Status.DRAFT,
        design_hash="",
        hypotheses="Articles written by the language model are rated credible less often "
        "than the real articles their ledes come from.",
        primary_comparison="generated",
    )
    Condition.objects.filter(study=study).update(quota=230)
    ExclusionRule.objects.create(
        study=study, kind=ExclusionRule.Kind.TOO_FAST, threshold=15, position=1
    )
    study.refresh_from_db()
    study = study_set_status(study=study, status=Study.Status.LIVE)
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_content(preregistration_html(study=study))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / "preregistration.png"
    page.screenshot(path=str(path), full_page=True)
    context.close()
    assert 5_000 < path.stat().st_size < 600_000
