"""A run dir belongs to one run: claimed atomically, never shared, never someone else's folder."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback

from tests.conftest import FAST_DATA, REPO
from tests.forked_cli import ForkedCommand

FAST = ["debug=fast", FAST_DATA, "logger=none", "trainer.max_epochs=1"]
RUN_FILES = [".hydra", ".mmexp-run.json", "checkpoints", "config.yaml", "labels.json", "metrics.json"]
RUN_FILES += ["model", "predictions", "run_info.json", "split.json", "test_inputs.jsonl", "train.log", "vocab.json"]


class WaitForFile(Callback):
    """Hold the run at its first training step until ``path`` exists (at most a minute): a run still going."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_start(self, trainer, pl_module) -> None:
        deadline = time.monotonic() + 60
        while not self.path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def _start(cache: Path, *args: str) -> ForkedCommand:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
    return ForkedCommand("mmexp.train", [*args, f"paths.cache_dir={cache}"], cwd=cache.parent, env=env)


def _run(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _start(cache, *args).wait(timeout=300)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line.startswith("mmexp: error:")
    return line


@pytest.fixture
def cache(tmp_path: Path, cache_dir: Path) -> Path:
    return cache_dir


def test_two_runs_started_at_once_in_one_dir_exactly_one_wins(tmp_path: Path, cache: Path) -> None:
    run = tmp_path / "shared"
    first, second = (_start(cache, *FAST, f"seed={seed}", f"hydra.run.dir={run}") for seed in (1, 2))
    results = {1: first.wait(timeout=300), 2: second.wait(timeout=300)}
    winners = [seed for seed, r in results.items() if r.returncode == 0]
    assert len(winners) == 1, {s: r.stderr[-1500:] for s, r in results.items()}
    (winner,), loser = winners, 3 - winners[0]
    assert f"run dir {run} already holds a run" in _one_error_line(results[loser])
    assert (run / "metrics.json").exists()
    assert (run / ".hydra" / "overrides.yaml").read_text().count("seed=") == 1
    assert f"seed={winner}" in (run / ".hydra" / "overrides.yaml").read_text()
    assert f"seed: {winner}" in (run / "config.yaml").read_text()
    assert f"seed={winner}" in json.loads((run / "run_info.json").read_text())["overrides"]
    assert sorted(p.name for p in run.iterdir()) == sorted(RUN_FILES)  # no file of the loser's


def test_a_folder_that_is_no_mmexp_run_is_refused_and_left_untouched(tmp_path: Path, cache: Path) -> None:
    folder = tmp_path / "my_thesis"
    (folder / "data").mkdir(parents=True)
    (folder / "notes.txt").write_text("do not lose")
    (folder / "data" / "table.csv").write_text("a,b\n1,2\n")
    before = _snapshot(folder)
    line = _one_error_line(_run(cache, *FAST, f"hydra.run.dir={folder}"))
    assert f"run dir {folder} is not empty and holds no mmexp run" in line
    assert _snapshot(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == ["data", "notes.txt"]


def test_resume_into_a_folder_that_is_no_mmexp_run_is_refused(tmp_path: Path, cache: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.png").write_bytes(b"\x89PNG")
    before = _snapshot(folder)
    line = _one_error_line(_run(cache, *FAST, f"hydra.run.dir={folder}", "resume=auto"))
    assert "holds no mmexp run" in line
    assert _snapshot(folder) == before


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_a_second_sweep_into_the_same_sweep_dir_is_refused_untouched(tmp_path: Path, cache: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ("-m", *FAST, "seed=1,2", f"hydra.sweep.dir={sweep}")
    first = _run(cache, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert [job.name[:2] for job in jobs] == ["0_", "1_"]
    assert all((job / ".mmexp-run.json").is_file() for job in jobs)  # each job claimed its dir
    before = _snapshot(sweep)
    time.sleep(0.01)  # a rewrite would show in the modification times
    line = _one_error_line(_run(cache, *args))
    assert f"run dir {sweep} already holds a run" in line
    assert _snapshot(sweep) == before


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_resume_of_a_run_that_is_still_going_is_refused(tmp_path: Path, cache: Path) -> None:
    run, go = tmp_path / "going", tmp_path / "go"
    wait = ["+callbacks.wait._target_=tests.faults.test_run_dirs.WaitForFile", f"+callbacks.wait.path={go}"]
    going = _start(cache, *FAST, *wait, f"hydra.run.dir={run}")
    try:
        deadline = time.monotonic() + 120
        while not (run / "run_info.json").exists() and going.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        line = _one_error_line(_run(cache, f"hydra.run.dir={run}", "resume=auto"))
        assert f"run dir {run} is in use by another mmexp process" in line
    finally:
        go.touch()
        done = going.wait(timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "run_info.json").read_text())["status"] == "completed"
