"""Callbacks that only tests use, selected from the command line with +callbacks.<name>=..."""

from __future__ import annotations

import os
import signal

from lightning.pytorch.callbacks import Callback


class KillAtEpochStart(Callback):
    """Send ``signal_name`` to this process when epoch ``epoch`` (0-based) starts: a crash or a preemption.

    Only in a fresh run, not in one resumed from a checkpoint (which starts at that same epoch).
    """

    def __init__(self, epoch: int = 1, signal_name: str = "SIGKILL") -> None:
        self.epoch, self.signum = epoch, getattr(signal, signal_name)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and trainer.ckpt_path is None:
            os.kill(os.getpid(), self.signum)


class KillAtStep(Callback):
    """Send ``signal_name`` to this process after training step ``step``."""

    def __init__(self, step: int = 3, signal_name: str = "SIGTERM") -> None:
        self.step, self.signum = step, getattr(signal, signal_name)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
