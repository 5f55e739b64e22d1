"""WCAG 2.2 AA in real Chromium: axe-core run on every participant page, on a desktop and
a phone screen, and every control of every page reachable with Tab and visibly focused.

axe-core (Deque's rule engine, bundled by axe-playwright-python) checks what a machine can
decide: contrast, names of inputs and groups, landmarks, headings, language, ARIA, the
viewport not blocking zoom, target sizes. It is run with the WCAG A and AA tags only, so
a failure here is a failure of the standard, not of a best-practice preference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page

from surveys.instruments import instrument_apply
from surveys.models import Participant, Question, Study
from surveys.services import panel_pid_hash, study_set_status
from tests.e2e.flow import PHONE, step_of, submit_page, walk
from tests.factories import QuestionFactory
from tests.surveys.builders import within_study

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
AXE_OPTIONS: dict[str, Any] = {
    "runOnly": {"type": "tag", "values": WCAG_TAGS},
    "resultTypes": ["violations"],
}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}
DISCLAIMER = "This article was written by an AI system."
MASTHEAD = "The Daily Record"

_axe = Axe()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The WCAG A/AA violations axe-core finds on the page as it is now."""
    return list(_axe.run(page, options=AXE_OPTIONS).response["violations"])


def describe(violations: list[dict[str, Any]]) -> str:
    """One paragraph per rule: what is wrong, where, and axe's own explanation."""
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} [{v['helpUrl']}]")
        for node in v["nodes"][:5]:
            lines.append(f"    at {' '.join(node['target'])}: {node['html'][:160]}")
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"      {summary[:300]}")
        if len(v["nodes"]) > 5:
            lines.append(f"    ... and {len(v['nodes']) - 5} more")
    return "\n".join(lines)


class Audit:
    """Runs axe on each page shown to it and keeps the failures, labelled by page."""

    def __init__(self, viewport: str) -> None:
        self.viewport = viewport
        self.seen: list[str] = []
        self.failures: dict[str, list[dict[str, Any]]] = {}
        # Per article page audited: how many of masthead and AI notice it showed.
        self.notices: list[int] = []

    def __call__(self, page: Page, label: str | None = None) -> None:
        name = label or step_of(page) or page.url
        self.seen.append(name)
        if name.startswith("article"):
            self.notices.append(page.locator("[data-masthead], [data-disclaimer]").count())
        violations = axe_violations(page)
        if violations:
            self.failures[f"{name} ({page.url})"] = violations

    def on_page(self, page: Page, step: str) -> None:
        self(page, step)

    def assert_clean(self) -> None:
        report = "\n".join(
            f"{self.viewport} / {name}:\n{describe(v)}" for name, v in self.failures.items()
        )
        assert not self.failures, f"WCAG 2.2 AA violations found by axe-core:\n{report}"


def audited_study() -> Study:
    """Between subjects, two articles each: a comprehension question (two tries), the
    attention check after the first article, a masthead and an AI disclaimer in the
    generated condition; per article the Kreps set (yes/no, 1-4 scales), a slider and an
    optional free-text box; the demographics page (choice, ticks, 7-point scale, slider)."""
    study = within_study(stories=4, real_each=1, generated_each=1, launch=False)
    Study.objects.filter(pk=study.pk).update(
        design=Study.Design.BETWEEN,
        articles_per_participant=2,
        comprehension_attempts=2,
        screened_out_code="SCREENED9",
    )
    Question.objects.filter(study=study, key="attention").update(after_article=1)
    study.conditions.filter(name="generated").update(branding=MASTHEAD, disclaimer=DISCLAIMER)
    QuestionFactory.create(
        study=study,
        key="task",
        text="What will you do on each page?",
        kind=Question.Kind.CHOICE,
        scope=Question.Scope.COMPREHENSION,
        choices=["Write a news article", "Read a news article and answer questions"],
        expected_answer="Read a news article and answer questions",
    )
    QuestionFactory.create(
        study=study,
        key="confidence",
        text="How sure are you of your answers about this article?",
        kind=Question.Kind.SLIDER,
        scale_min=0,
        scale_max=100,
        min_label="Not sure",
        max_label="Completely sure",
    )
    QuestionFactory.create(
        study=study,
        key="comments",
        text="Anything else about this article?",
        kind=Question.Kind.FREE_TEXT,
        required=False,
    )
    instrument_apply(study=study, name="demographics")
    study.refresh_from_db()
    return study_set_status(study=study, status=Study.Status.LIVE)


@pytest.fixture
def context_for(browser: Browser) -> Iterator[Callable[[str], Page]]:
    contexts = []

    def make(viewport: str) -> Page:
        context = browser.new_context(**VIEWPORTS[viewport])
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_every_participant_page_passes_axe_wcag_2_2_aa(live_server, context_for, viewport):
    study = audited_study()
    audit = Audit(viewport)
    start = f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID="

    # A completer: every page, with the comprehension page's retry state (a wrong answer
    # first) and an article page that shows its errors (submitted empty).
    page = context_for(viewport)
    page.goto(start + f"{viewport}-done")
    walk(page, study, on_page=audit.on_page, until=frozenset({"comprehension"}))
    submit_page(page, study, picks={"task": "Write a news article"})
    assert page.locator("#retry-notice").count() == 1
    audit(page, "comprehension (retry)")
    walk(page, study, on_page=audit.on_page, until=frozenset({"article"}))
    with page.expect_navigation():
        page.locator("main form button[type=submit]").first.click()
    assert page.locator("#error-summary").count() == 1
    audit(page, "article (errors)")
    submit_page(page, study)
    assert walk(page, study, on_page=audit.on_page) == "debrief"

    # A second participant gets the other condition (least filled first): its first
    # article, then the withdrawal confirmation and the withdrawn debrief.
    other = context_for(viewport)
    other.goto(start + f"{viewport}-quits")
    walk(other, study, until=frozenset({"article"}))
    audit(other, "article (other condition)")
    # One condition plain, the other with masthead and AI notice: both were audited.
    assert set(audit.notices) == {0, 2}
    with other.expect_navigation():
        other.locator("a[href$='/withdraw/']").first.click()
    audit(other)
    with other.expect_navigation():
        other.locator("main form button[type=submit]").click()
    audit(other)

    # Wrong twice at the comprehension question: screened out.
    third = context_for(viewport)
    third.goto(start + f"{viewport}-screened")
    walk(third, study, until=frozenset({"comprehension"}))
    for _ in range(2):
        submit_page(third, study, picks={"task": "Write a news article"})
    audit(third)

    # Pages outside a participation: unknown study, closed study, the about page.
    third.goto(f"{live_server.url}/s/no-such-study/")
    assert step_of(third) == "not-found"
    audit(third, "study not found")
    study_set_status(study=study, status=Study.Status.CLOSED)
    third.goto(start + f"{viewport}-late")
    assert step_of(third) == "closed"
    audit(third, "study closed")
    third.goto(f"{live_server.url}/about/")
    audit(third, "about the research")

    audit.assert_clean()
    expected = {
        "consent",
        "instructions",
        "comprehension",
        "comprehension (retry)",
        "article",
        "article (errors)",
        "article (other condition)",
        "check",
        "about",
        "finish",
        "debrief",
        "withdraw",
        "withdrawn",
        "study not found",
        "study closed",
        "about the research",
    }
    assert expected <= set(audit.seen), set(audit.seen)
    assert {"screened_out", "screened-out"} & set(audit.seen), audit.seen
    # Both conditions' article pages were checked: one had the masthead and disclaimer.
    # By the panel ids' hashes: withdrawal deletes the "quits" participant's panel id.
    pair = [panel_pid_hash(pid=f"{viewport}-{who}") for who in ("done", "quits")]
    conditions = set(
        Participant.objects.filter(study=study, panel_pid_hash__in=pair).values_list(
            "condition__name", flat=True
        )
    )
    assert conditions == {"real", "generated"}


# ---------------------------------------------------------------------------------------
# The keyboard

# Everything a person can operate, in document order, that is shown and enabled; radio
# groups count once (Tab enters a group once, the arrows move inside it).
OPERABLE_JS = """() => {
  const shown = e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden";
  const all = [...document.querySelectorAll(
    "a[href], button, input, select, textarea, [tabindex]:not([tabindex='-1'])")]
    .filter(e => !e.disabled && e.type !== "hidden" && shown(e)
      && !e.closest("[aria-hidden=true], [inert]"));
  const groups = new Set();
  return all.filter(e => {
    if (e.type !== "radio") return true;
    if (groups.has(e.name)) return false;
    groups.add(e.name);
    return true;
  }).map(e => e.type === "radio" ? "radio:" + e.name
    : e.tagName + ":" + (e.name || e.textContent.trim().slice(0, 40)));
}"""

# The focused element, and whether its focus shows: an outline, or a box-shadow ring.
FOCUSED_JS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const s = getComputedStyle(e);
  const outline = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0;
  const ring = s.boxShadow && s.boxShadow !== "none";
  const key = e.type === "radio" ? "radio:" + e.name
    : e.tagName + ":" + (e.name || e.textContent.trim().slice(0, 40));
  return {key, visible: outline || !!ring, outline: s.outlineStyle + " " + s.outlineWidth};
}"""


def tab_through(page: Page, step: str) -> None:
    """Press Tab until focus comes round again; every operable element must have had the
    focus, each with a visible indicator (WCAG 2.1.1 and 2.4.7)."""
    operable = page.evaluate(OPERABLE_JS)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    reached: list[str] = []
    unseen: list[str] = []
    for _ in range(len(operable) + 5):
        page.keyboard.press("Tab")
        now = page.evaluate(FOCUSED_JS)
        if now is None:
            continue  # the browser's own UI between the last control and the first
        if reached and now["key"] == reached[0]:
            break
        reached.append(now["key"])
        if not now["visible"]:
            unseen.append(f"{now['key']} ({now['outline']})")
    missing = [k for k in operable if k not in reached]
    assert missing == [], f"{step}: never reached with Tab: {missing}"
    assert unseen == [], f"{step}: focus not visible on {unseen}"


def test_every_page_works_with_tab_and_shows_the_focus(live_server, browser):
    """Every page of a completer, the comprehension retry included: the Tab key reaches
    every control, and the focused control shows it. (Answering an article with the keyboard
    alone is in test_phone_and_keyboard_browser.)"""
    study = audited_study()
    page = browser.new_context(**DESKTOP).new_page()
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=TAB-1")
    steps: list[str] = []

    def keys(page: Page, step: str) -> None:
        steps.append(step)
        tab_through(page, step)

    assert walk(page, study, on_page=keys) == "debrief"
    page.context.close()
    assert {"consent", "comprehension", "article", "check", "about", "finish"} <= set(steps)
    assert steps[-1] == "debrief"


def test_the_audit_fails_on_a_page_that_breaks_the_rules(live_server, context_for):
    """The checker is live: faint text and an unlabelled box planted on a real page are
    reported, with where they are."""
    page = context_for("desktop")
    page.goto(f"{live_server.url}/s/no-such-study/")
    audit = Audit("desktop")
    audit(page)
    assert audit.failures == {}
    page.evaluate(
        """() => { const m = document.querySelector("main");
        m.insertAdjacentHTML("beforeend", '<p id="faint">Faint</p><input id="bare" type="text">');
        // Styled through the CSSOM: the page's Content-Security-Policy drops style attributes.
        document.getElementById("faint").style.color = "#aaa"; }"""
    )
    audit(page, "planted")
    rules = {v["id"] for v in next(iter(audit.failures.values()))}
    assert {"color-contrast", "label"} <= rules
    with pytest.raises(AssertionError, match=r"(?s)color-contrast .*at #faint"):
        audit.assert_clean()


# ---------------------------------------------------------------------------------------
# Reflow and text spacing (WCAG 1.4.10, 1.4.12)

# 1280 px at 400 % zoom; the text spacing a reader may force on any page.
REFLOW: dict[str, Any] = {"viewport": {"width": 320, "height": 256}}
TEXT_SPACING_CSS = """* { line-height: 1.5 !important; letter-spacing: 0.12em !important;
  word-spacing: 0.16em !important; } p { margin-bottom: 2em !important; }"""

# Content wider than the screen, and boxes that cut their text off.
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const name = e => e.tagName + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "");
  const wide = [...document.querySelectorAll("body *")].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.left < -0.5 || r.right > width + 0.5)
      && !e.closest(".visually-hidden, .skip-link");
  }).map(name);
  const clipped = [...document.querySelectorAll("body *")].filter(e => {
    const s = getComputedStyle(e);
    const cuts = v => v === "hidden" || v === "clip";
    const hides = cuts(s.overflowX) || cuts(s.overflowY);
    return hides && !e.closest(".visually-hidden")
      && (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1);
  }).map(name);
  // Text running out of its box (a long word or URL) widens the page without moving boxes.
  const spilling = [...document.querySelectorAll("main *, footer *")]
    .filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
    .filter(e => !e.closest(".visually-hidden")).map(name);
  return {scrollWidth: document.documentElement.scrollWidth, width, wide, clipped, spilling};
}"""


def test_pages_reflow_at_320_px_with_wider_text_spacing(live_server, context_for):
    """At 320 CSS px, with the WCAG 1.4.12 spacing forced on, no page scrolls sideways
    and no box cuts its text off."""
    study = audited_study()
    page = context_for("desktop")
    page.set_viewport_size(REFLOW["viewport"])
    problems: dict[str, dict[str, Any]] = {}
    steps: list[str] = []

    def measure(page: Page, step: str) -> None:
        steps.append(step)
        # A constructed stylesheet, as a user's spacing extension would add: the page's
        # Content-Security-Policy refuses an injected <style> element.
        page.evaluate(
            """css => { const sheet = new CSSStyleSheet(); sheet.replaceSync(css);
            document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet]; }""",
            TEXT_SPACING_CSS,
        )
        found = page.evaluate(OVERFLOW_JS)
        widened = found["scrollWidth"] > found["width"]
        if widened or found["wide"] or found["clipped"] or found["spilling"]:
            problems[f"{step} ({page.url})"] = found

    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=REFLOW-1")
    walk(page, study, until=frozenset({"article"}), on_page=measure)
    with page.expect_navigation():
        page.locator("main form button[type=submit]").first.click()
    measure(page, "article (errors)")
    submit_page(page, study)
    assert walk(page, study, on_page=measure) == "debrief"
    # Withdrawing after completion: the confirmation, then the list of articles read,
    # with their source URLs.
    with page.expect_navigation():
        page.locator("a[href$='/withdraw/']").first.click()
    measure(page, step_of(page))
    with page.expect_navigation():
        page.locator("main form button[type=submit]").click()
    measure(page, step_of(page))
    assert problems == {}
    expected = {"consent", "comprehension", "article", "check", "about", "finish", "debrief"}
    assert expected | {"withdraw", "withdrawn"} <= set(steps)


def test_the_tab_check_fails_on_hidden_focus_and_unreachable_controls(live_server, context_for):
    """The keyboard check is live: a button without a focus ring, a link Tab skips."""
    page = context_for("desktop")
    page.goto(f"{live_server.url}/s/no-such-study/")
    tab_through(page, "not found")
    page.evaluate(
        """() => { document.querySelector("main").insertAdjacentHTML("beforeend",
          '<button id="no-ring">Go</button>');
          document.getElementById("no-ring").style.outline = "none"; }"""
    )
    with pytest.raises(AssertionError, match=r"focus not visible on .*BUTTON:Go"):
        tab_through(page, "planted")
    page.evaluate(
        """() => document.querySelector("main").insertAdjacentHTML("beforeend",
          '<a href="/elsewhere/" tabindex="-1">Out of reach</a>')"""
    )
    with pytest.raises(AssertionError, match=r"never reached with Tab: .*Out of reach"):
        tab_through(page, "planted")
