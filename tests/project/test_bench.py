"""scripts/ stays runnable: every script imports, and bench.py's cheapest real measurement runs end to end and
writes every figure it promises (numbers are reported, never asserted). The full bench is the slow test below."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO

SCRIPTS = REPO / "scripts"


def load_script(path: Path) -> ModuleType:
    """Import a script as a module (its ``main`` is guarded by ``__name__``), as ``python scripts/x.py`` would."""
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    sys.path.insert(0, str(SCRIPTS))  # bench.py runs its helper scripts by module name
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPTS))
    return module


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_every_script_imports(script: str) -> None:
    """A moved or renamed mmexp function fails here, not in the hands of the next person measuring."""
    module = load_script(SCRIPTS / script)
    entry = "ThroughputTimer" if script == "bench_timer.py" else "main"  # bench_timer holds a callback, no CLI
    assert callable(getattr(module, entry))


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_bench_startup_section_writes_every_promised_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench.py"), "--quick", "--sections", "startup", "--out", str(out)],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # the bench's work dir (mkdtemp) stays under tmp_path
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    bench = json.loads(out.read_text())
    figures = load_script(SCRIPTS / "bench.py").FIGURES
    assert set(figures) >= {"training", "startup", "data", "sweep", "feature_cache", "precision"}
    assert set(bench) == {"device", "torch", "threads", "quick", "startup"}
    for key in figures["startup"]:
        assert math.isfinite(bench["startup"][key]) and bench["startup"][key] > 0, key
    assert "--help, s" in result.stdout and "config error, s" in result.stdout


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
    assert set(load_script(SCRIPTS / "bench.py").FIGURES) <= set(bench)  # main() checked each section's figures
    training = bench["training"]
    assert training["ratio_vs_plain_loop"] > 0 and training["plain_loop_samples_per_s"] > 0
    assert bench["startup"]["help_s"] > 0 and bench["data"]["cache_samples_per_s"] > 0
    precision = bench["precision"]
    assert all(precision[f"{name}_samples_per_s"] > 0 for name in ("fp32", "bf16-mixed", "compile"))
    assert precision["resident_compiled_ceiling_samples_per_s"] > 0
    assert "ratio_vs_plain_loop" in result.stdout
