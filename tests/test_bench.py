"""scripts/bench.py --quick runs end to end and writes valid JSON (numbers are reported, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow  # ~3 min on 2 cores (a cold inductor compile): run with `python -m pytest -m slow`
def test_bench_quick_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--out", str(out)],
        cwd=tmp_path,
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    bench = json.loads(out.read_text())
    assert {"training", "startup", "data", "sweep", "feature_cache", "precision"} <= set(bench)
    training = bench["training"]
    assert training["ratio_vs_plain_loop"] > 0 and training["plain_loop_samples_per_s"] > 0
    assert bench["startup"]["help_s"] > 0 and bench["data"]["cache_samples_per_s"] > 0
    precision = bench["precision"]
    assert all(precision[f"{name}_samples_per_s"] > 0 for name in ("fp32", "bf16-mixed", "compile"))
    assert precision["resident_compiled_ceiling_samples_per_s"] > 0
    assert "ratio_vs_plain_loop" in result.stdout
