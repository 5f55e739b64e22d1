"""The Content-Security-Policy in real Chromium: a participant's whole study, the study's
admin page and the API docs run without a single policy violation, and still work."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from surveys.models import Participant, Question, Study
from tests.e2e.flow import walk
from tests.factories import QuestionFactory
from tests.surveys.builders import with_demographics_and_detection, within_study

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def watch_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Chromium reports each blocked script, style or connection on the console."""
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return violations


def test_a_whole_study_runs_under_the_policy_without_violations(live_server, browser):
    study = within_study(stories=3, real_each=1, generated_each=1, launch=False)
    QuestionFactory.create(
        study=study,
        key="confidence",
        text="How sure are you?",
        kind=Question.Kind.SLIDER,
        scale_min=0,
        scale_max=100,
        min_label="Not sure",
        max_label="Sure",
    )
    study = with_demographics_and_detection(study)
    context = browser.new_context()
    page = context.new_page()
    violations = watch_violations(page)
    response = page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=csp-browser")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    steps: list[str] = []
    last = walk(page, study, on_page=lambda _page, step: steps.append(step))
    context.close()
    assert last == "debrief", steps
    assert violations == []
    participant = Participant.objects.get(panel_pid="csp-browser")
    assert participant.status == Participant.Status.COMPLETED
    # The page scripts ran under the policy: the slider was moved (slider.js) and the
    # reading time was measured (timing.js).
    assert participant.responses.filter(question__key="confidence").exists()
    assert participant.trials.filter(visible_ms__gt=0).exists()


@pytest.mark.parametrize(("path", "rendered"), [("/api/docs/", ".swagger-ui .info .title"),
                                                ("/api/redoc/", "h1")])  # fmt: skip
def test_the_api_docs_render_under_their_policy(live_server, browser, path, rendered):
    user = get_user_model().objects.create_superuser("docs-reader", "d@example.org", "pw-d-1")
    client = Client()
    client.force_login(user)
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value,
          "url": live_server.url}]
    )  # fmt: skip
    page = context.new_page()
    violations = watch_violations(page)
    page.goto(f"{live_server.url}{path}")
    title = page.locator(rendered).first
    title.wait_for(timeout=30_000)
    assert "Credence analysis API" in title.inner_text()
    context.close()
    # Redoc's "API docs by Redocly" logo comes from Redocly's CDN: blocked, as every
    # third-party request from a staff browser should be. Nothing else may be.
    assert [v for v in violations if "https://cdn.redoc.ly/" not in v] == []


def test_the_study_admin_asks_before_closing_under_the_policy(live_server, browser, live_study):
    """The confirmation that used to be an onsubmit attribute (blocked by the policy) is a
    script file now: dismissing it keeps the study live, accepting it closes it."""
    user = get_user_model().objects.create_superuser("csp-closer", "c@example.org", "pw-c-1")
    client = Client()
    client.force_login(user)
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value,
          "url": live_server.url}]
    )  # fmt: skip
    page = context.new_page()
    violations = watch_violations(page)
    questions: list[str] = []
    answer = {"accept": False}

    def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
        questions.append(dialog.message)
        dialog.accept() if answer["accept"] else dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(f"{live_server.url}/admin/surveys/study/{live_study.pk}/change/")
    close = page.locator("button[name=status][value=closed]")
    close.click()
    page.wait_for_load_state()
    live_study.refresh_from_db()
    assert live_study.status == Study.Status.LIVE
    answer["accept"] = True
    with page.expect_navigation():
        close.click()
    live_study.refresh_from_db()
    context.close()
    assert questions == ["Close this study? It stops taking participants for good."] * 2
    assert live_study.status == Study.Status.CLOSED
    assert violations == []
