"""Checkpoint files: written atomically, so a crash never leaves half a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mmexp.core.io import write_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, saving through ``write_atomic`` (temp file, fsync, rename)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any | None = None
    ) -> None:
        write_atomic(Path(path), lambda f: torch.save(checkpoint, f))
