"""What a terminal shows during training: a Rich bar that agrees with mmexp's log lines, and a model summary."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, RichProgressBar

from mmexp.core.progress import Redirected, redirect_log_handlers, restore
from mmexp.training.lightning_private import format_summary_table

log = logging.getLogger("mmexp.train")
LEFT_OUT = ("Total Flops", "Modules in train mode", "Modules in eval mode")  # summary rows not shown


class EpochProgressBar(RichProgressBar):
    """Lightning's Rich bar, with epochs numbered as mmexp's log lines number them ("Epoch 1/2", not "0/1"),
    and log lines printed above the bar instead of glued onto its end."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._redirected: Redirected = []

    def _get_train_description(self, current_epoch: int) -> str:
        description = super()._get_train_description(current_epoch + 1)
        total = self.trainer.max_epochs
        return description.replace(f"/{total - 1}", f"/{total}", 1) if total is not None else description

    def _init_progress(self, trainer: L.Trainer) -> None:
        super()._init_progress(trainer)
        if self.progress is not None and not self._redirected:
            self._redirected = redirect_log_handlers()  # log lines print above the bar, not glued onto it

    def _stop_progress(self) -> None:
        super()._stop_progress()
        restore(self._redirected)
        self._redirected = []


class SummaryWithoutFlops(ModelSummary):
    """Lightning's model summary without its FLOPs, which it can only count from an ``example_input_array``
    (mmexp's models take a ``Batch``, so it printed "0"); metrics.json has the measured FLOPs per sample. The
    counts of modules in train / eval mode go too: a frozen backbone made them "307 modules in eval mode", which
    reads like a fault and is not one."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        columns = [column for column in summary_data if column[0] != "FLOPs"]
        table = format_summary_table(
            total_parameters, trainable_parameters, model_size, total_training_modes, total_flops, *columns
        )
        kept = [line for line in table.splitlines() if not line.rstrip().endswith(LEFT_OUT)]
        log.info("\n%s\n(FLOPs per sample: metrics.json, complexity.flops_per_sample)", "\n".join(kept))
