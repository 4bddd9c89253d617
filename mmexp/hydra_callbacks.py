"""Hydra callbacks: checks that must run before Hydra writes anything into the run dir."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

FIRST_RUN = "first_run"  # .hydra/first_run/: the files of the run's original command, kept across resumes


class ProtectRunDir(Callback):
    """Refuse ``hydra.run.dir=<a finished or killed run>`` before Hydra rewrites its ``.hydra/`` files.

    With ``resume=auto`` the dir is the run's own: its original ``.hydra/`` files are kept in
    ``.hydra/first_run/`` before Hydra overwrites them with the resuming command's.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))
        if not (run_dir / "run_info.json").exists():
            return
        hydra_dir = run_dir / str(OmegaConf.select(config, "hydra.output_subdir") or ".hydra")
        if config.get("resume") == "auto":
            keep = hydra_dir / FIRST_RUN
            if hydra_dir.is_dir() and not keep.exists():
                keep.mkdir()
                for f in hydra_dir.glob("*.yaml"):
                    shutil.copy2(f, keep / f.name)
            return
        sys.exit(f"mmexp: error: run dir {run_dir} already holds a run; refusing to overwrite it "
                 "(use a new hydra.run.dir, or resume=auto to continue it)")
