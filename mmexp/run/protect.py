"""Hydra callbacks: checks that must run before Hydra writes anything into the run dir."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mmexp.core.errors import ConfigError
from mmexp.run.claim import Claim, claim_run_dir

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
    """Claim the run dir (``mmexp.run.claim``) before Hydra writes ``.hydra/`` and the log into it.

    A single run is claimed in ``on_run_start``, before Hydra touches its dir; a sweep claims its sweep dir
    in ``on_multirun_start`` and each job its own dir in ``on_job_start`` (Hydra has written only that job's
    ``.hydra/`` and log by then, in a dir inside the claimed sweep dir). DDP ranks > 0 re-run the command in
    rank zero's run dir, by design, and claim nothing. With ``resume=auto`` on the run's own dir its original
    ``.hydra/`` files are kept in ``.hydra/first_run/`` before Hydra overwrites them with the resuming command's.
    A finished run is left as it is: the command says so and exits 0.
    """

    def __init__(self) -> None:
        self.claims: list[Claim] = []

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        claim = self._claim(config, str(OmegaConf.select(config, "hydra.run.dir")), frozenset())
        if claim and claim.completed:
            claim.release()
            print(f"mmexp: run {claim.run_dir} already completed; nothing to do (results in its metrics.json)")
            sys.exit(0)
        if claim and claim.resumed:
            keep_first_run_files(claim.run_dir / _hydra_subdir(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = str(OmegaConf.select(config, "hydra.sweep.dir"))
        self._claim(config, sweep_dir, frozenset(), command_suffix=" -m")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
            return  # a single run was claimed in on_run_start
        hydra_made = frozenset({_hydra_subdir(config), f"{config.hydra.job.name}.log"})
        self._claim(config, str(config.hydra.runtime.output_dir), hydra_made)  # a finished job: train() skips it

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.claims and self.claims[-1].run_dir == Path(str(config.hydra.runtime.output_dir)):
            self.claims.pop().release()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()

    def _claim(
        self, config: DictConfig, run_dir: str, expected: frozenset[str], command_suffix: str = ""
    ) -> Claim | None:
        """Claim ``run_dir`` for this command, or exit with one line and nothing written."""
        if process_rank() != 0:
            return None
        command = str(config.hydra.job.config_name) + command_suffix
        try:
            claim = claim_run_dir(
                Path(run_dir),
                command=command,
                overrides=[str(o) for o in config.hydra.overrides.task],
                resume=config.get("resume") == "auto",
                expected=expected,
            )
        except ConfigError as e:
            sys.exit(f"mmexp: error: {e}")
        self.claims.append(claim)
        return claim

    def _release(self) -> None:
        while self.claims:
            self.claims.pop().release()


def _hydra_subdir(config: DictConfig) -> str:
    return str(OmegaConf.select(config, "hydra.output_subdir") or ".hydra")


def keep_first_run_files(hydra_dir: Path) -> None:
    """Copy the run's original ``.hydra/*.yaml`` into ``.hydra/first_run/`` (once: later resumes keep them)."""
    keep = hydra_dir / FIRST_RUN
    if hydra_dir.is_dir() and not keep.exists():
        keep.mkdir()
        for f in hydra_dir.glob("*.yaml"):
            shutil.copy2(f, keep / f.name)
