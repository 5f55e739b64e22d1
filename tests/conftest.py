"""Fixtures shared by the whole suite. App-specific fixtures live in tests/<app>/conftest.py."""

from __future__ import annotations

import pytest
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


@pytest.fixture
def live_study(db):  # type: ignore[no-untyped-def]
    """A live two-condition study (real vs generated), Kreps-style questions, one
    attention check, three articles per condition and one article per participant."""
    return StudyFactory.create_live()
