"""In Chromium: a within-subjects study with the detection question and the about-you
page, whose slider is a number box that a range control mirrors when JavaScript runs."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from surveys.instruments import instrument_apply
from surveys.models import Participant, Response, Study
from surveys.services import study_set_status
from tests.surveys.builders import story_of, within_study

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def about_study() -> Study:
    study = within_study(stories=4, real_each=1, generated_each=1, launch=False)
    instrument_apply(study=study, name="detection")
    instrument_apply(study=study, name="demographics")
    return study_set_status(study=study, status=Study.Status.LIVE)


def answer_article(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("group", name="Is this article credible?").get_by_label("Yes").check()
    for key in ("believable", "accurate", "clear"):
        group = page.get_by_role("group", name=f"How {key} is this article?")
        group.get_by_role("radio", name="3", exact=True).check()
    page.get_by_label("I don't know").check()


def walk_to_about(page, url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.get_by_label("I agree to take part").check()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/instructions/$"))
    assert "You will read 2 articles." in page.inner_text("main")
    page.get_by_role("button", name="Continue").click()
    for position in (1, 2):
        page.wait_for_url(re.compile(rf"/article/{position}/$"))
        answer_article(page)
        page.get_by_role("button", name=re.compile("Next article|Continue")).click()
    # The attention check comes right after the last article, before the about-you page.
    page.wait_for_url(re.compile(r"/check/2/$"))
    page.get_by_label("Blue").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/about-you/$"))


def fill_demographics(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("group", name="How old are you?").get_by_label("35-44").check()
    page.get_by_role("group", name="What is your gender?").get_by_label("Woman").check()
    page.get_by_role("group", name=re.compile("Generally speaking")).get_by_label(
        "Democrat"
    ).check()
    page.get_by_role("group", name=re.compile("seen or heard")).get_by_label("Not sure").check()
    page.get_by_role("group", name=re.compile("look up anything")).get_by_label("No").check()
    sources = page.get_by_role("group", name="Where do you usually get your news?")
    sources.get_by_label("Radio or podcasts").check()
    sources.get_by_label("Television").check()


def finish(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_url(re.compile(r"/finish/$"))
    page.get_by_role("button", name="Submit my answers").click()
    page.wait_for_url(re.compile(r"/debrief/$"))


def test_within_participant_uses_the_slider_and_ticks_boxes(live_server, browser):
    study = about_study()
    context = browser.new_context()
    page = context.new_page()
    walk_to_about(page, f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=E2E-W")
    box = page.get_by_label(re.compile("how much do you trust the news media"))
    slider = page.locator('input[type="range"]')
    assert slider.is_visible()  # shown by slider.js
    slider.fill("73")
    assert box.input_value() == "73"
    box.fill("12")
    assert slider.input_value() == "12"
    # An out-of-range number is refused by the server, with the message on the page.
    box.fill("250")
    fill_demographics(page)
    page.get_by_role("button", name="Continue").click()
    assert "whole number from 0 to 100" in page.inner_text("main")
    assert Response.objects.filter(question__scope="participant").count() == 0
    page.get_by_label(re.compile("how much do you trust the news media")).fill("64")
    page.get_by_role("button", name="Continue").click()
    finish(page)
    context.close()

    participant = Participant.objects.get(panel_pid="E2E-W")
    assert participant.status == "completed"
    assert participant.condition is None
    trials = list(participant.trials.select_related("condition", "article"))
    assert Counter(t.condition.name for t in trials) == {"real": 1, "generated": 1}
    assert len({story_of(t.article) for t in trials}) == 2
    answers = dict(
        participant.responses.filter(trial__isnull=True).values_list("question__key", "value")
    )
    assert answers["media_trust"] == "64"
    assert json.loads(answers["news_sources"]) == ["Television", "Radio or podcasts"]
    assert answers["age_bracket"] == "35-44"
    assert (
        participant.responses.filter(question__key="written_by", value="I don't know").count() == 2
    )


def test_without_javascript_the_slider_is_a_number_box(live_server, browser):
    study = about_study()
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    walk_to_about(page, f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=E2E-NOJS")
    assert not page.locator('input[type="range"]').is_visible()
    fill_demographics(page)
    page.get_by_label(re.compile("how much do you trust the news media")).fill("5")
    page.get_by_role("button", name="Continue").click()
    finish(page)
    context.close()
    participant = Participant.objects.get(panel_pid="E2E-NOJS")
    assert participant.status == "completed"
    assert participant.responses.get(question__key="media_trust").value == "5"
