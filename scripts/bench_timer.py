"""Callbacks bench.py adds to a real `mmexp.train` run (via +callbacks.*); never imported by mmexp."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ThroughputTimer(Callback):
    """Training samples/s over the steps after ``warmup`` (first-step latency is measured separately).

    Validation inside the timed window is left out: the plain loop it is compared with does none.
    """

    def __init__(self, out: str, warmup: int = 5, process_start: float | None = None) -> None:
        self.out, self.warmup, self.process_start = Path(out), warmup, process_start
        self.samples = 0
        self.t0: float | None = None
        self.first_step_s: float | None = None
        self.val_seconds, self._val_start = 0.0, 0.0
        self._in_val = False
        self.cpu0, self.val_cpu, self._val_cpu_start = 0.0, 0.0, 0.0  # process CPU time, all threads

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.t0 is not None:
            _sync(pl_module.device)
            self._val_start, self._val_cpu_start = time.perf_counter(), time.process_time()
            self._in_val = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._in_val:
            _sync(pl_module.device)
            self.val_seconds += time.perf_counter() - self._val_start
            self.val_cpu += time.process_time() - self._val_cpu_start
            self._in_val = False

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == 0 and self.first_step_s is None and self.process_start:
            self.first_step_s = time.time() - self.process_start
        if trainer.global_step == self.warmup:
            _sync(pl_module.device)
            self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        if trainer.global_step >= self.warmup:
            self.samples += len(batch)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _sync(pl_module.device)
        seconds = time.perf_counter() - self.t0 - self.val_seconds if self.t0 is not None else float("nan")
        cpu_seconds = time.process_time() - self.cpu0 - self.val_cpu if self.t0 is not None else float("nan")
        self.out.write_text(
            json.dumps(
                {
                    "samples": self.samples,
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                    "samples_per_s": self.samples / seconds if self.t0 is not None else None,
                    "first_step_s": self.first_step_s,
                }
            )
        )


class EpochWallTimer(Callback):
    """Wall seconds of every training epoch *with* what follows it in the loop (validation, checkpoint writes,
    logging): from one epoch's start to the next one's, the last one up to the end of fit. mmexp's own
    ``EpochTimer`` leaves validation and checkpointing out; this measures what a sweep job waits for."""

    def __init__(self, out: str, label: Any = None) -> None:
        self.out, self.label = Path(out), label  # label: which variant of a sweep this job is
        self.marks: list[float] = []
        self.save_seconds: list[float] = []  # each trainer.save_checkpoint call (what ModelCheckpoint calls)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        save = trainer.save_checkpoint

        def timed(*args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            try:
                save(*args, **kwargs)
            finally:
                self.save_seconds.append(time.perf_counter() - start)

        trainer.save_checkpoint = timed  # type: ignore[method-assign]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _sync(pl_module.device)
        self.marks.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _sync(pl_module.device)
        self.marks.append(time.perf_counter())
        seconds = [b - a for a, b in itertools.pairwise(self.marks)]
        self.out.write_text(
            json.dumps({"epoch_seconds": seconds, "save_seconds": self.save_seconds, "label": self.label})
        )
