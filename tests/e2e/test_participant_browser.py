"""A participant takes a two-article study in real Chromium, through the live server."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.utils import timezone

from surveys.models import Participant, Response, Study
from tests.factories import StudyFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def fill_real_condition(study: Study) -> None:
    """Seat one participant in the real condition, so that the next one is assigned the
    machine-generated articles (assignment fills the least-filled condition first)."""
    now = timezone.now()
    Participant.objects.create(
        study=study,
        condition=study.conditions.get(name="real"),
        panel_pid="PLACEHOLDER",
        seed=0,
        consented_at=now,
        last_seen_at=now,
    )


def answer_article(page, *, credible: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("group", name="Is this article credible?").get_by_label(credible).check()
    for key, value in (("believable", "3"), ("accurate", "2"), ("clear", "3")):
        group = page.get_by_role("group", name=f"How {key} is this article?")
        group.get_by_role("radio", name=value, exact=True).check()


def test_participant_completes_a_study_with_refresh_and_back_button(live_server, browser):
    study = StudyFactory.create_live(articles_per_participant=2)
    fill_real_condition(study)
    context = browser.new_context(viewport=VIEWPORTS["desktop"])
    page = context.new_page()
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=E2E-1&STUDY_ID=S1&SESSION_ID=X1")
    assert page.get_by_role("heading", level=1).inner_text() == study.title
    assert Participant.objects.count() == 1  # opening the link writes nothing

    # Submitting without consent is refused with a message.
    page.get_by_role("button", name="Start").click()
    assert "Please tick the box" in page.content()
    assert Participant.objects.count() == 1

    page.get_by_label("I agree to take part").check()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/instructions/$"))
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url(re.compile(r"/article/1/$"))
    assert "Article 1 of 2" in page.content()
    # Submitting with a missing answer shows the errors and keeps the page.
    page.get_by_role("button", name="Next article").click()
    assert page.get_by_role("alert").is_visible()
    assert Response.objects.count() == 0
    answer_article(page, credible="Yes")
    page.get_by_role("button", name="Next article").click()

    page.wait_for_url(re.compile(r"/article/2/$"))
    page.reload()  # refresh mid-way: same page, nothing lost
    assert "Article 2 of 2" in page.content()
    page.go_back()  # back to article 1: still answerable, prefilled
    page.wait_for_url(re.compile(r"/article/1/$"))
    credible = page.get_by_role("group", name="Is this article credible?")
    assert credible.get_by_label("Yes").is_checked()
    credible.get_by_label("No").check()
    page.get_by_role("button", name="Next article").click()

    page.wait_for_url(re.compile(r"/article/2/$"))
    answer_article(page, credible="Yes")
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url(re.compile(r"/check/2/$"))  # the check after the last article
    page.get_by_label("Blue").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/finish/$"))
    page.get_by_role("button", name="Submit my answers").click()

    page.wait_for_url(re.compile(r"/debrief/$"))
    participant = Participant.objects.get(panel_pid="E2E-1")
    assert participant.condition.name == "generated"
    text = page.inner_text("main")
    assert participant.completion_code in text
    trials = list(participant.trials.select_related("article").order_by("position"))
    for trial in trials:
        item = page.locator("li", has_text=trial.article.title)
        expected = "Machine-generated" if trial.article.origin == "generated" else "Real article"
        assert expected in item.inner_text()
    assert "tiny-test-model" in text
    link = page.get_by_role("link", name="Return to the study panel")
    assert link.get_attribute("href") == (
        f"https://example.org/complete?cc={participant.completion_code}"
    )
    context.close()

    assert Participant.objects.filter(study=study).count() == 2  # placeholder + browser
    assert Participant.objects.filter(study=study, panel_pid="E2E-1").count() == 1
    assert participant.status == "completed"
    assert (participant.panel_pid, participant.panel_session_id) == ("E2E-1", "X1")
    assert Response.objects.filter(participant=participant).count() == 2 * 4 + 1
    first, second = (
        {r.question.key: r.value for r in t.responses.select_related("question")} for t in trials
    )
    assert first["credible"] == "no"
    assert second["credible"] == "yes"


@pytest.mark.skipif(
    os.environ.get("CREDENCE_SCREENSHOTS") != "1", reason="set CREDENCE_SCREENSHOTS=1"
)
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_screenshots(live_server, browser, device):
    study = StudyFactory.create_live(articles_per_participant=2, title="How people read the news")
    Study.objects.filter(pk=study.pk).update(completion_code="C1A2B3")
    if device == "phone":
        fill_real_condition(study)  # one screenshot set of each condition
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=VIEWPORTS[device])
    page = context.new_page()
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=SHOT-{device}")
    page.screenshot(path=str(SCREENSHOTS / f"consent-{device}.png"), full_page=True)
    page.get_by_label("I agree to take part").check()
    page.get_by_role("button", name="Start").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/article/1/$"))
    answer_article(page, credible="Yes")
    page.screenshot(path=str(SCREENSHOTS / f"article-{device}.png"), full_page=True)
    page.get_by_role("button", name="Next article").click()
    page.wait_for_url(re.compile(r"/article/2/$"))
    answer_article(page, credible="No")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Blue").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Submit my answers").click()
    page.wait_for_url(re.compile(r"/debrief/$"))
    page.screenshot(path=str(SCREENSHOTS / f"debrief-{device}.png"), full_page=True)
    context.close()
    assert (SCREENSHOTS / f"debrief-{device}.png").stat().st_size > 10_000
