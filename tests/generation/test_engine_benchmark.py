"""The throughput benchmark script runs end to end (quick mode, tiny GPT-2)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "generation_throughput.py"


def test_benchmark_quick_run_measures_every_configuration(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("generation_throughput", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up in sys.modules.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    rows = module.main(
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
