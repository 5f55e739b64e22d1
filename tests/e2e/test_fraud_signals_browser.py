"""Copy and paste counts and the JavaScript marker (signals.js) in real Chromium: a reader
copies article text and pastes into a free-text answer, and the counts land on the
trial; a browser without JavaScript answers too, and is counted as such."""

from __future__ import annotations

import re

import pytest

from surveys import fraud
from surveys.models import Participant, Question, Study, Trial
from tests.factories import QuestionFactory, StudyFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _study() -> Study:
    study = StudyFactory.create_live(articles_per_participant=1)
    QuestionFactory.create(
        study=study,
        key="why",
        text="Why do you think so?",
        kind=Question.Kind.FREE_TEXT,
        required=False,
        position=10,
    )
    return study


def _to_article(page, live_server, study: Study, pid: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID={pid}")
    page.get_by_label("I agree to take part").check()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/instructions/$"))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/article/1/$"))


def _answer(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("group", name="Is this article credible?").get_by_label("Yes").check()
    for key, value in (("believable", "3"), ("accurate", "2"), ("clear", "3")):
        group = page.get_by_role("group", name=f"How {key} is this article?")
        group.get_by_role("radio", name=value, exact=True).check()


def test_copies_of_the_article_and_pastes_into_free_text_are_counted(live_server, browser):
    study = _study()
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    _to_article(page, live_server, study, "COPY-1")
    page.wait_for_function("document.readyState === 'complete'")
    # Two copies of article text, with the keyboard, as a reader would.
    for _ in range(2):
        page.locator("article.news h1").select_text()
        page.keyboard.press("Control+C")
    why = page.get_by_label("Why do you think so?")
    why.click()
    page.keyboard.press("Control+V")
    # A copy outside the article (the question text) is no copy of the article.
    page.get_by_text("Why do you think so?").first.select_text()
    page.keyboard.press("Control+C")
    _answer(page)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/check/1/$"))
    participant = Participant.objects.get(study=study, panel_pid="COPY-1")
    trial = Trial.objects.get(participant=participant)
    assert (trial.copies, trial.pastes) == (2, 1)
    signals = fraud.participation_signals(study=study)[participant.pk]
    assert signals.javascript is True
    assert signals.honeypot is False  # a person never sees the hidden field
    context.close()


def test_a_browser_without_javascript_answers_and_is_counted_as_such(live_server, browser):
    study = _study()
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    _to_article(page, live_server, study, "NOJS-1")
    _answer(page)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/check/1/$"))
    participant = Participant.objects.get(study=study, panel_pid="NOJS-1")
    trial = Trial.objects.get(participant=participant)
    assert trial.answered_at is not None
    assert (trial.copies, trial.pastes) == (None, None)
    signals = fraud.participation_signals(study=study)[participant.pk]
    assert signals.javascript is False
    assert signals.honeypot is False
    context.close()
