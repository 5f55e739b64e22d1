"""A participant who answers whatever page they are on, for the browser tests.

The participant pages mark their step on ``<main data-step="...">`` and draw every
question as an element with id ``q-<key>`` inside the page's form. The helpers here read
those, not the order of the pages, so the tests keep working when the flow gains pages
(comprehension checks after the instructions, attention checks among the articles).
Check questions are answered from the study's stored expected answers: right by default,
wrong on request. The phone checks (no sideways scrolling, labelled inputs, options that
wrap and are big enough to tap) are here too, for every test that walks on a phone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page

from surveys.models import Question, Study

# Pages that end a walk: the debrief, the withdrawn/screened-out debriefs, the closed and
# full pages. Any page without a form in <main> ends it too.
END_STEPS = frozenset({"debrief", "withdrawn", "screened_out", "screened-out", "full", "closed"})

# Scopes of the questions that have a right answer.
CHECK_SCOPES = frozenset({Question.Scope.ATTENTION_CHECK, Question.Scope.COMPREHENSION})

# Every question block on the page: its key, how it is answered, and its options.
QUESTIONS_JS = """() => [...document.querySelectorAll("main form [id^='q-']")].map(q => {
  const radios = [...q.querySelectorAll("input[type=radio]")].map(i => i.value);
  const boxes = [...q.querySelectorAll("input[type=checkbox]")].map(i => i.value);
  const number = q.querySelector("input[type=number]");
  const text = q.querySelector("textarea");
  return {
    key: q.id.slice(2),
    radios, boxes,
    number: number ? [Number(number.min), Number(number.max)] : null,
    text: text !== null,
  };
})"""


def step_of(page: Page) -> str:
    """The step the page shows (``data-step`` on <main>), e.g. "article", "check"."""
    return page.locator("main").get_attribute("data-step") or ""


def _expected_answers(study: Study, *, fail_checks: bool) -> dict[str, tuple[str, bool]]:
    """Key -> (expected answer, whether to give a wrong one) for the study's checks."""
    rows = Question.objects.filter(study=study).exclude(expected_answer="")
    return {
        q.key: (q.expected_answer, fail_checks and q.scope == Question.Scope.ATTENTION_CHECK)
        for q in rows
    }


def answer_questions(
    page: Page,
    study: Study,
    *,
    fail_checks: bool = False,
    picks: dict[str, str] | None = None,
) -> dict[str, str]:
    """Answer every question on the page through the browser and return what was chosen.

    ``picks`` forces the value of some keys; check questions get their expected answer
    (a wrong one for attention checks when ``fail_checks``); other radios get the middle
    option, boxes the first option, numbers the middle of their range.
    """
    expected = _expected_answers(study, fail_checks=fail_checks)
    chosen: dict[str, str] = {}
    for q in page.evaluate(QUESTIONS_JS):
        key = q["key"]
        block = page.locator(f"#q-{key}")
        if q["radios"]:
            options: list[str] = q["radios"]
            if picks and key in picks:
                value = picks[key]
            elif key in expected:
                right, wrong = expected[key]
                matches = [o for o in options if o.strip().lower() == right.strip().lower()]
                assert matches, f"{key}: expected answer {right!r} not among {options}"
                value = next(o for o in options if o not in matches) if wrong else matches[0]
            else:
                value = options[len(options) // 2]
            block.locator(f'input[type=radio][value="{value}"]').check()
        elif q["boxes"]:
            value = picks[key] if picks and key in picks else q["boxes"][0]
            block.locator(f'input[type=checkbox][value="{value}"]').check()
        elif q["number"]:
            low, high = q["number"]
            value = picks[key] if picks and key in picks else str((int(low) + int(high)) // 2)
            block.locator("input[type=number]").fill(value)
        elif q["text"]:
            value = picks[key] if picks and key in picks else "Nothing to add."
            block.locator("textarea").fill(value)
        else:
            raise AssertionError(f"question {key} has no input the helper knows")
        chosen[key] = value
    return chosen


def submit_page(
    page: Page,
    study: Study,
    *,
    fail_checks: bool = False,
    picks: dict[str, str] | None = None,
) -> dict[str, str]:
    """Fill in the page's form (consent box, questions) and submit it; waits for the
    page the server answers with. Returns the answers given."""
    form = page.locator("main form").first
    consent = form.locator("#id_consent")
    if consent.count():
        consent.check()
    chosen = answer_questions(page, study, fail_checks=fail_checks, picks=picks)
    with page.expect_navigation():
        form.locator("button[type=submit]").first.click()
    return chosen


def walk(
    page: Page,
    study: Study,
    *,
    fail_checks: bool = False,
    until: frozenset[str] = END_STEPS,
    on_page: Callable[[Page, str], None] | None = None,
    max_pages: int = 40,
) -> str:
    """Answer page after page until a step in ``until`` (or a page without a form) is
    reached; returns that step. ``on_page`` is called on every page, the last included."""
    for _ in range(max_pages):
        step = step_of(page)
        if on_page is not None:
            on_page(page, step)
        if step in until or page.locator("main form button[type=submit]").count() == 0:
            return step
        before = page.url
        submit_page(page, study, fail_checks=fail_checks)
        errors = page.locator("#error-summary")
        assert not (page.url == before and errors.count()), (
            f"the {step} page refused the answers: {errors.inner_text()}"
        )
    raise AssertionError(f"no end after {max_pages} pages, stuck on {page.url}")


def responses_expected(study: Study, *, trials: int) -> int:
    """Answers a completer leaves when every question is answered: each per-article
    question once per trial, every other question once."""
    per_article = study.questions.filter(scope=Question.Scope.PER_ARTICLE).count()
    once = study.questions.exclude(scope=Question.Scope.PER_ARTICLE).count()
    return trials * per_article + once


# ---------------------------------------------------------------------------------------
# Phones

PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}

# Inputs a person can reach without an accessible name: neither a <label> with text nor
# aria-label(ledby). Inputs hidden from everyone (type=hidden, [hidden], aria-hidden, such
# as the range control that mirrors the labelled number box) are left out.
UNLABELLED_JS = """() => [...document.querySelectorAll("input, select, textarea")]
  .filter(e => e.type !== "hidden" && !e.hidden && !e.closest("[aria-hidden=true]"))
  .filter(e => {
    const label = [...(e.labels || [])].some(l => l.textContent.trim() !== "");
    const aria = (e.getAttribute("aria-label") || "").trim() !== ""
      || (e.getAttribute("aria-labelledby") || "").trim() !== "";
    return !(label || aria);
  }).map(e => e.outerHTML)"""

# Radio buttons and boxes of a question must also be grouped under its text.
UNGROUPED_JS = """() => [...document.querySelectorAll("main form [id^='q-'] input")]
  .filter(e => e.type === "radio" || e.type === "checkbox")
  .filter(e => {
    const legend = e.closest("fieldset")?.querySelector("legend");
    return !legend || legend.textContent.trim() === "";
  }).map(e => e.name)"""

# Geometry of the page: anything in <main> sticking out sideways, questions side by side
# instead of one under the other, answer options smaller than the 24 px target of WCAG 2.2.
# Widths are the layout viewport's (clientWidth): on a phone, window.innerWidth grows to the
# content when a page is too wide (the browser zooms out), so it cannot show the overflow.
LAYOUT_JS = """() => {
  const width = document.documentElement.clientWidth;
  const sticking = [...document.querySelectorAll("main *")].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.left < -0.5 || r.right > width + 0.5);
  }).map(e => e.tagName + (e.id ? "#" + e.id : "") + "." + e.className);
  const questions = [...document.querySelectorAll("main form [id^='q-']")]
    .map(q => q.getBoundingClientRect());
  const sideBySide = questions.slice(1).filter((r, i) => r.top < questions[i].bottom - 1).length;
  const small = [...document.querySelectorAll("main .options label")].filter(l => {
    const r = l.getBoundingClientRect();
    return r.width < 24 || r.height < 24;
  }).map(l => l.textContent.trim());
  const rows = [...document.querySelectorAll("main .scale .options")].map(o => {
    const tops = [...o.querySelectorAll("label")]
      .map(l => Math.round(l.getBoundingClientRect().top));
    return new Set(tops).size;
  });
  return {
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
    clientWidth: width, screenWidth: screen.width,
    sticking, sideBySide, small, scaleRows: rows,
  };
}"""


def assert_readable_on_a_phone(page: Page, step: str) -> None:
    """No sideways scrolling, one question under the other, options that wrap inside the
    screen and are big enough to tap, every input labelled."""
    layout = page.evaluate(LAYOUT_JS)
    assert layout["clientWidth"] == layout["screenWidth"], (step, layout)
    assert layout["scrollWidth"] <= layout["clientWidth"], (step, layout)
    assert layout["innerWidth"] == layout["clientWidth"], (step, layout)  # not zoomed out
    assert layout["sticking"] == [], (step, layout["sticking"])
    assert layout["sideBySide"] == 0, step
    assert layout["small"] == [], (step, layout["small"])
    assert page.evaluate(UNLABELLED_JS) == [], step
    assert page.evaluate(UNGROUPED_JS) == [], step
