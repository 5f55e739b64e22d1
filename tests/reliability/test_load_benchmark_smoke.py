"""The load benchmark in its --quick mode, so that it cannot rot unnoticed."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import LoadRun, assert_balanced, assert_nothing_lost


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_load_run_completes_everyone_and_reports_every_figure(load_run: LoadRun) -> None:
    report = load_run("--quick")
    load = report["load"]
    assert load["completed"] == load["participants"] == 4
    assert load["errors"] == []
    assert load["stack_traces"] == load["impolite_5xx"] == 0
    # Every page of the flow was requested and timed.
    for page in ("consent", "instructions", "comprehension", "article", "check", "about-you"):
        assert load["latency_ms"][f"POST {page}"]["n"] >= 4
    assert load["latency_ms"]["GET debrief"]["n"] >= 4
    assert report["baseline"]["answered_404"] == report["baseline"]["requests"]
    assert report["one_query_404"]["answered_404"] == report["one_query_404"]["requests"]
    assert report["baseline"]["cpu_ms_per_request"] > 0
    assert report["ratio_cpu_to_baseline"] > 0
    assert report["queries_per_page"]["POST article"][0] > 0
    assert report["sql"]["completed"] == 4
    assert_nothing_lost(report)
    assert_balanced(report)
    assert "ratio" in report["stdout"]
