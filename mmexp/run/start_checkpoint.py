"""``train``'s ``ckpt_path`` (start fit from a checkpoint): checked before training starts, so a missing file or
one that is not a plain-tensor checkpoint is one line, not Lightning's traceback from inside ``fit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmexp.core.errors import ConfigError


def check_start_checkpoint(value: Any) -> Path | None:
    """The checkpoint file ``ckpt_path`` names (None when unset); loaded as Lightning will load it (tensors and
    plain values only: ``weights_only``), so a crafted pickle is refused here and never unpickled."""
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={value}: no such file; give a checkpoint to start from "
            "(e.g. outputs/runs/<run>/checkpoints/last.ckpt), or leave ckpt_path unset"
        )
    import pickle

    try:
        _load(path)
    except pickle.UnpicklingError as e:
        reason = _unpickler_reason(str(e))
        raise ConfigError(
            f"ckpt_path={value}: holds objects other than tensors and plain values ({reason}); refusing to load it "
            "(a checkpoint written by mmexp.train holds only those)"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        detail = (str(e).strip().splitlines() or ["no detail"])[0][:200]
        raise ConfigError(f"ckpt_path={value}: not a readable checkpoint ({type(e).__name__}: {detail})") from None
    return path


def _unpickler_reason(message: str) -> str:
    """The line of torch's long refusal that says what was refused (``Unsupported global: GLOBAL os.system``)."""
    text = message.split("WeightsUnpickler error:", 1)[-1].strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "no detail")
    return first.split(" was not an allowed global")[0][:200]


def _load(path: Path) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # mmap: no second copy in memory
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            torch.load(path, map_location="cpu", weights_only=True)  # a file in torch's legacy (non-zip) format
