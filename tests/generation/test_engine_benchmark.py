"""The throughput benchmark script runs end to end (quick mode, tiny GPT-2 models)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

# Benchmark runs: CI runs them, a developer may skip them (-m "not slow").
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "generation_throughput.py"


@pytest.fixture
def throughput_script(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The benchmark script, imported as a module."""
    spec = importlib.util.spec_from_file_location("generation_throughput", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up in sys.modules.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_benchmark_quick_run_measures_every_configuration(
    tiny_model_dir: Path, throughput_script: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = throughput_script.main(
        ["--model", str(tiny_model_dir), "--quick", "--naive-prompts", "2",
         "--flops-seconds", "0.1", "--workers", "2"]
    )  # fmt: skip
    naive, *engine_rows = rows
    assert (naive.prompts, engine_rows[0].prompts) == (2, 16)
    assert 0 < naive.new_tokens <= 2 * 50
    assert all(0 < row.new_tokens <= 16 * 50 for row in engine_rows)
    assert engine_rows[-1].configuration.startswith("generate_parallel, 2 proc")
    out = capsys.readouterr().out
    assert "vs naive" in out
    assert "compute bound tokens/s = FLOP/s / (2 x parameters)" in out


def test_benchmark_times_a_gpt2_shape_with_random_weights(
    throughput_script: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GPT-2 small's code path at a size a test can afford: 2 layers, width 64, 4 heads.
    monkeypatch.setitem(throughput_script.GPT2_SHAPES, "gpt2", (2, 64, 4))
    rows = throughput_script.main(
        ["--shape", "gpt2", "--quick", "--naive-prompts", "1",
         "--flops-seconds", "0.1", "--workers", "1"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "gpt2's shape with random weights" in out
    # The naive pipeline on one prompt; each engine configuration on all 16.
    prompts = [row.prompts for row in rows]
    assert prompts[0] == 1
    assert set(prompts[1:]) == {16}
    assert all(row.new_tokens > 0 for row in rows)
    assert "parameters" in out
