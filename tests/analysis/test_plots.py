"""Plots: served as SVG (or PNG) to staff only, parseable, naming the conditions, and a
clear "No data yet" figure rather than an error when nothing has been collected."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from analysis import plots
from analysis.services import study_report
from surveys.models import Response
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def staff_client(client):
    # A superuser sees every study (team access: tests/analysis/test_access.py).
    user = get_user_model().objects.create_user(
        "analyst", password="pw", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client


def svg_text(body: bytes) -> str:
    """All text in the SVG, after checking it parses as an SVG document."""
    root = ET.fromstring(body)
    assert root.tag == f"{SVG}svg"
    return " ".join(t for element in root.iter(f"{SVG}text") for t in element.itertext())


@pytest.mark.parametrize("name", ["credible", "index", "dwell"])
def test_plot_is_svg_naming_both_conditions(staff_client, rated_study, name):
    response = staff_client.get(reverse("analysis:plot", args=[rated_study.slug, name]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    text = svg_text(response.content)
    assert "real" in text
    assert "generated" in text


def test_article_plot_ranks_generated_articles_only(staff_client, rated_study):
    response = staff_client.get(reverse("analysis:plot", args=[rated_study.slug, "articles"]))
    assert response.status_code == 200
    text = svg_text(response.content)
    assert "generated" in text
    assert "· real" not in text  # real articles are not "fooling" anyone
    # Generated participants rated one article each (the first of the pool): 2 of 5 yes.
    report = study_report(study=rated_study)
    generated = report.responses.loc[report.responses["article_origin"] != "real"]
    assert generated["article_id"].nunique() == 1
    assert "(n=5)" in text


def test_png_on_request_with_download_name(staff_client, rated_study):
    url = reverse("analysis:plot", args=[rated_study.slug, "credible"])
    response = staff_client.get(url, {"format": "png", "download": "1"})
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert f"{rated_study.slug}-credible.png" in response["Content-Disposition"]


def test_unknown_format_is_400(staff_client, rated_study):
    url = reverse("analysis:plot", args=[rated_study.slug, "credible"])
    response = staff_client.get(url, {"format": "gif"})
    assert response.status_code == 400


def test_unknown_plot_name_is_404(staff_client, rated_study):
    response = staff_client.get(reverse("analysis:plot", args=[rated_study.slug, "pie"]))
    assert response.status_code == 404


def test_unknown_study_is_404(staff_client, rated_study):
    response = staff_client.get(reverse("analysis:plot", args=["no-such-study", "credible"]))
    assert response.status_code == 404


def test_anonymous_and_non_staff_are_sent_to_login(client, rated_study):
    url = reverse("analysis:plot", args=[rated_study.slug, "credible"])
    response = client.get(url)
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
    client.force_login(get_user_model().objects.create_user("participant", password="pw"))
    response = client.get(url)
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


@pytest.mark.parametrize("name", sorted(plots.PLOTS))
def test_empty_study_gives_a_no_data_figure(staff_client, live_study, name):
    response = staff_client.get(reverse("analysis:plot", args=[live_study.slug, name]))
    assert response.status_code == 200
    assert "No data yet" in svg_text(response.content)


def test_rendering_is_deterministic(rated_study):
    report = study_report(study=rated_study)
    assert plots.plot_bytes(report, "index") == plots.plot_bytes(report, "index")


def test_results_page_embeds_plots_with_download_links(staff_client, rated_study):
    response = staff_client.get(reverse("analysis:results", args=[rated_study.slug]))
    assert response.status_code == 200
    page = response.content.decode()
    token = response.context["report_token"]
    for name in plots.PLOTS:
        url = reverse("analysis:plot", args=[rated_study.slug, name])
        assert f'src="{url}?report={token}"' in page
        assert f'href="{url}?report={token}&amp;format=png&amp;download=1"' in page


def _figure_urls(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_results_page_computes_one_report_that_its_figures_draw(
    staff_client, rated_study, monkeypatch
):
    """Before, each of the four figures computed the whole report again."""
    from analysis import report_cache, views

    computed = []

    def counting(**kwargs):
        computed.append(kwargs)
        return study_report(**kwargs)

    monkeypatch.setattr(views, "study_report", counting)
    monkeypatch.setattr(report_cache, "study_report", counting)
    page = staff_client.get(reverse("analysis:results", args=[rated_study.slug]))
    assert page.status_code == 200
    urls = _figure_urls(page.content.decode())
    assert len(urls) == len(plots.PLOTS)
    for url in urls:
        response = staff_client.get(html.unescape(url))
        assert response.status_code == 200
        svg_text(response.content)
    assert len(computed) == 1


def test_figures_draw_the_report_the_page_showed_even_when_data_changes_after(
    staff_client, rated_study
):
    page = staff_client.get(reverse("analysis:results", args=[rated_study.slug]))
    (shared,) = [u for u in _figure_urls(page.content.decode()) if "/articles.svg" in u]
    Response.objects.filter(participant__study=rated_study).delete()
    # The page said 5 generated ratings: its figure says so too...
    assert "(n=5)" in svg_text(staff_client.get(html.unescape(shared)).content)
    # ...while the figure on its own sees the data as it is now.
    fresh = staff_client.get(reverse("analysis:plot", args=[rated_study.slug, "articles"]))
    assert "(n=5)" not in svg_text(fresh.content)


@pytest.mark.parametrize("token", ["", "short", "../../etc/passwd", "x" * 5000, "a%00b", "é" * 20])
def test_a_figure_with_a_missing_or_malformed_report_token_computes_its_own(
    staff_client, rated_study, token
):
    url = reverse("analysis:plot", args=[rated_study.slug, "articles"])
    response = staff_client.get(url, {"report": token})
    assert response.status_code == 200
    assert "(n=5)" in svg_text(response.content)


def test_a_report_token_of_one_study_shows_nothing_of_it_under_another(staff_client, rated_study):
    page = staff_client.get(reverse("analysis:results", args=[rated_study.slug]))
    (shared,) = [u for u in _figure_urls(page.content.decode()) if "/articles.svg" in u]
    token = parse_qs(urlsplit(html.unescape(shared)).query)["report"][0]
    other = StudyFactory(slug="other-study")
    url = reverse("analysis:plot", args=[other.slug, "articles"])
    response = staff_client.get(url, {"report": token})
    assert response.status_code == 200
    assert "(n=5)" not in svg_text(response.content)
