"""Continue a killed run in its own directory (``resume=auto``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmexp.core.errors import ConfigError


def resume_checkpoint(cfg: DictConfig) -> Path | None:
    """``resume=auto``: the run dir's last.ckpt when there is one (a killed run), else None."""
    if cfg.get("resume") not in (None, "auto"):
        raise ConfigError(f"resume={cfg.resume!r} is invalid: expected auto (continue the run in hydra.run.dir)")
    last = Path(cfg.paths.run_dir) / "checkpoints" / "last.ckpt"
    return last if cfg.get("resume") == "auto" and last.exists() else None


def forget_logged_after_checkpoint(loggers: list[Any], checkpoint: Path) -> None:
    """A killed run logged steps past its last checkpoint; the resumed run logs them again."""
    import torch

    from mmexp.training.csv_logger import ContinuingCSVLogger

    step = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["global_step"]
    for logger in loggers:
        if isinstance(logger, ContinuingCSVLogger):
            logger.drop_rows_from_step(step)
