"""The analysts' API fuzzed from its own OpenAPI schema (schemathesis): every operation
under /api/, called as an analyst of the study's team with generated path and query
parameters, valid and invalid. No answer may be a server error, and every answer must
match the schema: its status code is documented, its content type declared and its body
valid against the documented shape."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from surveys.models import Study, Team, TeamMembership
from tests.analysis.conftest import make_participant, rating

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Each operation gets this many generated cases per phase: the whole API is fuzzed in
# well under a minute on two cores, and a regression in any operation shows up.
MAX_EXAMPLES = 25


@pytest.fixture
def analyst_token(live_study: Study) -> str:
    """An analyst of the team that owns ``live_study`` (not a superuser), with a token."""
    team = Team.objects.create(name="Fuzzers")
    Study.objects.filter(pk=live_study.pk).update(team=team)
    user = get_user_model().objects.create_user("fuzz-analyst", password="pw", is_staff=True)
    TeamMembership.objects.create(team=team, user=user, role=TeamMembership.Role.ANALYST)
    for credible in ("yes", "no", "yes"):
        make_participant(live_study, "real", [rating(credible, 3)])
        make_participant(live_study, "generated", [rating(credible, 2)])
    return Token.objects.create(user=user).key


def _served_schema() -> dict[str, object]:
    """What /api/schema/ serves, built by the same generator without a request (the
    served document is compared with it below). Loaded at import, as the test is
    parametrised by operation; schemathesis' lazy ``from_fixture`` loader does not run
    under pytest 9 (it sets ``Function._nodeid``, which pytest 9 removed)."""
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator(patterns=None).get_schema(request=None, public=True)  # type: ignore[no-any-return]


OPENAPI = _served_schema()
schema = schemathesis.openapi.from_dict(OPENAPI)
schema.app = WSGIHandler()


@pytest.fixture
def in_process_requests(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Requests through Django's WSGI handler inside the test's transaction, as Django's
    test client makes them: the handler must not close the connection after each."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_fuzzed_schema_is_the_one_served(client, analyst_token):
    response = client.get("/api/schema/?format=json", HTTP_AUTHORIZATION=f"Token {analyst_token}")
    assert response.status_code == 200
    assert json.loads(response.content) == json.loads(json.dumps(OPENAPI))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_answers_match_the_schema_and_never_fail(
    case, analyst_token, live_study, in_process_requests
):
    if "slug" in case.path_parameters:
        # A generated slug names no study (a 404, documented); the analyst's own study
        # lets the query parameters reach the code behind them.
        case.path_parameters["slug"] = live_study.slug
    case.call_and_validate(
        headers={"Authorization": f"Token {analyst_token}"},
        checks=CHECKS,
    )
