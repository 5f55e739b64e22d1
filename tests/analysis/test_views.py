"""The staff results page and CSV download: permissions first, then content."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from analysis.frames import RESPONSE_COLUMNS
from surveys.models import Participant, Response

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    # A superuser sees every study; team members and outsiders: tests/analysis/test_access.py.
    user = get_user_model().objects.create_user(
        "analyst", password="pw", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client


@pytest.fixture
def plain_client(client):
    user = get_user_model().objects.create_user("participant", password="pw")
    client.force_login(user)
    return client


def test_results_page_for_staff_shows_tables(staff_client, rated_study):
    response = staff_client.get(reverse("analysis:results", args=[rated_study.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="ledger"' in html
    assert 'id="proportions"' in html
    assert 'id="comparisons"' in html
    assert 'id="likert"' in html
    assert "75.0%" in html
    assert "[30.1%, 95.4%]" in html
    assert "-35.0 pp" in html
    assert reverse("analysis:export", args=[rated_study.slug]) in html
    assert response.context["report"].analysed == 9


@pytest.mark.parametrize("name", ["analysis:results", "analysis:export"])
def test_anonymous_is_sent_to_login(client, rated_study, name):
    response = client.get(reverse(name, args=[rated_study.slug]))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


@pytest.mark.parametrize("name", ["analysis:results", "analysis:export"])
def test_non_staff_user_is_sent_to_login(plain_client, rated_study, name):
    response = plain_client.get(reverse(name, args=[rated_study.slug]))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


@pytest.mark.parametrize("name", ["analysis:results", "analysis:export"])
def test_unknown_study_is_404(staff_client, name, rated_study):
    response = staff_client.get(reverse(name, args=["no-such-study"]))
    assert response.status_code == 404


def test_export_streams_the_csv(staff_client, rated_study):
    response = staff_client.get(reverse("analysis:export", args=[rated_study.slug]))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert f"{rated_study.slug}-responses.csv" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert list(rows[0].keys()) == RESPONSE_COLUMNS
    assert (
        len(rows)
        == Response.objects.filter(
            participant__study=rated_study, participant__is_test=False, trial__isnull=False
        ).count()
    )


def test_results_page_for_empty_study(staff_client, live_study):
    response = staff_client.get(reverse("analysis:results", args=[live_study.slug]))
    assert response.status_code == 200
    assert "No analysed answers yet." in response.content.decode()


def test_results_page_shows_regression_and_power(staff_client, rated_study):
    response = staff_client.get(reverse("analysis:results", args=[rated_study.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="regression"' in html
    assert 'id="power"' in html
    assert "0.22 [" in html  # odds ratio 2/9 of generated against real
    assert "[19.4%, 99.4%]" in html  # Clopper-Pearson 3/4: R binom.test(3, 4) 0.1941 0.9937


def test_results_page_shows_the_credibility_index(staff_client, rated_study):
    response = staff_client.get(reverse("analysis:results", args=[rated_study.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="credibility-index"' in html
    assert 'id="index-tests"' in html
    assert "<td>7.00</td>" in html  # real: index 8, 8, 7, 5
    assert "Kruskal-Wallis" in html
    assert 'id="detection"' not in html  # the study asks no detection question


def test_wide_export_streams_one_row_per_participant(staff_client, rated_study):
    response = staff_client.get(reverse("analysis:export_wide", args=[rated_study.slug]))
    assert response.status_code == 200
    assert response.streaming
    assert f"{rated_study.slug}-participants.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    expected = Participant.objects.filter(study=rated_study, is_test=False)
    tokens = sorted(row["participant_token"] for row in rows)
    assert tokens == sorted(str(p.token) for p in expected)
