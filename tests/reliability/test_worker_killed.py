"""A gunicorn worker is SIGKILLed in the middle of a load run: the master replaces it,
participants whose request it was serving reload and go on, and SQL shows nothing lost,
duplicated or half-written (the killed request's transaction was rolled back)."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import LoadRun, assert_balanced, assert_nothing_lost

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_killed_worker_is_replaced_and_participants_lose_nothing(load_run: LoadRun) -> None:
    report = load_run(
        *("--participants", "24", "--concurrency", "6", "--workers", "3"),
        *("--think-ms", "20", "--baseline-requests", "20", "--no-warmup"),
        *("--fault", "kill-worker", "--fault-at", "0.4"),
    )
    fault, load = report["fault"], report["load"]
    assert "killed_pid" in fault, fault
    assert fault["workers_after"] == 3
    assert load["stack_traces"] == 0
    assert load["impolite_5xx"] == 0
    assert load["errors"] == []
    assert load["completed"] == load["participants"] == 24
    assert fault["next_request_status"] == 200
    assert_nothing_lost(report)
    assert_balanced(report)
