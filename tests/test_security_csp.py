"""Content-Security-Policy: participant pages run only this site's own scripts and styles.

The policy header alone is not enough: a page that still had inline script or style would
be broken under it. So every participant page is fetched, walking a participant through a
whole study with the test client, and its HTML is checked for inline <script>, <style>,
style="" and on*="" attributes, which the policy would block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.test import Client

from surveys.models import Participant, Question, Study
from surveys.services import study_set_status
from tests.factories import QuestionFactory, StudyFactory
from tests.surveys.builders import with_demographics_and_detection, within_study


@dataclass
class _Field:
    name: str
    kind: str
    value: str


@dataclass
class _Form:
    method: str
    action: str
    fields: list[_Field] = field(default_factory=list)


class PageAudit(HTMLParser):
    """What of a page the policy would block, and its forms (for walking)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inline: list[str] = []
        self.forms: list[_Form] = []
        self.assets: list[str] = []
        self._script_without_src = False
        self._select: str | None = None

    # Complexity kept: an HTMLParser callback: one branch per kind of inline script or style it must
    # catch.
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: C901
        values = {k: v or "" for k, v in attrs}
        for name, value in values.items():
            if name.startswith("on"):
                self.inline.append(f"<{tag} {name}={value!r}>")
            if name == "style":
                self.inline.append(f"<{tag} style={value!r}>")
            if name in ("href", "src", "action") and value.strip().lower().startswith(
                "javascript:"
            ):
                self.inline.append(f"<{tag} {name}={value!r}>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            if "src" in values:
                self.assets.append(values["src"])
            else:
                self._script_without_src = True
        if tag == "link" and values.get("rel") == "stylesheet":
            self.assets.append(values["href"])
        if tag == "form":
            self.forms.append(_Form(values.get("method", "get").lower(), values.get("action", "")))
        if tag in ("input", "textarea") and self.forms and values.get("name"):
            kind = values.get("type", "text") if tag == "input" else "textarea"
            self.forms[-1].fields.append(_Field(values["name"], kind, values.get("value", "")))
            if kind in ("number", "range") and not values.get("value"):
                self.forms[-1].fields[-1].value = values.get("min", "1")
        if tag == "select" and self.forms:
            self._select = values.get("name")
        if tag == "option" and self._select and values.get("value"):
            self.forms[-1].fields.append(_Field(self._select, "option", values["value"]))
            self._select = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        if tag == "script":
            self._script_without_src = False

    def handle_data(self, data: str) -> None:
        if self._script_without_src and data.strip():
            self.inline.append(f"<script>{data.strip()[:60]}")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "script":
            self._script_without_src = False


def audit(response: HttpResponse) -> PageAudit:
    parser = PageAudit()
    parser.feed(response.content.decode())
    parser.close()
    return parser


def _fill(form: _Form) -> dict[str, str | list[str]]:
    """Answers a form as a participant might: agrees, picks "Blue" where offered (the
    attention check), otherwise the first option, a number at the minimum, some text."""
    data: dict[str, str | list[str]] = {}
    options: dict[str, list[str]] = {}
    for f in form.fields:
        if f.kind in ("radio", "checkbox", "option"):
            options.setdefault(f.name, []).append(f.value)
        elif f.kind in ("submit", "button"):
            continue
        elif f.kind == "hidden" or f.value:
            data.setdefault(f.name, f.value)
        else:
            data[f.name] = "Seemed fine to me."
    for name, values in options.items():
        data[name] = "Blue" if "Blue" in values else values[0]
    return data


def _directives(response: HttpResponse) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def assert_strict_policy(url: str, response: HttpResponse) -> None:
    policy = response.headers.get("Content-Security-Policy", "")
    assert policy, f"{url}: no Content-Security-Policy header"
    directives = _directives(response)
    assert directives["script-src"] == ["'self'"], (url, policy)
    assert directives["style-src"] == ["'self'"], (url, policy)
    assert directives["object-src"] == ["'none'"], (url, policy)
    assert directives["frame-ancestors"] == ["'none'"], (url, policy)
    assert "unsafe" not in policy, (url, policy)
    assert response.headers["X-Frame-Options"] == "DENY", url
    assert response.headers["Referrer-Policy"] == "same-origin", url
    page = audit(response)
    assert page.inline == [], f"{url}: inline code or style the policy would block"
    for asset in page.assets:
        # Assets of our own origin, which 'self' allows, and that exist.
        assert asset.startswith("/static/"), (url, asset)
        assert finders.find(asset.removeprefix("/static/")), (url, asset)


def walk(client: Client, url: str, pages: dict[str, HttpResponse], *, limit: int = 40) -> str:
    """Follows a participant from ``url`` to the end, answering every form; records every
    page shown. Returns the last URL."""
    response = client.get(url)
    for _ in range(limit):
        pages[url] = response
        posts = [f for f in audit(response).forms if f.method == "post"]
        if not posts:
            return url
        form = posts[0]
        if "withdraw" in form.action:
            posts = [f for f in posts if "withdraw" not in f.action]
            if not posts:
                return url
            form = posts[0]
        target = form.action or url.split("?")[0]
        response = client.post(target, _fill(form))
        while response.status_code in (301, 302, 303):
            url = response["Location"]
            response = client.get(url)
        if response.status_code == 200 and url == target:
            # Shown again (a validation error): record it under its own name and stop
            # rather than loop; the walk below asserts that it reached the debrief.
            pages[url + "#again"] = response
            return url
    return url


@pytest.fixture
def rich_study(db):  # type: ignore[no-untyped-def]
    """Within subjects with the demographics and detection sets, a slider and free text:
    every kind of participant page and widget."""
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
    QuestionFactory.create(
        study=study,
        key="comments",
        text="Anything else?",
        kind=Question.Kind.FREE_TEXT,
        required=False,
    )
    return with_demographics_and_detection(study)


@pytest.mark.django_db
def test_every_participant_page_carries_the_strict_policy_and_no_inline_code(rich_study):
    client = Client()
    pages: dict[str, HttpResponse] = {}
    last = walk(client, f"/s/{rich_study.slug}/?PROLIFIC_PID=csp-walker", pages)
    assert last.endswith("/debrief/"), list(pages)
    participant = Participant.objects.get(panel_pid="csp-walker")
    assert participant.status == Participant.Status.COMPLETED
    # The other pages a participant can meet.
    other = Client()
    token = walk(other, f"/s/{rich_study.slug}/?PROLIFIC_PID=csp-leaver", {}, limit=1)
    leaver = Participant.objects.get(panel_pid="csp-leaver")
    pages[f"/p/{leaver.token}/withdraw/"] = other.get(f"/p/{leaver.token}/withdraw/")
    response = other.post(f"/p/{leaver.token}/withdraw/", {"confirm": "yes"}, follow=True)
    pages["withdrawn"] = response
    pages["/about/"] = client.get("/about/")
    pages["/s/no-such-study/"] = client.get("/s/no-such-study/")
    pages["/p/<unknown>/"] = client.get("/p/00000000-0000-4000-8000-000000000000/")
    closed = StudyFactory.create_live()
    study_set_status(study=closed, status=Study.Status.CLOSED)
    pages["/s/<closed>/"] = client.get(f"/s/{closed.slug}/")
    assert token
    # The researcher's preview: the same pages, with the preview banner.
    researcher = get_user_model().objects.create_superuser("csp-previewer", "p@x.org", "pw-p-1")
    previewer = Client()
    previewer.force_login(researcher)
    preview = previewer.get(f"/s/{rich_study.slug}/preview/", follow=True)
    assert preview.status_code == 200
    pages["preview"] = preview
    steps = {u.split("/")[3] if u.startswith("/p/") else u for u in pages}
    for expected in ("instructions", "article", "check", "about-you", "finish", "debrief"):
        assert expected in steps, sorted(steps)
    for url, response in pages.items():
        assert_strict_policy(url, response)


@pytest.mark.django_db
def test_the_audit_finds_inline_code():
    """The page check can fail: each kind of inline code is reported."""
    response = HttpResponse(
        '<style>p{}</style><p style="color:red" onclick="x()">a</p>'
        '<script>alert(1)</script><a href="javascript:alert(1)">b</a><script src="/x.js"></script>'
    )
    found = audit(response).inline
    assert len(found) == 5, found


@pytest.fixture
def staff_client(db):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_superuser("csp-admin", "a@example.org", "pw-csp-1")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_admin_allows_styles_and_nonced_scripts_only(staff_client, live_study):
    response = staff_client.get(f"/admin/surveys/study/{live_study.pk}/change/")
    assert response.status_code == 200
    directives = _directives(response)
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'self'" in directives["script-src"]
    assert "'unsafe-inline'" in directives["style-src"]
    page = audit(response)
    # The study's admin page: confirmation by a script file, not an onsubmit attribute.
    assert not [i for i in page.inline if " on" in i or "<script>" in i], page.inline
    assert 'data-confirm="' in response.content.decode()
    assert "/static/credence/confirm.js" in page.assets
    assert finders.find("credence/confirm.js")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["docs", "redoc"])
def test_the_api_docs_load_their_local_assets_under_their_own_policy(staff_client, name):
    response = staff_client.get(f"/api/{name}/")
    assert response.status_code == 200
    directives = _directives(response)
    # Swagger UI and Redoc start with an inline script: it carries the request's nonce.
    assert "'unsafe-inline'" not in directives["script-src"]
    nonces = [s for s in directives["script-src"] if s.startswith("'nonce-")]
    assert len(nonces) == 1
    html = response.content.decode()
    if "<script>" in html or "<script nonce" in html:
        assert f'<script nonce="{nonces[0][7:-1]}">' in html
        assert "<script>" not in html
    assert "'unsafe-inline'" in directives["style-src"]  # injected by the libraries
    assert directives["default-src"] == ["'self'"]
    page = audit(response)
    assert page.assets, "the docs page loads no script"
    for asset in page.assets:
        assert asset.startswith("/static/drf_spectacular_sidecar/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset
    # The same staff session on a participant page gets the strict policy.
    assert "'unsafe-inline'" not in _directives(staff_client.get("/about/"))["script-src"]


@pytest.mark.django_db
def test_the_results_page_runs_under_the_strict_policy(staff_client, live_study):
    """Staff's results page is no admin page: the strict policy, so its styles are a file."""
    response = staff_client.get(f"/analysis/{live_study.slug}/")
    assert response.status_code == 200
    assert_strict_policy(f"/analysis/{live_study.slug}/", response)
    assert "/static/credence/results.css" in audit(response).assets
