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

from mmexp.core.errors import UNRESOLVABLE, ConfigError, RunDirInUse, unresolvable_config
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
    A finished run is left as it is: the command says so and exits 0. Every command that writes a dir (train,
    eval, predict, export) claims it here; ``reads`` names the checkpoint key of those that only read a training
    run, whose dir (and anything inside it) is refused before the claim, so a refused command changes no byte.
    """

    def __init__(self, reads: str | None = None) -> None:
        self.reads = reads  # the config key of a checkpoint whose training run the command only reads (eval, ...)
        self.claims: list[Claim] = []

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        claim = self._claim(config, "hydra.run.dir", frozenset())
        if claim and claim.completed:
            claim.release()
            print(f"mmexp: run {claim.run_dir} already completed; nothing to do (results in its metrics.json)")
            sys.exit(0)
        if claim and claim.resumed:
            keep_first_run_files(claim.run_dir / _hydra_subdir(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, "hydra.sweep.dir", frozenset(), command_suffix=" -m")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
            return  # a single run was claimed in on_run_start
        hydra_made = frozenset({_hydra_subdir(config), f"{config.hydra.job.name}.log"})
        self._claim(config, "hydra.runtime.output_dir", hydra_made)  # a finished job: train() skips it

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.claims and self.claims[-1].run_dir == Path(str(config.hydra.runtime.output_dir)):
            self.claims.pop().release()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()

    def _claim(
        self, config: DictConfig, dir_key: str, expected: frozenset[str], command_suffix: str = ""
    ) -> Claim | None:
        """Claim the dir at ``dir_key`` for this command, or exit with one line and nothing written.

        Every failure exits here: Hydra would only warn about an exception raised in a callback and then write
        into the dir anyway.
        """
        if process_rank() != 0:
            return None
        raw = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        assert isinstance(raw, list)
        try:
            overrides = [str(o) for o in config.hydra.overrides.task]  # resolved: a ${...} loop ends here
            run_dir = Path(str(OmegaConf.select(config, dir_key)))
            resume = config.get("resume") == "auto"
            if resume and dir_key != "hydra.runtime.output_dir":
                check_resume_names_its_dir(config, dir_key)
            if self.reads and dir_key == "hydra.run.dir":  # a sweep job's failure is the job's, not the sweep's
                check_outside_source_run(run_dir, OmegaConf.select(config, self.reads), self.reads)
            claim = claim_run_dir(
                run_dir,
                command=str(config.hydra.job.config_name) + command_suffix,
                overrides=overrides,
                resume=resume,
                expected=expected,
            )
        except ConfigError as e:
            sys.exit(f"mmexp: error: {e}")
        except UNRESOLVABLE as e:
            sys.exit(f"mmexp: error: {unresolvable_config(e, [str(o) for o in raw])}")
        self.claims.append(claim)
        return claim

    def _release(self) -> None:
        while self.claims:
            self.claims.pop().release()


def check_resume_names_its_dir(config: DictConfig, dir_key: str) -> None:
    """``resume=auto`` continues the run in the dir the command names; Hydra's default is a new timestamped dir,
    where there is nothing to resume (and a fresh run would start silently)."""
    given = {str(o).lstrip("+~").partition("=")[0] for o in config.hydra.overrides.hydra}
    if dir_key not in given:
        example = "outputs/runs/<run>" if dir_key == "hydra.run.dir" else "outputs/multirun/<sweep>"
        raise ConfigError(
            f"resume=auto needs {dir_key}=<the dir of the run to continue>; without it the command would start a "
            f"new run in a new dir, with nothing to resume (e.g. {dir_key}={example} resume=auto)"
        )


def check_outside_source_run(run_dir: Path, ckpt_path: Any, key: str) -> None:
    """A command that reads a training run (eval, predict, export) never writes into it, not even a subfolder;
    a checkpoint that is missing or outside its run is refused here too, before any dir is made."""
    if ckpt_path is None:  # ??? in eval.yaml, predict.yaml, export.yaml
        raise ConfigError(f"{key} is required: add {key}=<run>/checkpoints/best.ckpt to the command line")
    from mmexp.evaluation.evaluate import locate_run  # imported by every command that reads a run

    _, source = locate_run(str(ckpt_path))
    if run_dir.resolve().is_relative_to(source):
        raise RunDirInUse(
            f"run dir {run_dir} is the training run of {key}={ckpt_path} or inside it; that run is only read "
            "(leave hydra.run.dir unset, or give a new dir outside it)"
        )


def _hydra_subdir(config: DictConfig) -> str:
    return str(OmegaConf.select(config, "hydra.output_subdir") or ".hydra")


def keep_first_run_files(hydra_dir: Path) -> None:
    """Copy the run's original ``.hydra/*.yaml`` into ``.hydra/first_run/`` (once: later resumes keep them)."""
    keep = hydra_dir / FIRST_RUN
    if hydra_dir.is_dir() and not keep.exists():
        keep.mkdir()
        for f in hydra_dir.glob("*.yaml"):
            shutil.copy2(f, keep / f.name)
