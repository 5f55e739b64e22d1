"""Backups: a study's database dumped with pg_dump -Fc and restored with pg_restore into
a fresh database gives byte-identical exports (manage.py export_responses, long and
wide), as the README's backup and restore steps promise."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from surveys.models import Response, Study
from surveys.simulation import simulate
from tests.factories import StudyFactory

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(600)]


def _pg_tool(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts[-3])
    if not found:
        pytest.skip(f"{name} not found (apt-get install postgresql-client)")
    return str(found[-1])


def _url(database: str) -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s["PASSWORD"] else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{database}"


def _export(database: str, slug: str, fmt: str) -> bytes:
    """export_responses in a process of its own, against ``database``."""
    env = {**os.environ, "DATABASE_URL": _url(database)}
    finished = subprocess.run(
        [sys.executable, "manage.py", "export_responses", slug, "--format", fmt],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
        timeout=300,
    )
    return finished.stdout


@pytest.fixture
def restored_database() -> Iterator[str]:
    name = f"restored_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield name
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db(transaction=True)
def test_restored_dump_gives_byte_identical_exports(tmp_path: Path, restored_database: str) -> None:
    study: Study = StudyFactory.create_live()
    summary = simulate(
        study=study,
        n=12,
        rates={"real": 0.8, "generated": 0.6},
        seed=7,
        dropout=0.2,
        progress=False,
    )
    assert summary.errors == []
    assert Response.objects.filter(participant__study=study).count() > 0
    original = connection.settings_dict["NAME"]
    dump = tmp_path / "credence.dump"
    # The commands of the README: a custom-format dump, restored without owners (the
    # restoring role owns everything, whatever the dumped database's owner was called).
    subprocess.run(
        [_pg_tool("pg_dump"), "--format=custom", f"--file={dump}", _url(original)],
        check=True,
        timeout=300,
    )
    subprocess.run(
        [_pg_tool("pg_restore"), "--no-owner", f"--dbname={_url(restored_database)}", str(dump)],
        check=True,
        timeout=300,
    )
    for fmt in ("long", "wide"):
        before = _export(original, study.slug, fmt)
        after = _export(restored_database, study.slug, fmt)
        # A header and at least one row per completed participant.
        assert before.count(b"\n") > summary.completed_now
        assert after == before, fmt
