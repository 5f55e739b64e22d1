"""The suite's time limits: a test that hangs fails alone instead of stalling CI."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.conftest import STATEMENT_TIMEOUT_MS, pytest_collection_modifyitems


def test_every_test_has_a_time_limit(request):
    assert request.config.getini("timeout") == "300"
    # "signal" fails the one test and lets pytest-django roll its transaction back;
    # "thread" would end the whole run.
    assert request.config.getini("timeout_method") == "signal"


class _Item:
    """Just what the collection hook reads and writes of a pytest item."""

    def __init__(self, *markers: pytest.MarkDecorator) -> None:
        self.markers = [marker.mark for marker in markers]

    @property
    def keywords(self) -> set[str]:
        return {marker.name for marker in self.markers}

    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        return next((m for m in reversed(self.markers) if m.name == name), None)

    def add_marker(self, marker: pytest.MarkDecorator) -> None:
        self.markers.append(marker.mark)


def test_browser_model_and_server_tests_get_longer_limits(request):
    browser, model = _Item(pytest.mark.e2e), _Item(pytest.mark.embedded_model)
    plain, chosen = _Item(pytest.mark.django_db), _Item(pytest.mark.e2e, pytest.mark.timeout(60))
    pytest_collection_modifyitems(request.config, [browser, model, plain, chosen])
    assert [_limit(item) for item in (browser, model, plain, chosen)] == [900, 900, None, 60]


def _limit(item: _Item) -> int | None:
    marker = item.get_closest_marker("timeout")
    return None if marker is None else int(marker.args[0])


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_cancels_a_statement_that_runs_too_long():
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        (shown,) = cursor.fetchone()
    assert shown == f"{STATEMENT_TIMEOUT_MS // 60_000}min"
