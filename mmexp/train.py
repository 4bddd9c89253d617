"""Hydra entry point: ``python -m mmexp.train <overrides>``; the job itself is ``mmexp.app.train``.

Heavy imports (torch, lightning) happen inside the job so ``--help`` and config errors are fast.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from mmexp.app.cli import command_line, in_multirun, run_job
from mmexp.app.train import train
from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)

__all__ = ["main", "train"]


@command_line  # quotes run dirs (they hold '=') for Hydra's parser; exits without a last GC
@hydra.main(version_base="1.3", config_path="pkg://mmexp.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """CLI: returns the optimized metric so Hydra sweepers (e.g. Optuna) can use it.

    A failing job is recorded as failed in its run_info.json; in a sweep the other jobs go on
    (the job returns NaN, which Optuna records as a failed trial).
    """
    run_dir = Path(cfg.paths.run_dir)
    resume = (
        f"continue with `python -m mmexp.train hydra.run.dir={run_dir} resume=auto` "
        "(it redoes the interrupted epoch from the checkpoint of the last completed one)"
    )
    no_metrics: dict[str, Any] = {}  # a failed sweep job: main returns NaN
    metrics = run_job(lambda: train(cfg), run_dir=run_dir, on_sweep_failure=no_metrics, on_interrupt=resume)
    if not metrics:
        return float("nan")
    value = OmegaConf.select(cfg, "optimized_metric")
    from mmexp.run.end_block import log_run_end

    log_run_end(run_dir, metrics, optimized=value, sweep_job=in_multirun())  # its dir, key metrics, next commands
    return metrics["val"].get(value) if value else None


class _CallableModule(types.ModuleType):
    """``mmexp.train(...)`` is the Python API's ``mmexp.fit(...)``: ``mmexp.train`` is this module whichever
    is imported first (importing a submodule sets the package's attribute), so the module itself is callable."""

    def __call__(self, overrides: Sequence[str] = (), **options: Any) -> Any:
        from mmexp.api import fit

        return fit(overrides, **options)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    main()
