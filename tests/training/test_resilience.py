"""A killed run resumes to the same result; SIGTERM leaves a checkpoint; writes are atomic; NaN stops."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest
import torch

from mmexp.core.errors import OutputError
from mmexp.core.io import write_json_atomic
from mmexp.run.checkpoint_io import AtomicCheckpointIO
from mmexp.train import train
from mmexp.training.resilience import TrainingDiverged
from tests.conftest import REPO, run_cli

COMMON = [
    "debug=fast",
    "trainer.limit_train_batches=6",
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
    "logger=csv",
    "model.dropout=0.3",
]


def _cli(tmp_path: Path, *args: str):
    env_args = [f"paths.cache_dir={tmp_path / 'cache'}", *args]
    return run_cli("mmexp.train", *env_args, cwd=tmp_path, extra_path=REPO)


@pytest.mark.slow  # the fast suite holds the stricter tests/faults/test_resume.py (mid-epoch, bit for bit)
def test_killed_run_resumes_to_the_same_metrics(tmp_path: Path) -> None:
    straight = _cli(tmp_path, *COMMON, f"hydra.run.dir={tmp_path / 'straight'}")
    assert straight.returncode == 0, straight.stderr[-2000:]
    run = tmp_path / "killed"
    killed = _cli(
        tmp_path,
        *COMMON,
        f"hydra.run.dir={run}",
        "+callbacks.kill._target_=tests.callbacks_for_tests.KillAtEpochStart",
        "+callbacks.kill.epoch=1",
    )
    assert killed.returncode == -signal.SIGKILL
    assert (run / "checkpoints" / "last.ckpt").exists() and not (run / "metrics.json").exists()
    resumed = _cli(tmp_path, f"hydra.run.dir={run}", "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    assert a["epochs"] == b["epochs"] == 3
    for key in ("test/acc", "test/f1_macro", "test/loss"):
        assert b["test"][key] == pytest.approx(a["test"][key], abs=1e-6), key
    assert json.loads((run / "run_info.json").read_text())["resumed"] == 1
    assert "model.dropout=0.3" in (run / ".hydra" / "first_run" / "overrides.yaml").read_text()
    assert "resume=auto" in (run / ".hydra" / "overrides.yaml").read_text()
    assert _epoch_rows(run) == pytest.approx(_epoch_rows(tmp_path / "straight"), abs=1e-6)  # nothing lost or doubled


def _epoch_rows(run: Path) -> list[float]:
    """epoch, step, train/acc and val/acc of every epoch-level row in the run's metrics.csv, flattened."""
    with (run / "csv" / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/acc") or r.get("val/acc")]
    return [float(r[k] or -1) for r in rows for k in ("epoch", "step", "train/acc", "val/acc")]


@pytest.mark.slow  # tests/faults/test_resume.py checks the same on every fast run (SIGTERM at step 8)
def test_sigterm_mid_epoch_writes_no_checkpoint_and_marks_the_run_interrupted(tmp_path: Path) -> None:
    """A mid-epoch checkpoint would resume to other numbers; resume=auto redoes the epoch instead."""
    run = tmp_path / "term"
    result = _cli(
        tmp_path,
        *COMMON,
        f"hydra.run.dir={run}",
        "+callbacks.kill._target_=tests.callbacks_for_tests.KillAtStep",
        "+callbacks.kill.step=3",
    )
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-2000:]
    assert "resume=auto" in result.stdout + result.stderr
    assert not (run / "checkpoints" / "last.ckpt").exists()  # epoch 0 (6 steps) never completed
    assert json.loads((run / "run_info.json").read_text())["status"] == "interrupted"


def test_atomic_checkpoint_survives_a_crash_mid_write(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OutputError, match=f"disk full while writing {path}"):
        io.save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert os.listdir(tmp_path) == ["last.ckpt"]  # no temp file left behind


def test_atomic_json_survives_a_crash_mid_write(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"a": 1})
    monkeypatch.setattr(json, "dumps", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        write_json_atomic(path, {"a": 2})
    assert path.read_text().strip().startswith("{") and '"a": 1' in path.read_text()


def test_nan_loss_stops_with_the_step(make_cfg) -> None:
    with pytest.raises(TrainingDiverged, match=r"NaN/inf at step \d+.*optimizer\.lr"):
        train(
            make_cfg(
                "debug=fast",
                "trainer.limit_train_batches=5",
                "optimizer.lr=1e30",
                "callbacks.stop_on_nonfinite_loss.check_every_n_steps=1",
                "scheduler=none",
            )
        )


def test_nan_loss_names_the_learning_rate_of_the_failing_step(make_cfg) -> None:
    """The check runs at epoch end, after cosine annealing took the rate to 0: the message must not say 0."""
    with pytest.raises(TrainingDiverged, match=r"learning rate then 1e\+30\)"):
        train(
            make_cfg(
                "debug=fast",
                "trainer.limit_train_batches=5",
                "trainer.max_epochs=1",
                "optimizer.lr=1e30",
                "callbacks.stop_on_nonfinite_loss.check_every_n_steps=1000",
                "scheduler=cosine",
            )
        )
