"""Between- and within-subjects studies completed on a phone-sized screen, with the layout
and labelling checked on every page; one article answered with the keyboard alone."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from surveys.instruments import instrument_apply
from surveys.models import Participant, Question, Response, Study
from surveys.services import study_set_status
from tests.e2e.flow import (
    LAYOUT_JS,
    PHONE,
    UNLABELLED_JS,
    assert_readable_on_a_phone,
    responses_expected,
    step_of,
    submit_page,
    walk,
)
from tests.factories import StudyFactory
from tests.surveys.builders import story_of, within_study

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def take_on_a_phone(browser: Browser, url: str, study: Study) -> tuple[list[str], list[int]]:
    """Walk from the study link to the debrief on a phone; returns the steps seen and,
    per page, the most rows a rating scale's options took."""
    context = browser.new_context(**PHONE)
    page = context.new_page()
    steps: list[str] = []
    scale_rows: list[int] = []

    def check(page: Page, step: str) -> None:
        steps.append(step)
        assert_readable_on_a_phone(page, step)
        scale_rows.extend(page.evaluate(LAYOUT_JS)["scaleRows"])

    page.goto(url)
    # A mobile browser lays out 980 px wide unless the page asks for the device width.
    assert page.evaluate("document.documentElement.clientWidth") == 390
    assert walk(page, study, on_page=check) == "debrief"
    context.close()
    return steps, scale_rows


def assert_complete(participant: Participant, study: Study, *, trials: int) -> None:
    assert participant.status == Participant.Status.COMPLETED
    assert participant.trials.count() == trials
    # Every question answered once: one row per trial and question, one per once-asked one.
    assert participant.responses.count() == responses_expected(study, trials=trials)
    keys = Counter(participant.responses.values_list("trial_id", "question_id"))
    assert max(keys.values()) == 1


def test_between_subjects_study_on_a_phone(live_server, browser):
    study = StudyFactory.create_live(articles_per_participant=2)
    url = f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=PHONE-B"
    steps, _ = take_on_a_phone(browser, url, study)

    assert steps[0] == "consent"
    assert steps.count("article") == 2
    assert {"instructions", "check", "finish"} <= set(steps)
    participant = Participant.objects.get(panel_pid="PHONE-B")
    assert_complete(participant, study, trials=2)
    assert participant.condition is not None
    assert {t.condition_id for t in participant.trials.all()} == {participant.condition_id}


def test_within_subjects_study_with_about_you_page_on_a_phone(live_server, browser):
    study = within_study(stories=4, real_each=1, generated_each=1, launch=False)
    # Long answer labels (detection) and a 7-point scale (ideology) are the hard cases.
    instrument_apply(study=study, name="detection")
    instrument_apply(study=study, name="demographics")
    study = study_set_status(study=study, status=Study.Status.LIVE)
    assert Question.objects.filter(study=study, kind="likert", scale_max=7).exists()
    url = f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=PHONE-W"
    steps, scale_rows = take_on_a_phone(browser, url, study)

    assert steps.count("article") == 2
    assert "about" in steps
    # The 7-point scale does not fit one row of a 390 px screen: it wraps (and, from the
    # layout checks, stays inside the screen) instead of scrolling sideways.
    assert max(scale_rows) >= 2
    participant = Participant.objects.get(panel_pid="PHONE-W")
    assert_complete(participant, study, trials=2)
    trials = list(participant.trials.select_related("condition", "article"))
    assert Counter(t.condition.name for t in trials) == {"real": 1, "generated": 1}
    assert len({story_of(t.article) for t in trials}) == 2


def focused(page: Page) -> dict[str, str]:
    return page.evaluate(
        """() => { const e = document.activeElement; const s = getComputedStyle(e);
        return {tag: e.tagName, type: e.type || "", name: e.name || "", value: e.value || "",
                outline: s.outlineStyle, outlineWidth: s.outlineWidth}; }"""
    )


def answer_with_the_keyboard(page: Page) -> dict[str, str]:
    """Tab through the page: in each radio group take the second option (Space on the
    first, then the right arrow), then press Enter on the submit button."""
    chosen: dict[str, str] = {}
    for _ in range(60):
        page.keyboard.press("Tab")
        now = focused(page)
        if now["type"] == "radio" and now["name"] not in chosen:
            page.keyboard.press("Space")
            page.keyboard.press("ArrowRight")
            chosen[now["name"]] = focused(page)["value"]
        elif now["tag"] == "BUTTON" and now["type"] == "submit":
            # The keyboard focus is visible (WCAG 2.4.7).
            assert now["outline"] != "none", now
            assert now["outlineWidth"] != "0px", now
            with page.expect_navigation():
                page.keyboard.press("Enter")
            return chosen
    raise AssertionError("Tab never reached the submit button")


def test_an_article_is_answered_with_the_keyboard_alone(live_server, browser):
    study = StudyFactory.create_live(articles_per_participant=2)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=KEYS-1")
    # Consent with the keyboard too: Tab to the box, Space, Tab to Start, Enter.
    while focused(page)["name"] != "consent":
        page.keyboard.press("Tab")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert focused(page)["tag"] == "BUTTON"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    while step_of(page) != "article":
        submit_page(page, study)
    assert re.search(r"/article/1/$", page.url)

    chosen = answer_with_the_keyboard(page)
    assert chosen["credible"] == "no"  # Yes, No: the second option
    assert {chosen[k] for k in ("believable", "accurate", "clear")} == {"2"}
    assert step_of(page) != "article" or re.search(r"/article/2/$", page.url)
    assert walk(page, study) == "debrief"
    context.close()

    participant = Participant.objects.get(panel_pid="KEYS-1")
    assert_complete(participant, study, trials=2)
    first = participant.trials.get(position=1)
    stored = dict(Response.objects.filter(trial=first).values_list("question__key", "value"))
    assert {key: stored[key] for key in chosen} == chosen


def test_the_phone_checks_catch_a_grid_that_scrolls_and_an_unlabelled_input(browser):
    """The checks above can fail: a page of the shape of ours with a 9-point scale in one
    unwrapped row and an input without a label fails them."""
    context = browser.new_context(**PHONE)
    page = context.new_page()
    options = "".join(
        f'<label style="min-width:4rem"><input type="radio" name="x" value="{n}">{n}</label>'
        for n in range(1, 10)
    )
    page.set_content(
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<main><form><fieldset id="q-x"><legend>How?</legend>'
        f'<div class="scale"><div class="options" style="display:flex">{options}</div></div>'
        '</fieldset><input type="text" name="loose"></form></main>'
    )
    layout = page.evaluate(LAYOUT_JS)
    assert layout["scrollWidth"] > layout["clientWidth"] == 390
    assert layout["innerWidth"] > 390  # the browser zoomed out to show it all
    assert layout["sticking"] != []
    assert layout["scaleRows"] == [1]
    assert page.evaluate(UNLABELLED_JS) == ['<input type="text" name="loose">']
    with pytest.raises(AssertionError):
        assert_readable_on_a_phone(page, "article")
    context.close()


@pytest.mark.skipif(
    os.environ.get("CREDENCE_SCREENSHOTS") != "1", reason="set CREDENCE_SCREENSHOTS=1"
)
def test_phone_screenshots_of_the_check_and_finish_pages(live_server, browser):
    """docs/screenshots/{check,finish}-phone.png; the consent, article and debrief ones
    come from test_participant_browser.test_screenshots. At 1x, to keep the files small."""
    study = StudyFactory.create_live(articles_per_participant=1, title="How people read the news")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(**{**PHONE, "device_scale_factor": 1})
    page = context.new_page()
    shots: list[Path] = []

    def shoot(page: Page, step: str) -> None:
        if step in ("check", "finish"):
            path = SCREENSHOTS / f"{step}-phone.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append(path)

    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=SHOT-PHONE-2")
    assert walk(page, study, on_page=shoot) == "debrief"
    context.close()
    assert [p.name for p in shots] == ["check-phone.png", "finish-phone.png"]
    for path in shots:
        assert 5_000 < path.stat().st_size < 200_000
