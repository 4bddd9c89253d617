"""Tell a sweep's jobs which keys the sweep varies, so each job's name shows those and nothing else."""

from __future__ import annotations

import json
import os
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mmexp.core.resolvers import SWEPT_KEYS_ENV


def swept_keys(config: DictConfig) -> list[str]:
    """The keys a sweep varies: the command line's sweeps (``fusion=concat,gated``, ``range(3)``) and the
    sweeper's own search space (``hydra.sweeper.params``: Optuna's ``interval(...)``, ``choice(...)``)."""
    overrides = [str(o) for o in config.hydra.overrides.task]
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    overrides += [f"{key}={value}" for key, value in params.items()]
    parsed = OverridesParser.create().parse_overrides(overrides)
    return list(dict.fromkeys(o.key_or_group for o in parsed if o.is_sweep_override()))


class NameSweepJobs(Callback):
    """Runs in the sweep's process before any job starts; the jobs (in this process or launched from it)
    read the keys from the environment when they resolve their dir name and dashboard tags."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ[SWEPT_KEYS_ENV] = json.dumps(swept_keys(config))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.pop(SWEPT_KEYS_ENV, None)  # a later single run in this process is not a sweep job
