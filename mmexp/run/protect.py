"""Hydra callbacks: checks that must run before Hydra writes anything into the run dir."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mmexp.core.errors import run_dir_in_use

FIRST_RUN = "first_run"  # .hydra/first_run/: the files of the run's original command, kept across resumes


def process_rank() -> int:
    """This process's global rank from the launcher's environment, as Lightning reads it (0 when not set).

    Read here without importing Lightning, so config errors stay fast.
    """
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


class ProtectRunDir(Callback):
    """Refuse ``hydra.run.dir=<a finished or killed run>`` before Hydra rewrites its ``.hydra/`` files.

    With ``resume=auto`` the dir is the run's own: its original ``.hydra/`` files are kept in
    ``.hydra/first_run/`` before Hydra overwrites them with the resuming command's.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))
        if process_rank() != 0 or not (run_dir / "run_info.json").exists():
            return  # DDP ranks > 0 re-run the command in rank zero's run dir, by design
        hydra_dir = run_dir / str(OmegaConf.select(config, "hydra.output_subdir") or ".hydra")
        if config.get("resume") == "auto":
            keep = hydra_dir / FIRST_RUN
            if hydra_dir.is_dir() and not keep.exists():
                keep.mkdir()
                for f in hydra_dir.glob("*.yaml"):
                    shutil.copy2(f, keep / f.name)
            return
        sys.exit(f"mmexp: error: {run_dir_in_use(run_dir)}")
