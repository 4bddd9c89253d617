"""Callbacks that never lose a run: a last checkpoint on SIGTERM/Ctrl-C, exact resumes, NaN stops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from mmexp.core.errors import ConfigError


class TrainingDiverged(ConfigError):
    """The loss became NaN or infinite; the message names the step and what to change."""


class RngStateInCheckpoint(Callback):
    """Save and restore the torch/numpy/python RNG states, so a resumed run continues bit for bit
    (shuffling and dropout of the next epoch draw the same numbers as in an uninterrupted run)."""

    def state_dict(self) -> dict[str, Any]:
        states = _collect_rng_states(include_cuda=torch.cuda.is_available())
        kind, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = (kind, keys.tolist(), pos, has_gauss, cached)  # plain lists: loads with weights_only
        return {"rng": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = dict(state_dict["rng"])
        kind, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
        _set_rng_states(states)


class CheckpointOnInterrupt(Callback):
    """On SIGTERM (Slurm preemption, `kill`) or Ctrl-C, write checkpoints/last.ckpt before exiting.

    Lightning turns SIGTERM into SIGTERMException at the next batch; both reach ``on_exception``.
    """

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        callback = trainer.checkpoint_callback
        interrupted = isinstance(exception, (SIGTERMException, KeyboardInterrupt))
        if not interrupted or not isinstance(callback, ModelCheckpoint):
            return
        if trainer.state.fn != "fit" or callback.dirpath is None:
            return
        trainer.save_checkpoint(Path(callback.dirpath) / "last.ckpt")


class StopOnNonFiniteLoss(Callback):
    """Stop at the first NaN/inf training loss, naming the step.

    The check stays on the device and is read every ``check_every_n_steps`` steps (and at epoch end),
    so it never forces a host sync on every step.
    """

    def __init__(self, *, check_every_n_steps: int = 25) -> None:
        self.every = check_every_n_steps
        self.first_bad: torch.Tensor | None = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        step = torch.tensor(trainer.global_step, device=loss.device)
        if self.first_bad is None or self.first_bad.device != loss.device:
            self.first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        bad_now = ~torch.isfinite(loss.detach()) & (self.first_bad < 0)
        self.first_bad = torch.where(bad_now, step, self.first_bad)
        if trainer.global_step % self.every == 0:
            self._raise_if_bad(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._raise_if_bad(pl_module)

    def _raise_if_bad(self, pl_module: L.LightningModule) -> None:
        if self.first_bad is None or int(self.first_bad) < 0:
            return
        lr = pl_module.trainer.optimizers[0].param_groups[0]["lr"] if pl_module.trainer.optimizers else "?"
        raise TrainingDiverged(
            f"the training loss became NaN/inf at step {int(self.first_bad)} (learning rate then {lr}). "
            "Likely causes: a learning rate too high (lower optimizer.lr), exploding gradients "
            "(set trainer.gradient_clip_val=1.0), or bf16/fp16 overflow (use trainer.precision=32-true)"
        )
