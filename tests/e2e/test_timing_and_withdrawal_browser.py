"""Reading time measured by timing.js, and withdrawal, in real Chromium."""

from __future__ import annotations

import re

import pytest

from surveys.models import Participant, Response, Trial, WithdrawalLog
from tests.factories import StudyFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Headless Chromium never hides a page by itself; this makes the document report the
# given visibility state and fires the event the script listens to, as a tab switch does.
SET_VISIBILITY = """state => {
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
  Object.defineProperty(document, "hidden", {configurable: true, get: () => state === "hidden"});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def answer_article(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("group", name="Is this article credible?").get_by_label("Yes").check()
    for key, value in (("believable", "3"), ("accurate", "2"), ("clear", "3")):
        group = page.get_by_role("group", name=f"How {key} is this article?")
        group.get_by_role("radio", name=value, exact=True).check()


def start(page, live_server, study, pid: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID={pid}")
    page.get_by_label("I agree to take part").check()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/instructions/$"))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/article/1/$"))


def test_visible_time_and_tab_aways_are_stored_with_the_answers(live_server, browser):
    study = StudyFactory.create_live(articles_per_participant=2)
    context = browser.new_context()
    page = context.new_page()
    start(page, live_server, study, "TIME-1")
    # Article 1: the reader leaves the tab twice.
    page.wait_for_function("document.readyState === 'complete'")
    for state in ("hidden", "visible", "hidden", "visible"):
        page.evaluate(SET_VISIBILITY, state)
    # A first submission with a missing answer re-renders the page; the measurement so far
    # is carried into the new page and continued.
    page.get_by_role("button", name="Next article").click()
    page.wait_for_selector("#error-summary")
    carried = int(page.locator('input[name="visible_ms"]').input_value())
    assert carried > 0
    assert page.locator('input[name="tab_aways"]').input_value() == "2"
    answer_article(page)
    page.get_by_role("button", name="Next article").click()
    page.wait_for_url(re.compile(r"/article/2/$"))
    answer_article(page)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/check/2/$"))  # the check after the last article
    context.close()

    participant = Participant.objects.get(panel_pid="TIME-1")
    first, second = Trial.objects.filter(participant=participant).order_by("position")
    assert first.visible_ms is not None
    assert first.visible_ms >= carried > 0
    assert first.tab_aways == 2
    assert second.visible_ms is not None
    assert second.visible_ms > 0
    assert second.tab_aways == 0
    # Visible time cannot exceed the time between showing the page and the answer.
    for trial in (first, second):
        assert trial.first_shown_at is not None
        assert trial.answered_at is not None
        elapsed_ms = (trial.answered_at - trial.first_shown_at).total_seconds() * 1000
        assert trial.visible_ms <= elapsed_ms + 1000  # clocks of browser and server differ


def test_a_participant_withdraws_from_the_footer_link(live_server, browser):
    study = StudyFactory.create_live(articles_per_participant=2)
    context = browser.new_context()
    page = context.new_page()
    start(page, live_server, study, "WD-1")
    answer_article(page)
    page.get_by_role("button", name="Next article").click()
    page.wait_for_url(re.compile(r"/article/2/$"))
    participant = Participant.objects.get(panel_pid="WD-1")
    titles = list(participant.trials.order_by("position").values_list("article__title", flat=True))
    assert Response.objects.filter(participant=participant).count() == 4

    page.get_by_role("link", name="Withdraw from the study").click()
    page.wait_for_url(re.compile(r"/withdraw/$"))
    # Changing one's mind leads back to the same article.
    page.get_by_role("link", name="No, go back to the study").click()
    page.wait_for_url(re.compile(r"/article/2/$"))
    page.get_by_role("link", name="Withdraw from the study").click()
    page.get_by_role("button", name="Withdraw and delete my answers").click()
    page.wait_for_url(re.compile(r"/debrief/$"))
    text = page.inner_text("main")
    assert "You have withdrawn from the study" in text
    for title in titles:
        assert title in text
    assert page.get_by_role("link", name="Withdraw from the study").count() == 0
    context.close()

    participant.refresh_from_db()
    assert participant.status == "withdrawn"
    assert Response.objects.filter(participant=participant).count() == 0
    assert participant.trials.count() == 0
    assert WithdrawalLog.objects.get().panel_pid == ""  # withdrawal keeps no panel id
