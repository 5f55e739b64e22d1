"""PostgreSQL restarts in the middle of a load run (pg_ctl restart on the run's own
cluster; -m fast as an operator restarts it, -m immediate as after a crash): participants
get the polite 'please retry' page, their reload succeeds without anyone restarting the
site, and SQL shows nothing lost, duplicated or half-written."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import LoadRun, assert_balanced, assert_nothing_lost

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_database_restart_mid_run_costs_participants_a_retry_and_nothing_else(
    load_run: LoadRun, mode: str
) -> None:
    report = load_run(
        *("--participants", "24", "--concurrency", "6", "--workers", "3"),
        *("--think-ms", "20", "--baseline-requests", "20", "--no-warmup"),
        *("--fault", "restart-db", "--fault-at", "0.4", "--restart-mode", mode),
    )
    fault, load = report["fault"], report["load"]
    assert fault.get("restart_mode") == mode, fault
    # The restart hit requests in flight: they were answered with the retry page...
    assert load["retried"].get("503 please retry", 0) > 0, load["retried"]
    # ...never with a stack trace or a bare 500...
    assert load["stack_traces"] == 0
    assert load["impolite_5xx"] == 0
    # ...and reloading went on where the participant was: everyone finished.
    assert load["errors"] == []
    assert load["completed"] == load["participants"] == 24
    assert fault["next_request_status"] == 200
    assert_nothing_lost(report)
    assert_balanced(report)
