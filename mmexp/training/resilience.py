"""Callbacks that never lose a run: exact resumes (RNG states in the checkpoint) and NaN stops.

An interrupted run (SIGTERM, Ctrl-C) writes no checkpoint mid-epoch: ``resume=auto`` redoes the epoch from
the last completed one's last.ckpt, which is what makes the result equal an uninterrupted run's.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from mmexp.core.errors import ConfigError
from mmexp.training.lightning_private import collect_rng_states, set_rng_states


class TrainingDiverged(ConfigError):
    """The loss became NaN or infinite; the message names the step and what to change."""


class RngStateInCheckpoint(Callback):
    """Save and restore the torch/numpy/python RNG states, so a resumed run continues bit for bit
    (shuffling and dropout of the next epoch draw the same numbers as in an uninterrupted run)."""

    def state_dict(self) -> dict[str, Any]:
        states = collect_rng_states(include_cuda=torch.cuda.is_available())
        kind, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = (kind, keys.tolist(), pos, has_gauss, cached)  # plain lists: loads with weights_only
        return {"rng": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = dict(state_dict["rng"])
        kind, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
        set_rng_states(states)


class StopOnNonFiniteLoss(Callback):
    """Stop at the first NaN/inf training loss, naming the step.

    The check stays on the device and is read every ``check_every_n_steps`` steps (and at epoch end),
    so it never forces a host sync on every step.
    """

    def __init__(self, *, check_every_n_steps: int = 25) -> None:
        self.every = check_every_n_steps
        self.first_bad: torch.Tensor | None = None
        self.lrs: dict[int, float] = {}  # learning rate of each step since the last check (host values: free)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        if trainer.optimizers:  # read before the scheduler steps: the rate this step trained with
            self.lrs[trainer.global_step] = trainer.optimizers[0].param_groups[0]["lr"]
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
            self.lrs.clear()
            return
        lr = self.lrs.get(int(self.first_bad), "?")
        raise TrainingDiverged(
            f"the training loss became NaN/inf at step {int(self.first_bad)} (learning rate then {lr}). "
            "Likely causes: a learning rate too high (lower optimizer.lr), exploding gradients "
            "(set trainer.gradient_clip_val=1.0), or bf16/fp16 overflow (use trainer.precision=32-true)"
        )
