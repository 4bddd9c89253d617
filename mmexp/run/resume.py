"""Continue a killed run in its own directory (``resume=auto``).

A run resumes from ``checkpoints/last.ckpt``, written at the end of every epoch (never mid-epoch), so a
run killed mid-epoch redoes that epoch from its start with the RNG states saved at its start: the result
equals an uninterrupted run's. A run killed before its first checkpoint starts over in its dir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmexp.core.config_io import load_config
from mmexp.core.errors import ConfigError
from mmexp.run.protect import FIRST_RUN


def resume_requested(cfg: DictConfig) -> bool:
    """``resume=auto`` (continue the run in hydra.run.dir, or start it there); anything else is a config error."""
    if cfg.get("resume") not in (None, "auto"):
        raise ConfigError(f"resume={cfg.resume!r} is invalid: expected auto (continue the run in hydra.run.dir)")
    return cfg.get("resume") == "auto"


def run_config(run_dir: Path) -> DictConfig | None:
    """The config a resumed run continues with: its config.yaml, or its first command's when it was killed
    before writing one; None for a dir that holds no run yet. A run dir moved since keeps writing where it is."""
    for path in (run_dir / "config.yaml", run_dir / ".hydra" / FIRST_RUN / "config.yaml"):
        if path.is_file():
            return _relocated(load_config(path), run_dir)
    return None


def _relocated(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """config.yaml holds resolved paths: the ones inside the run's old dir now point into ``run_dir``."""
    old = OmegaConf.select(cfg, "paths.run_dir", throw_on_resolution_failure=False)
    if not isinstance(old, str) or Path(old) == run_dir:
        return cfg

    def move(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        if isinstance(value, str) and (value == old or value.startswith(old.rstrip("/") + "/")):
            return str(run_dir) + value[len(old.rstrip("/")) :]
        return value

    return OmegaConf.create(move(OmegaConf.to_container(cfg, resolve=False)))


def resume_checkpoint(run_dir: Path) -> Path | None:
    """The run dir's last.ckpt when there is one (a killed run), else None."""
    last = run_dir / "checkpoints" / "last.ckpt"
    return last if last.exists() else None


def checkpoint_step(checkpoint: Path) -> int:
    """The global step a checkpoint was saved at; one clear error when the file is damaged (truncated, not a
    checkpoint), read before anything in the run dir changes."""
    import torch

    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except (OSError, RuntimeError, EOFError, KeyError, ValueError, TypeError) as e:
        raise ConfigError(
            f"{checkpoint} is damaged ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}), "
            "so the run cannot resume from it; delete it to start the run over in its dir, "
            "or give a new hydra.run.dir"
        ) from None


def completed_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of a run that already completed in ``run_dir`` (resuming it changes nothing), else None."""
    try:
        if json.loads((run_dir / "run_info.json").read_text()).get("status") != "completed":
            return None
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError, AttributeError):
        return None
    return metrics if isinstance(metrics, dict) else None


def forget_logged_after(loggers: list[Any], step: int) -> None:
    """A killed run logged steps past its last checkpoint (all of them, without one); the resumed run logs
    them again."""
    from mmexp.training.csv_logger import ContinuingCSVLogger

    for logger in loggers:
        if isinstance(logger, ContinuingCSVLogger):
            logger.drop_rows_from_step(step)
