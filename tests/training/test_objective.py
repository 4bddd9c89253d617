"""The training step's hot path: no host syncs per step, and deferred metrics equal per-step ones."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import pytest
import torch

import mmexp.training.build
from mmexp.data.task import Task
from mmexp.train import train
from mmexp.training.metrics import EpochPredictions, TaskMetrics
from mmexp.training.objective import Objective
from tests.callbacks_for_tests import HostSyncRecorder


def test_training_steps_never_sync_the_host_and_epoch_metrics_are_logged_once(
    make_cfg, tmp_path: Path, monkeypatch, caplog
) -> None:
    """Metrics, logging, the NaN check and checkpointing do their per-step work on the device; the train and
    val metrics still reach metrics.csv and the epoch summary once per epoch, with the epoch's own values.

    BoW text: the LSTM/GRU encoders pack sequences, which needs lengths on the host (documented cost).
    """
    recorder = HostSyncRecorder()
    build_callbacks = mmexp.training.build.build_callbacks
    monkeypatch.setattr(mmexp.training.build, "build_callbacks", lambda *a, **k: [*build_callbacks(*a, **k), recorder])
    with caplog.at_level(logging.INFO, logger="mmexp.train"):
        train(
            make_cfg(
                "text_encoder=bow",
                "logger=csv",
                "trainer.max_epochs=2",
                "+trainer.limit_train_batches=6",
                "+trainer.limit_val_batches=2",
                "+trainer.limit_test_batches=2",
                "trainer.log_every_n_steps=2",
                "callbacks.stop_on_nonfinite_loss.check_every_n_steps=5",
            )
        )
    checked = {5, 10}  # the NaN check reads its flag every 5 steps, by design
    assert recorder.step == 11, "the recorder did not see every step"
    assert {step: ops for step, ops in recorder.syncs.items() if step + 1 not in checked} == {}

    with next((tmp_path / "run").rglob("metrics.csv")).open() as f:
        rows = list(csv.DictReader(f))
    logged = {"train/acc": 2, "train/f1_macro": 2, "val/acc": 2, "val/f1_macro": 2}  # one per epoch, no extra point
    for name, times in logged.items():
        values = [float(row[name]) for row in rows if row.get(name)]
        assert len(values) == times and all(0.0 <= v <= 1.0 for v in values), name
    summary = [float(m) for m in re.findall(r"epoch \d/2: .*train/acc=([\d.]+)", caplog.text)]
    assert summary == pytest.approx([float(r["train/acc"]) for r in rows if r.get("train/acc")], abs=1e-4)


@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel"])
def test_epoch_predictions_give_the_per_step_metrics(task: str) -> None:
    torch.manual_seed(0)
    objective = Objective(Task(name=task), 2 if task == "binary" else 5)
    per_step, deferred, pending = TaskMetrics(objective, "x/"), TaskMetrics(objective, "x/"), EpochPredictions()
    thresholds = torch.rand(objective.n_thresholds) if objective.n_thresholds else None
    for _ in range(7):
        probs = objective.probabilities(torch.randn(13, objective.num_classes))
        k = objective.num_classes
        labels = torch.randint(0, 2, (13, k)).float() if task == "multilabel" else torch.randint(0, k, (13,))
        per_step.update(probs, labels, thresholds)
        pending.add(probs, labels)
    epoch = pending.flush()
    assert epoch is not None and pending.flush() is None
    deferred.update(*epoch, thresholds)
    expected, got = per_step.compute(), deferred.compute()
    assert expected.keys() == got.keys() and len(got) >= 7
    for name in expected:
        assert torch.allclose(expected[name], got[name]), name
