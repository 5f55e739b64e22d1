"""Helpers of the reliability tests: they run benchmarks/participant_load.py, which
builds its own PostgreSQL cluster and gunicorn servers, and read its JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "participant_load.py"


def _postgres_binaries() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


LoadRun = Callable[..., dict[str, Any]]


@pytest.fixture
def load_run(tmp_path: Path) -> LoadRun:
    """Run the load benchmark with these arguments; returns its report."""
    if not _postgres_binaries():
        pytest.skip("needs the PostgreSQL server binaries (apt-get install postgresql)")

    def run(*args: str, timeout: float = 480) -> dict[str, Any]:
        report = tmp_path / "report.json"
        finished = subprocess.run(
            [sys.executable, str(SCRIPT), *args, "--json", str(report)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
        result: dict[str, Any] = json.loads(report.read_text())
        result["stdout"] = finished.stdout
        return result

    return run


def assert_nothing_lost(report: dict[str, Any]) -> None:
    """What SQL shows after a run: every answer the server accepted with a redirect is
    stored once, as sent; nothing is half-written; one participation per panel id."""
    sql = report["sql"]
    # Only a server that waits for its WAL before acknowledging a commit keeps, across a
    # crash, what it acknowledged; with it off, a lost answer would be PostgreSQL's.
    assert sql["synchronous_commit"] == "on"
    assert sql["answers_accepted"] > 0
    assert sql["answers_lost"] == 0
    assert sql["answers_duplicated"] == 0
    assert sql["panel_ids_with_two_participations"] == 0
    assert all(n == 0 for n in sql["half_written"].values()), sql["half_written"]


def assert_balanced(report: dict[str, Any]) -> None:
    """Least-filled assignment under the study's row lock: conditions and the articles
    of each condition differ by at most one participation (nobody drops out here)."""
    sql = report["sql"]
    counts = list(sql["conditions"].values())
    assert max(counts) - min(counts) <= 1, sql["conditions"]
    for condition, exposure in sql["article_exposure"].items():
        assert max(exposure) - min(exposure) <= 1, (condition, exposure)
