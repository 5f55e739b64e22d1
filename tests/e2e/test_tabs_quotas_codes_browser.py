"""In Chromium: a second tab in the middle of a study, double submissions, a return on
another device with the same panel id, a study whose quotas are full, and the code a
failed attention check (placed among the articles) earns."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from django.utils import timezone
from playwright.sync_api import Page, Route

from surveys.models import Condition, Participant, Question, Response, Study
from surveys.services import study_set_status
from tests.e2e.flow import (
    PHONE,
    answer_questions,
    assert_readable_on_a_phone,
    responses_expected,
    step_of,
    submit_page,
    walk,
)
from tests.factories import QuestionFactory, StudyFactory
from tests.surveys.builders import within_study

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def open_study(page: Page, url: str, study: Study) -> None:
    """From the study link to the first article: consent, instructions and whatever
    the study asks before the articles."""
    page.goto(url)
    assert step_of(page) == "consent"
    walk(page, study, until=frozenset({"article"}))
    assert re.search(r"/article/1/$", page.url)


def answers(participant: Participant) -> dict[tuple[int | None, str], str]:
    """Every stored answer by (trial position, question key)."""
    return {
        (r.trial.position if r.trial else None, r.question.key): r.value
        for r in Response.objects.filter(participant=participant).select_related(
            "trial", "question"
        )
    }


def test_a_stale_second_tab_loses_nothing_and_duplicates_nothing(live_server, browser):
    study = StudyFactory.create_live(articles_per_participant=2)
    url = f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=TABS-1"
    context = browser.new_context()
    first = context.new_page()
    open_study(first, url, study)
    # The same link opened again in a second tab of the same browser: same article.
    second = context.new_page()
    second.goto(url)
    assert second.url == first.url
    participant = Participant.objects.get(panel_pid="TABS-1")

    # The first tab answers both articles and moves on. (A tab in the background gets no
    # animation frames, which Playwright waits for: switch tabs as a person would.)
    first.bring_to_front()
    submit_page(first, study, picks={"credible": "yes", "believable": "4"})
    assert re.search(r"/article/2/$", first.url)
    submit_page(first, study)
    assert step_of(first) != "article"

    # The second tab still shows article 1; its (changed) answers replace the earlier
    # ones instead of being added, and it lands where the first tab is.
    second.bring_to_front()
    submit_page(second, study, picks={"credible": "no", "believable": "1"})
    assert second.url == first.url
    stored = answers(participant)
    assert stored[(1, "credible")] == "no"
    assert stored[(1, "believable")] == "1"
    assert participant.trials.count() == 2
    per_question = Counter(participant.responses.values_list("trial_id", "question_id"))
    assert set(per_question.values()) == {1}
    assert participant.responses.filter(trial__isnull=False).count() == 2 * 4

    # The first tab finishes; the stale page in the second tab is submitted afterwards,
    # with a wrong check answer: nothing is written after completion, and it shows the
    # debrief with the completion code earned.
    first.bring_to_front()
    assert walk(first, study) == "debrief"
    participant.refresh_from_db()
    assert participant.status == Participant.Status.COMPLETED
    before = answers(participant)
    code = participant.completion_code
    second.bring_to_front()
    submit_page(second, study, fail_checks=True)
    assert step_of(second) == "debrief"
    assert second.locator("[data-completion-code]").inner_text() == code
    context.close()

    participant.refresh_from_db()
    assert answers(participant) == before
    assert participant.completion_code == code
    assert participant.responses.count() == responses_expected(study, trials=2)
    assert Participant.objects.filter(study=study).count() == 1


def submit_twice(page: Page, study: Study) -> list[int]:
    """Submit the page's form twice, both submissions reaching the server: the reply to
    the first is replaced by a 204 (the browser stays on the form, as when a participant
    clicks again before the answer arrives), then the form is submitted again. Returns
    the status the server gave the first submission."""
    first: list[int] = []

    def hold_first_reply(route: Route) -> None:
        if route.request.method != "POST" or first:
            route.continue_()
            return
        first.append(route.fetch(max_redirects=0).status)
        route.fulfill(status=204)

    answer_questions(page, study)
    page.route("**/*", hold_first_reply)
    url = page.url
    with page.expect_response(lambda response: response.request.method == "POST"):
        page.locator("main form button[type=submit]").first.click()
    assert page.url == url
    page.unroute("**/*")
    submit_page(page, study)
    return first


def test_double_submissions_write_once(live_server, browser):
    study = StudyFactory.create_live(articles_per_participant=2)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=TWICE-1")
    page.locator("#id_consent").check()
    assert submit_twice(page, study) == [302]
    assert Participant.objects.filter(study=study).count() == 1
    participant = Participant.objects.get(panel_pid="TWICE-1")
    walk(page, study, until=frozenset({"article"}))

    answered = submit_twice(page, study)
    assert answered == [302]
    assert re.search(r"/article/2/$", page.url)
    first = participant.trials.get(position=1)
    assert first.responses.count() == 4
    walk(page, study, until=frozenset({"finish"}))
    assert submit_twice(page, study) == [302]
    assert step_of(page) == "debrief"
    shown = page.locator("[data-completion-code]").inner_text()
    context.close()

    participant.refresh_from_db()
    assert participant.status == Participant.Status.COMPLETED
    assert participant.completion_code == shown
    assert participant.responses.count() == responses_expected(study, trials=2)
    per_question = Counter(participant.responses.values_list("trial_id", "question_id"))
    assert set(per_question.values()) == {1}


def test_resume_with_the_same_panel_id_in_a_fresh_browser(live_server, browser):
    study = StudyFactory.create_live(articles_per_participant=2)
    url = f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=BACK-1&STUDY_ID=S1&SESSION_ID=A"
    laptop = browser.new_context()
    page = laptop.new_page()
    open_study(page, url, study)
    given = submit_page(page, study, picks={"credible": "no", "clear": "1"})
    assert re.search(r"/article/2/$", page.url)
    participant = Participant.objects.get(panel_pid="BACK-1")
    design = list(participant.trials.order_by("position").values_list("pk", "article_id"))
    laptop.close()

    # Another browser (no cookies, no session), same panel id: straight back to article 2,
    # not to the consent page.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.new_page()
    page.goto(url.replace("SESSION_ID=A", "SESSION_ID=B"))
    assert page.url == f"{live_server.url}/p/{participant.token}/article/2/"
    second_title = participant.trials.get(position=2).article.title
    assert page.get_by_role("heading", level=1).inner_text() == second_title
    # Going back shows article 1 with the earlier answers ticked.
    page.goto(f"{live_server.url}/p/{participant.token}/article/1/")
    for key, value in given.items():
        assert page.locator(f'#q-{key} input[value="{value}"]').is_checked(), key
    page.goto(url)
    assert walk(page, study) == "debrief"
    phone.close()

    assert Participant.objects.filter(study=study).count() == 1
    participant.refresh_from_db()
    assert participant.status == Participant.Status.COMPLETED
    assert list(participant.trials.order_by("position").values_list("pk", "article_id")) == (design)
    stored = answers(participant)
    assert {key: stored[(1, key)] for key in given} == given
    assert participant.responses.count() == responses_expected(study, trials=2)


def test_a_full_study_turns_newcomers_away_politely_and_closes_itself(live_server, browser):
    study = StudyFactory.create_live(articles_per_participant=1)
    # Quotas as a researcher sets them before launch: one completer per condition.
    Condition.objects.filter(study=study).update(quota=1)
    now = timezone.now()
    Participant.objects.create(
        study=study,
        condition=study.conditions.get(name="real"),
        panel_pid="EARLIER",
        seed=0,
        status=Participant.Status.COMPLETED,
        consented_at=now,
        last_seen_at=now,
        completed_at=now,
    )
    last = browser.new_context()
    last_page = last.new_page()
    open_study(last_page, f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=LAST", study)
    assert Participant.objects.get(panel_pid="LAST").condition.name == "generated"

    # Every place is taken (one completed, one in progress): a newcomer is told so before
    # consenting, and nothing is written.
    newcomer = browser.new_context()
    page = newcomer.new_page()
    response = page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=LATE-1")
    assert response is not None
    assert response.status == 503
    assert step_of(page) == "full"
    assert page.get_by_role("heading", level=1).inner_text() == "This study is full"
    assert "please do not submit a completion code" in page.inner_text("main")
    assert page.locator("form").count() == 0
    assert Participant.objects.filter(study=study).count() == 2
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE

    # The last participant completes: the study closes itself.
    assert walk(last_page, study) == "debrief"
    last.close()
    study.refresh_from_db()
    assert study.status == Study.Status.CLOSED
    assert study.closed_at is not None
    response = page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=LATE-2")
    assert response is not None
    assert response.status == 410
    assert step_of(page) == "closed"
    assert "please do not submit a completion code" in page.inner_text("main")
    assert page.locator("form").count() == 0
    # The one who completed still reaches their debrief after closing.
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=LAST")
    assert step_of(page) == "debrief"
    newcomer.close()
    assert Participant.objects.filter(study=study).count() == 2


def checked_study() -> Study:
    """Within subjects, two articles: a comprehension question after the instructions,
    the attention check after the first article, a disclaimer on the generated articles
    and a masthead on the real ones; distinct codes for passing and failing the check."""
    study = within_study(stories=4, real_each=1, generated_each=1, launch=False)
    Question.objects.filter(study=study, key="attention").update(after_article=1)
    QuestionFactory.create(
        study=study,
        key="task",
        text="What will you do on each page?",
        kind=Question.Kind.CHOICE,
        scope=Question.Scope.COMPREHENSION,
        choices=["Write a news article", "Read a news article and answer questions"],
        expected_answer="Read a news article and answer questions",
    )
    study.conditions.filter(name="generated").update(disclaimer=DISCLAIMER)
    study.conditions.filter(name="real").update(branding="The Daily Record")
    Study.objects.filter(pk=study.pk).update(
        completion_code="DONE42",
        failed_check_code="CHECKFAIL7",
        completion_url="https://panel.example/complete?cc={code}",
    )
    study.refresh_from_db()
    return study_set_status(study=study, status=Study.Status.LIVE)


DISCLAIMER = "This article was written by an AI system."


@pytest.mark.parametrize(
    ("fail_checks", "code"), [(True, "CHECKFAIL7"), (False, "DONE42")], ids=["fails", "passes"]
)
def test_the_attention_check_among_the_articles_decides_the_code(
    live_server, browser, fail_checks, code
):
    study = checked_study()
    context = browser.new_context(**PHONE)
    page = context.new_page()
    steps: list[str] = []
    # Article position -> (disclaimer shown, masthead shown).
    notices: dict[int, tuple[bool, bool]] = {}

    def look(page: Page, step: str) -> None:
        steps.append(step)
        assert_readable_on_a_phone(page, step)
        if step == "article":
            position = int(page.locator("main").get_attribute("data-position") or 0)
            notices[position] = (
                page.locator("[data-disclaimer]").count() == 1,
                page.locator("[data-masthead]").count() == 1,
            )

    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=ATT-1")
    assert walk(page, study, fail_checks=fail_checks, on_page=look) == "debrief"
    # The comprehension question comes before the articles, the check between them.
    articles = [i for i, step in enumerate(steps) if step == "article"]
    assert len(articles) == 2
    assert steps.index("comprehension") < articles[0] < steps.index("check") < articles[1]
    assert page.locator("[data-completion-code]").inner_text() == code
    link = page.locator("[data-completion-url]")
    assert link.get_attribute("href") == f"https://panel.example/complete?cc={code}"
    other = "DONE42" if fail_checks else "CHECKFAIL7"
    assert other not in page.content()
    # Following the link leaves for the panel with that code (answered here, offline).
    page.route("https://panel.example/**", lambda route: route.fulfill(body="panel"))
    with page.expect_navigation():
        link.tap()
    assert page.url == f"https://panel.example/complete?cc={code}"
    context.close()

    participant = Participant.objects.get(panel_pid="ATT-1")
    assert participant.status == Participant.Status.COMPLETED
    assert participant.completion_code == code
    check = participant.responses.get(question__key="attention")
    assert (check.value == "Blue") is not fail_checks
    assert participant.responses.get(question__key="task").value.startswith("Read")
    assert participant.responses.count() == responses_expected(study, trials=2)
    # Only the manipulated element differs: the notice on the generated article, the
    # masthead on the real one.
    for trial in participant.trials.select_related("condition"):
        generated = trial.condition.name == "generated"
        assert notices[trial.position] == (generated, not generated)
