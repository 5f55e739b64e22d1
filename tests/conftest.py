"""Fixtures shared by the whole suite. App-specific fixtures live in tests/<app>/conftest.py."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection

from tests.factories import StudyFactory


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests about row locks and concurrent writers only mean something on PostgreSQL.
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: run through scripts/with-postgres.sh")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _empty_cache(request: pytest.FixtureRequest) -> None:
    """Each database test starts with an empty cache. With the database cache (the default)
    rate-limit counters are rows that a transactional test commits and the flush after it
    does not remove (not a model's table): they would throttle later tests from 127.0.0.1."""
    marker = request.node.get_closest_marker("django_db")
    uses = {"db", "transactional_db", "live_server"} & set(request.fixturenames)
    if marker is None and not uses:
        return
    transactional = bool(uses - {"db"}) or bool(marker and marker.kwargs.get("transaction"))
    request.getfixturevalue("transactional_db" if transactional else "db")
    cache.clear()


@pytest.fixture
def live_study(db):  # type: ignore[no-untyped-def]
    """A live two-condition study (real vs generated), Kreps-style questions, one
    attention check, three articles per condition and one article per participant."""
    return StudyFactory.create_live()
