"""The audit log (surveys.audit over django-auditlog): design and lifecycle changes, exports
of participant data and API tokens each leave an entry saying who, when and what, which
the admin shows read-only, to superusers and to the team whose object it is."""

from __future__ import annotations

import io

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from surveys.models import Condition, Study, Team, TeamMembership
from tests.factories import ConditionFactory, RealArticleFactory, StudyFactory

pytestmark = pytest.mark.django_db


def _researcher(name: str, team: Team) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    TeamMembership.objects.create(team=team, user=user, role=TeamMembership.Role.RESEARCHER)
    return user


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _entries_for(obj: object) -> list[LogEntry]:
    return list(LogEntry.objects.get_for_object(obj).order_by("timestamp", "pk"))


@pytest.fixture
def team() -> Team:
    return Team.objects.create(name="Alpha")


def test_a_design_change_in_the_admin_is_logged_with_its_actor_and_diff(team: Team) -> None:
    researcher = _researcher("res", team)
    study = StudyFactory.create(team=team)
    condition = ConditionFactory.create(study=study, name="real", label="Real")
    article = RealArticleFactory.create()
    response = _client(researcher).post(
        reverse("admin:surveys_condition_change", args=[condition.pk]),
        {
            "study": study.pk,
            "name": "real",
            "label": "Human-written",
            "quota": "",
            "per_participant": "",
            "articles": [article.pk],
        },
    )
    assert response.status_code == 302
    entries = [e for e in _entries_for(condition) if e.action == LogEntry.Action.UPDATE]
    assert entries, "no update entry"
    assert all(e.actor == researcher for e in entries)
    changes = {key for e in entries for key in (e.changes_dict or {})}
    assert {"label", "articles"} <= changes
    assert entries[-1].additional_data["team_id"] == team.pk


def test_a_status_change_is_logged_with_its_actor(team: Team) -> None:
    researcher = _researcher("res", team)
    study = StudyFactory.create_live(team=team)
    url = reverse("admin:surveys_study_status", args=[study.pk, Study.Status.CLOSED])
    assert _client(researcher).post(url).status_code == 302
    study.refresh_from_db()
    assert study.status == Study.Status.CLOSED
    entry = LogEntry.objects.get_for_object(study).filter(changes__has_key="status").latest()
    assert entry.actor == researcher
    assert entry.changes_dict["status"] == ["live", "closed"]


@pytest.mark.parametrize(
    ("trusted_proxies", "recorded"),
    [(0, "127.0.0.1"), (1, "198.51.100.7")],
)
def test_an_entry_records_the_client_address_the_rate_limits_trust(
    team: Team, settings: object, trusted_proxies: int, recorded: str
) -> None:
    # The first X-Forwarded-For entry is whatever the client wrote: without a trusted
    # proxy the socket's address is recorded, behind one the entry that proxy appended.
    settings.CREDENCE_TRUSTED_PROXIES = trusted_proxies  # type: ignore[attr-defined]
    researcher = _researcher("res", team)
    study = StudyFactory.create_live(team=team)
    url = reverse("admin:surveys_study_status", args=[study.pk, Study.Status.CLOSED])
    response = _client(researcher).post(
        url, headers={"x-forwarded-for": "203.0.113.66, 198.51.100.7"}
    )
    assert response.status_code == 302
    entry = LogEntry.objects.get_for_object(study).filter(changes__has_key="status").latest()
    assert entry.actor == researcher
    assert entry.remote_addr == recorded


def test_a_results_page_export_is_logged(team: Team) -> None:
    researcher = _researcher("res", team)
    study = StudyFactory.create_live(team=team)
    before = LogEntry.objects.filter(action=LogEntry.Action.ACCESS).count()
    response = _client(researcher).get(reverse("analysis:export", args=[study.slug]))
    assert response.status_code == 200
    b"".join(response.streaming_content)  # type: ignore[attr-defined]
    entries = LogEntry.objects.filter(action=LogEntry.Action.ACCESS)
    assert entries.count() == before + 1
    entry = entries.latest()
    assert entry.actor == researcher
    assert entry.object_pk == str(study.pk)
    assert entry.content_type == ContentType.objects.get_for_model(Study)
    assert entry.additional_data["what"] == "responses CSV (results page)"


def test_an_api_export_with_a_token_is_logged_with_the_tokens_user(team: Team) -> None:
    analyst = User.objects.create_user("ana", password="pw", is_staff=True)
    TeamMembership.objects.create(team=team, user=analyst, role=TeamMembership.Role.ANALYST)
    study = StudyFactory.create_live(team=team)
    key = Token.objects.create(user=analyst).key
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    for endpoint in ("participant-list", "response-list"):
        response = client.get(reverse(f"api:{endpoint}", args=[study.slug]), {"format": "csv"})
        assert response.status_code == 200
    exports = LogEntry.objects.filter(action=LogEntry.Action.ACCESS).order_by("pk")
    assert [e.additional_data["what"] for e in exports] == [
        "API participants (csv, page 1)",
        "API responses (csv, page 1)",
    ]
    assert all(e.actor == analyst and e.object_pk == str(study.pk) for e in exports)


def test_an_outsiders_refused_export_is_not_logged_as_an_export(team: Team) -> None:
    outsider = _researcher("out", Team.objects.create(name="Beta"))
    study = StudyFactory.create_live(team=team)
    response = _client(outsider).get(reverse("analysis:export", args=[study.slug]))
    assert response.status_code == 404
    assert not LogEntry.objects.filter(action=LogEntry.Action.ACCESS).exists()


def test_the_export_command_is_logged_without_an_actor(team: Team) -> None:
    study = StudyFactory.create_live(team=team)
    call_command("export_responses", study.slug, stdout=io.StringIO(), stderr=io.StringIO())
    entry = LogEntry.objects.filter(action=LogEntry.Action.ACCESS).get()
    assert entry.actor is None
    assert entry.object_pk == str(study.pk)
    assert entry.additional_data["what"].startswith("export_responses")


def test_a_token_created_in_the_admin_is_logged_without_its_key() -> None:
    root = User.objects.create_superuser("root", password="pw")
    owner = User.objects.create_user("owner", password="pw", is_staff=True)
    response = _client(root).post(reverse("admin:authtoken_tokenproxy_add"), {"user": owner.pk})
    assert response.status_code == 302
    key = Token.objects.get(user=owner).key
    entry = LogEntry.objects.get(content_type=ContentType.objects.get_for_model(Token))
    assert entry.action == LogEntry.Action.CREATE
    assert entry.actor == root
    assert entry.object_repr == "API token of owner"
    assert entry.additional_data["user_id"] == owner.pk
    stored = LogEntry.objects.filter(pk=entry.pk).values().get()
    assert key not in repr(stored)


def test_the_audit_admin_is_read_only_and_shows_a_team_only_its_own_entries(team: Team) -> None:
    researcher = _researcher("res", team)
    outsider = _researcher("out", Team.objects.create(name="Beta"))
    study = StudyFactory.create(team=team, title="Alpha's secret design")
    entry = LogEntry.objects.get_for_object(study).get()
    changelist = reverse("admin:auditlog_logentry_changelist")
    change = reverse("admin:auditlog_logentry_change", args=[entry.pk])
    own = _client(researcher)
    assert entry in own.get(changelist).context["cl"].result_list
    page = own.get(change)
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert own.post(reverse("admin:auditlog_logentry_delete", args=[entry.pk])).status_code == 403
    other = _client(outsider)
    listing = other.get(changelist)
    assert listing.status_code == 200
    assert "Alpha&#x27;s secret design" not in listing.content.decode()
    assert "secret design" not in listing.content.decode()
    assert other.get(change).status_code == 404
    assert LogEntry.objects.filter(pk=entry.pk).exists()
    assert Condition.objects.count() == 0
