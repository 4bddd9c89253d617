"""Callbacks that only tests use, selected from the command line with +callbacks.<name>=..."""

from __future__ import annotations

import os
import signal
import traceback

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


# Ops whose result size or value the host must wait for on a GPU: each one is a device->host sync.
HOST_SYNC_OPS = (
    "_local_scalar_dense",
    "is_nonzero",
    "equal",
    "nonzero",
    "masked_select",
    "unique",
    "_unique",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "bincount",
    "histc",
)


def in_optimizer_step() -> bool:
    """torch.optim reads its step counter, which lives on the CPU even for CUDA parameters: no device sync.

    Only the innermost frames count: Lightning runs the whole training step inside ``optimizer.step``.
    """
    return any(f"torch{os.sep}optim{os.sep}" in frame.filename for frame in traceback.extract_stack()[-6:])


class HostSyncRecorder(Callback):
    """Records every host-syncing op run between a training batch's start and end, by global step.

    On the CPU nothing actually waits, but the same ops on a GPU would stall the host every step; a
    ``TorchDispatchMode`` sees them on any device, so CI can catch a per-step sync without a GPU.
    Put it last in the callback list, so the window holds the other callbacks' batch hooks too.
    """

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        recorder = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if func.overloadpacket.__name__ in HOST_SYNC_OPS and not in_optimizer_step():
                    recorder.syncs.setdefault(recorder.step, []).append(func.overloadpacket.__name__)
                return func(*args, **(kwargs or {}))

        self.mode, self.syncs, self.step = Mode(), {}, -1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.step = trainer.global_step
        self.mode.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.mode.__exit__(None, None, None)
