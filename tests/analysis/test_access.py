"""Only a study's research team (and superusers) see its data on the results pages, the
plots, the CSV export and the REST API; everyone else gets 404, as for a study that does
not exist (403 for signed-in users who are not staff at all, as before)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from surveys.models import Study, Team, TeamMembership
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

PAGES = ["analysis:results", "analysis:export", "analysis:export_wide"]
API_STUDY_ENDPOINTS = [
    "api:study-detail",
    "api:condition-list",
    "api:article-list",
    "api:participant-list",
    "api:response-list",
    "api:study-results",
]


@pytest.fixture
def alpha(rated_study: Study) -> Team:
    """The rated study (3/4 real and 2/5 generated credible) belongs to team alpha."""
    team = Team.objects.create(name="Alpha lab")
    Study.objects.filter(pk=rated_study.pk).update(team=team)
    return team


def _user(
    username: str, *, team: Team | None = None, role: str = "researcher", **extra: bool
) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True, **extra)
    if team is not None:
        TeamMembership.objects.create(team=team, user=user, role=role)
    return user


def _browser(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _api(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def _plot_url(study: Study) -> str:
    return reverse("analysis:plot", args=[study.slug, "credible"])


def _api_url(name: str, study: Study) -> str:
    return reverse(name, args=[study.slug])


@pytest.mark.parametrize("name", PAGES)
def test_outsider_from_another_team_gets_404_on_results_and_export(rated_study, alpha, name):
    outsider = _user("out", team=Team.objects.create(name="Beta lab"))
    response = _browser(outsider).get(reverse(name, args=[rated_study.slug]))
    assert response.status_code == 404


def test_outsider_gets_404_on_plots(rated_study, alpha):
    outsider = _user("out", team=Team.objects.create(name="Beta lab"))
    assert _browser(outsider).get(_plot_url(rated_study)).status_code == 404


@pytest.mark.parametrize("role", ["researcher", "analyst"])
def test_members_see_results_plots_and_export(rated_study, alpha, role):
    client = _browser(_user("member", team=alpha, role=role))
    response = client.get(reverse("analysis:results", args=[rated_study.slug]))
    assert response.status_code == 200
    assert response.context["study"] == rated_study
    assert client.get(_plot_url(rated_study)).status_code == 200
    export = client.get(reverse("analysis:export", args=[rated_study.slug]))
    assert export.status_code == 200
    lines = b"".join(export.streaming_content).decode().splitlines()
    # rated_study: 13 non-test participations, one article each, four questions about
    # it: 52 rows and the header.
    assert len(lines) == 53


def test_study_without_team_is_for_superusers_only(rated_study):
    member = _user("member", team=Team.objects.create(name="Alpha lab"))
    root = _user("root", is_superuser=True)
    url = reverse("analysis:results", args=[rated_study.slug])
    assert _browser(member).get(url).status_code == 404
    assert _browser(root).get(url).status_code == 200
    assert _api(member).get(_api_url("api:study-detail", rated_study)).status_code == 404
    assert _api(root).get(_api_url("api:study-detail", rated_study)).status_code == 200


def test_api_list_is_empty_for_an_outsider_and_has_the_teams_study_for_members(rated_study, alpha):
    beta = Team.objects.create(name="Beta lab")
    theirs = StudyFactory.create(team=beta, slug="beta-study")
    orphan = StudyFactory.create(slug="orphan-study")
    url = reverse("api:study-list")

    def slugs(user: User) -> set[str]:
        response = _api(user).get(url)
        assert response.status_code == 200
        return {row["slug"] for row in response.json()}

    assert slugs(_user("nobody")) == set()
    assert slugs(_user("out", team=beta)) == {theirs.slug}
    assert slugs(_user("ana", team=alpha, role="analyst")) == {rated_study.slug}
    assert slugs(_user("root", is_superuser=True)) == {rated_study.slug, theirs.slug, orphan.slug}


@pytest.mark.parametrize("name", API_STUDY_ENDPOINTS)
def test_api_study_endpoints_404_for_an_outsider_200_for_an_analyst(rated_study, alpha, name):
    outsider = _user("out", team=Team.objects.create(name="Beta lab"))
    assert _api(outsider).get(_api_url(name, rated_study)).status_code == 404
    response = _api(_user("ana", team=alpha, role="analyst")).get(_api_url(name, rated_study))
    assert response.status_code == 200


def test_api_responses_of_a_member_are_the_studys_rows(rated_study, alpha):
    response = _api(_user("ana", team=alpha, role="analyst")).get(
        _api_url("api:response-list", rated_study), {"question_key": "credible"}
    )
    assert response.status_code == 200
    # rated_study: 14 participations, one test session left out by default -> 13 ratings.
    assert response.json()["count"] == 13


def test_api_non_staff_member_is_refused(rated_study, alpha):
    user = User.objects.create_user("plain", password="pw")
    TeamMembership.objects.create(team=alpha, user=user, role="researcher")
    client = _api(user)
    assert client.get(_api_url("api:study-detail", rated_study)).status_code == 403
    assert client.get(reverse("api:study-list")).json() == []
