"""Fixtures shared by the whole suite. App-specific fixtures live in tests/<app>/conftest.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from tests.factories import StudyFactory

# pytest-timeout (pyproject.toml: ``timeout``) fails a test that runs longer than that,
# so one pathological query plan fails one test instead of stalling CI. These kinds of
# test start a browser, a model, or servers and worker processes, and get longer (by
# marker, so a new test of these kinds is covered without anyone remembering).
SLOW_KINDS = {"e2e": 900, "embedded_model": 900, "postgres": 600}
# A statement is cancelled by the server after this long. psycopg2 waits for the server
# inside C, where pytest-timeout's signal cannot interrupt it; the server's own limit
# ends the statement, the test fails with QueryCanceled and its transaction rolls back.
STATEMENT_TIMEOUT_MS = 240_000


def _limit_statements(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")


connection_created.connect(_limit_statements, dispatch_uid="tests-statement-timeout")


def analyze_tables() -> None:
    """Refresh the planner's statistics after a bulk load, as autovacuum would in
    production a little later (PostgreSQL; a no-op elsewhere). Tests that bulk-insert
    thousands of rows call it so the next queries are planned on what is there, not on
    what earlier tests left behind."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        limits = [limit for kind, limit in SLOW_KINDS.items() if kind in item.keywords]
        if limits:
            item.add_marker(pytest.mark.timeout(max(limits)))
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
