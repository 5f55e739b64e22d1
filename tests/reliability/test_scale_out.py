"""Two app servers (two gunicorn instances on two ports, standing for two machines) over
one PostgreSQL, the load split between them, every panel id's consent sent to both at
once: one participation per panel id, balance, and sessions that work on either server."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import LoadRun, assert_balanced, assert_nothing_lost

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_two_servers_keep_one_participation_per_panel_id_and_balance(load_run: LoadRun) -> None:
    report = load_run(
        *("--participants", "24", "--concurrency", "6", "--workers", "2", "--servers", "2"),
        *("--think-ms", "10", "--baseline-requests", "20", "--no-warmup", "--race-entry"),
    )
    load = report["load"]
    assert load["errors"] == []
    assert load["completed"] == load["participants"] == 24
    # Both servers carried the load.
    per_server = list(load["requests_per_server"].values())
    assert len(per_server) == 2
    assert min(per_server) > 0.3 * sum(per_server)
    # The consent raced on both servers ended in the same participation every time...
    assert load["race_mismatches"] == 0
    assert report["sql"]["panel_ids_with_two_participations"] == 0
    assert report["sql"]["participants"] == 24
    # ...and a session made on one server is known to the other.
    assert load["session_mismatches"] == 0
    assert_nothing_lost(report)
    assert_balanced(report)
