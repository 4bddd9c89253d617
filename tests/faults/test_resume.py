"""resume=auto: exact after an interruption at any step, a no-op on a finished run, strict about its config.

Every run goes through the real CLI in a subprocess (SIGTERM and exit codes are part of the promise).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from tests.conftest import FAST_DATA, REPO, run_cli

COMMON = [
    "debug=fast",
    FAST_DATA,
    "trainer.limit_train_batches=6",  # 6 steps an epoch: step 8 is in the second (and last) epoch
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "logger=csv",
    "model.dropout=0.3",  # dropout draws random numbers every step: a resume must replay them
]
KILL = "+callbacks.kill._target_=tests.faults.test_resume.SignalOnceAtStep"
TEST_KEYS = ("test/acc", "test/f1_macro", "test/loss", "test/auroc")


class SignalOnceAtStep(Callback):
    """Send ``signal_name`` to this process after training step ``step``, once: ``marker`` (outside the run dir)
    records it, since the resumed run reads the same config, this callback included."""

    def __init__(self, step: int, marker: str, signal_name: str = "SIGTERM") -> None:
        self.step, self.marker, self.signum = step, Path(marker), getattr(signal, signal_name)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), self.signum)


def _kill_at(step: int, run: Path, signal_name: str = "SIGTERM") -> list[str]:
    marker = run.parent / (run.name + ".killed")
    return [
        KILL,
        f"+callbacks.kill.step={step}",
        f"+callbacks.kill.marker={marker}",
        f"+callbacks.kill.signal_name={signal_name}",
    ]


def _cli(cache: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("mmexp.train", f"paths.cache_dir={cache}", *args, cwd=cache.parent, extra_path=REPO)


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


def _epoch_rows(run: Path) -> list[float]:
    """epoch, step, train/acc and val/acc of every epoch-level row in the run's metrics.csv, flattened."""
    with (run / "csv" / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/acc") or r.get("val/acc")]
    return [float(r[k] or -1) for r in rows for k in ("epoch", "step", "train/acc", "val/acc")]


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _assert_same_result(run: Path, reference: Path) -> None:
    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    assert a["epochs"] == b["epochs"] == 2
    assert {k: b["test"][k] for k in TEST_KEYS} == {k: a["test"][k] for k in TEST_KEYS}  # bit for bit
    assert _epoch_rows(run) == _epoch_rows(reference)  # nothing lost or logged twice
    weights = [_load(r, "last.ckpt")["state_dict"] for r in (run, reference)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])


def _load(run: Path, name: str) -> dict:
    return torch.load(run / "checkpoints" / name, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resume") / "cache"


@pytest.fixture(scope="module")
def straight(cache: Path) -> Path:
    """An uninterrupted run: what every interrupted-then-resumed run must reproduce."""
    run = cache.parent / "straight"
    _ok(_cli(cache, *COMMON, f"hydra.run.dir={run}"))
    return run


@pytest.fixture(scope="module")
def killed_early(cache: Path) -> Path:
    """A run killed (SIGKILL: no handler runs) at step 2, before its first epoch and first checkpoint ended."""
    run = cache.parent / "killed_early"
    result = _cli(cache, *COMMON, f"hydra.run.dir={run}", *_kill_at(2, run, "SIGKILL"))
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def flat(cache: Path) -> Path:
    """A finished run whose monitored metric never improves after epoch 0 (the epoch number, minimized)."""
    run = cache.parent / "flat"
    never_better = ["callbacks.model_checkpoint.monitor=epoch", "callbacks.model_checkpoint.mode=min"]
    _ok(_cli(cache, *COMMON, *never_better, f"hydra.run.dir={run}"))
    return run


def _copy(run: Path, name: str) -> Path:
    copy = run.parent / name
    shutil.copytree(run, copy)
    return copy


def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_run(cache: Path, straight: Path) -> None:
    run = cache.parent / "killed_mid_epoch"
    killed = _cli(cache, *COMMON, f"hydra.run.dir={run}", *_kill_at(8, run))
    assert killed.returncode == 128 + signal.SIGTERM, killed.stderr[-3000:]
    assert "resume=auto" in killed.stdout + killed.stderr
    assert _load(run, "last.ckpt")["global_step"] == 6  # the end of epoch 0, not the interrupted step
    assert json.loads((run / "run_info.json").read_text())["status"] == "interrupted"
    _ok(_cli(cache, f"hydra.run.dir={run}", "resume=auto"))
    _assert_same_result(run, straight)


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_run_killed_before_its_first_checkpoint_resumes_from_its_start(
    cache: Path, straight: Path, killed_early: Path
) -> None:
    run = _copy(killed_early, "killed_early_resumed")
    assert not (run / "checkpoints" / "last.ckpt").exists()
    _ok(_cli(cache, f"hydra.run.dir={run}", "resume=auto"))
    _assert_same_result(run, straight)


def test_resume_with_other_overrides_is_an_error_listing_them(cache: Path, killed_early: Path) -> None:
    run = _copy(killed_early, "killed_early_other_overrides")
    before = _snapshot(run)
    others = [o.replace("trainer.max_epochs=2", "trainer.max_epochs=5") for o in COMMON if o != "model.dropout=0.3"]
    result = _cli(cache, *others, "seed=4", f"hydra.run.dir={run}", "resume=auto")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("mmexp: error:")]
    for difference in ("trainer.max_epochs=2", "trainer.max_epochs=5", "model.dropout=0.3", "seed=4"):
        assert difference in line, line
    assert _snapshot(run) == before


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_last_checkpoint_is_the_last_epoch_even_without_a_new_best(flat: Path) -> None:
    assert _load(flat, "best.ckpt")["epoch"] == 0
    assert _load(flat, "last.ckpt")["epoch"] == 1 and _load(flat, "last.ckpt")["global_step"] == 12


def test_resume_of_a_finished_run_says_so_and_changes_nothing(cache: Path, flat: Path) -> None:
    run = _copy(flat, "flat_resumed")
    before = _snapshot(run)
    result = _cli(cache, f"hydra.run.dir={run}", "resume=auto")
    _ok(result)
    assert "already completed" in result.stdout + result.stderr
    assert _snapshot(run) == before


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_resume_from_a_truncated_last_checkpoint_is_one_clear_error(cache: Path, flat: Path) -> None:
    run = _copy(flat, "flat_truncated")
    info = json.loads((run / "run_info.json").read_text())
    (run / "run_info.json").write_text(json.dumps(info | {"status": "interrupted"}))
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    result = _cli(cache, f"hydra.run.dir={run}", "resume=auto")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("mmexp: error:")]
    assert f"{last} is damaged" in line and "delete it" in line
