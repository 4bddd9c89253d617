"""Callbacks of our own; everything else is a Lightning callback selected in conf/callbacks/."""

from __future__ import annotations

import logging

import lightning as L
from lightning.pytorch.callbacks import Callback

log = logging.getLogger("mmexp.train")
SHOWN = ("train/loss_epoch", "train/acc", "val/loss", "val/acc", "val/f1_macro")


class EpochSummary(Callback):
    """One plain log line per epoch, readable in CI logs, Slurm files and train.log (no progress bar)."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics  # validation of this epoch has already run
        shown = ", ".join(f"{k}={float(metrics[k]):.4f}" for k in SHOWN if k in metrics)
        log.info("epoch %d/%d: %s", trainer.current_epoch + 1, trainer.max_epochs, shown)
