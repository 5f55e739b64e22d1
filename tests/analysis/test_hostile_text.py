"""Text that participants and researchers typed is shown as text on every page analysts
read: the results page, its plots (SVG), the self-contained HTML report and the admin
lists of participants, trials and answers. Markup in a title, a question, a condition
name, a free-text answer or a panel id must never become an element."""

from __future__ import annotations

from html.parser import HTMLParser
from xml.etree import ElementTree

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from analysis import plots
from surveys.models import Article, Condition, Question, Study
from tests.analysis.conftest import make_participant, rating
from tests.analysis.test_commands import run
from tests.factories import QuestionFactory

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMAGE = '"><img src=x onerror=alert(1)>'
# matplotlib reads $...$ as mathematics; a name like this must not break a plot.
MATH = r"$\foo{x}$"


class _Elements(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.tags


def _assert_no_markup_from_data(html: str) -> None:
    tags = _elements(html)
    scripts = [attrs for tag, attrs in tags if tag == "script" and "alert" in str(attrs)]
    handlers = [(tag, attrs) for tag, attrs in tags if any(a.startswith("on") for a in attrs)]
    images = [attrs for tag, attrs in tags if tag == "img" and attrs.get("src") == "x"]
    assert scripts == []
    assert handlers == []
    assert images == []
    assert "<script>alert(1)</script>" not in html
    assert "<img src=x onerror" not in html


@pytest.fixture
def hostile_study(rated_study: Study) -> Study:
    Study.objects.filter(pk=rated_study.pk).update(title=f"Study {SCRIPT}")
    Condition.objects.filter(study=rated_study, name="generated").update(
        name=f"gen{IMAGE}{MATH}", label=f"Generated {SCRIPT}"
    )
    Question.objects.filter(study=rated_study, key="believable").update(text=f"How {SCRIPT}?")
    Article.objects.filter(conditions__study=rated_study).update(title=f"Title {IMAGE}")
    QuestionFactory.create(
        study=rated_study, key="comment", kind=Question.Kind.FREE_TEXT, text=f"Say {SCRIPT}"
    )
    person = make_participant(
        rated_study, "real", [{**rating("yes"), "comment": f"{SCRIPT}{IMAGE}"}]
    )
    person.panel_pid = f"{IMAGE}{SCRIPT}"
    person.save(update_fields=["panel_pid"])
    rated_study.refresh_from_db()
    return rated_study


@pytest.fixture
def superuser_client(client):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user(
        "analyst", password="pw", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client


def test_results_page_shows_hostile_text_as_text(superuser_client, hostile_study):
    response = superuser_client.get(reverse("analysis:results", args=[hostile_study.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    _assert_no_markup_from_data(html)
    assert "gen&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html  # shown, escaped


@pytest.mark.parametrize("name", list(plots.PLOTS))
def test_plots_keep_hostile_names_as_svg_text(superuser_client, hostile_study, name):
    url = reverse("analysis:plot", args=[hostile_study.slug, name])
    response = superuser_client.get(url)
    assert response.status_code == 200
    svg = ElementTree.fromstring(response.content)
    elements = list(svg.iter())
    assert not [e for e in elements if e.tag.rsplit("}", 1)[-1] in {"script", "img"}]
    assert not [e for e in elements if any(key.startswith("on") for key in e.attrib)]
    if name in {"credible", "index"}:
        # The condition's name is drawn literally, mathematics and markup included.
        texts = "".join(e.text or "" for e in elements)
        assert f"gen{IMAGE}{MATH}" in texts


def test_html_report_shows_hostile_text_as_text(hostile_study, tmp_path):
    target = tmp_path / "report.html"
    run("analyze", hostile_study.slug, "--html", str(target))
    html = target.read_text(encoding="utf-8")
    _assert_no_markup_from_data(html)
    assert "Study &lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("model", ["participant", "trial", "response", "condition", "article"])
def test_admin_lists_show_hostile_text_as_text(superuser_client, hostile_study, model):
    response = superuser_client.get(reverse(f"admin:surveys_{model}_changelist"))
    assert response.status_code == 200
    _assert_no_markup_from_data(response.content.decode())
