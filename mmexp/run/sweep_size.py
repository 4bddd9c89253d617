"""Tell a sweep's jobs how many of them run at once, so each can take its share of the cores."""

from __future__ import annotations

import os
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mmexp.core.resolvers import SWEEP_JOBS_ENV


def concurrent_jobs(config: DictConfig) -> int:
    """Jobs a launcher that starts a whole batch at once (``submitit_local``) runs side by side.

    The basic sweeper's batch is every combination of the command line's sweeps (cut at its
    ``max_batch_size``); Optuna's is its ``n_jobs`` trials.
    """
    sweeper = config.hydra.sweeper
    if sweeper.get("n_jobs"):
        return int(sweeper.n_jobs)
    jobs = 1
    for override in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        if override.is_discrete_sweep():
            jobs *= sum(1 for _ in override.sweep_string_iterator())
    return min(jobs, sweeper.get("max_batch_size") or jobs)


class CountSweepJobs(Callback):
    """Runs in the sweep's own process before any job starts; jobs inherit the environment variable."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ[SWEEP_JOBS_ENV] = str(concurrent_jobs(config))
