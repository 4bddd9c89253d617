"""Callbacks of our own; everything else is a Lightning callback selected in conf/callbacks/."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from mmexp.core.model_config import STAMP_KEY

log = logging.getLogger("mmexp.train")
SHOWN = ("train/loss_epoch", "train/acc", "val/loss", "val/acc", "val/f1_macro")


class EpochSummary(Callback):
    """One plain log line per epoch, readable in CI logs, Slurm files and train.log (no progress bar).

    Printed once the epoch's metrics are final: Lightning computes epoch-level values after the
    ``on_train_epoch_end`` hooks (the model logs its train metrics in its own), so the line for an epoch
    comes at the next epoch's start, or when training ends.
    """

    def __init__(self) -> None:
        self._finished: int | None = None  # 1-based number of an epoch whose line is due

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finished = trainer.current_epoch + 1

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print(trainer)

    def _print(self, trainer: L.Trainer) -> None:
        if self._finished is None or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        shown = ", ".join(f"{k}={float(metrics[k]):.4f}" for k in SHOWN if k in metrics)
        log.info("epoch %d/%d: %s", self._finished, trainer.max_epochs, shown)
        self._finished = None


class EpochTimer(Callback):
    """Wall seconds of each training epoch with its validation left out: the training cost in metrics.json.

    Only epochs run by this process are timed (a resumed run times the epochs after the resume).
    """

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start: float | None = None
        self._val_start: float | None = None
        self._val_seconds = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._val_seconds = time.perf_counter(), 0.0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is not None:  # validation inside a training epoch
            self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_start is not None:
            self._val_seconds += time.perf_counter() - self._val_start
            self._val_start = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start - self._val_seconds)
            self._start = None


class ModelConfigStamp(Callback):
    """Writes the stamp of the run's model-defining config into every checkpoint (mmexp.core.model_config), so a
    command rebuilding the run from a config.yaml can tell whether it is the one these weights were trained with."""

    def __init__(self, stamp: dict[str, Any]) -> None:
        self.stamp = stamp

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[STAMP_KEY] = self.stamp
