"""Tie each Optuna trial to its run dir both ways: the trial's user attr ``run_dir``, the run's ``optuna_trial.json``.

The Hydra Optuna sweeper asks the study for trials and launches one job per trial with the trial's sampled
values as overrides; the job is never told its trial. Each job finds it in the study: the running trial whose
values are among the job's overrides and that no run dir has taken yet (under the database's lock, so jobs
started at once take different trials; trials with identical values are interchangeable).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mmexp.core.io import write_json_atomic
from mmexp.run.optuna_storage import STUDY_ENV, open_storage, shown_storage, storage_lock
from mmexp.run.protect import process_rank

log = logging.getLogger("mmexp.sweep")
RUN_DIR_ATTR = "run_dir"  # the trial's user attr naming its run dir
TRIAL_FILE = "optuna_trial.json"  # in the run dir: study, storage, trial number, sampled values


def take_trial(storage: str, study: str, overrides: set[str], run_dir: Path) -> dict[str, Any] | None:
    """Mark the running trial these overrides were sampled for with ``run_dir``; what the run dir records of it."""
    with storage_lock(storage):
        backend = open_storage(storage)
        import optuna

        study_id = backend.get_study_id_from_name(study)
        free = [
            t
            for t in backend.get_all_trials(study_id, deepcopy=False)
            if t.state == optuna.trial.TrialState.RUNNING
            and RUN_DIR_ATTR not in t.user_attrs
            and {f"{k}={v}" for k, v in t.params.items()} <= overrides  # the sweeper's own override format
        ]
        if not free:
            return None
        trial = min(free, key=lambda t: t.number)
        trial_id = backend.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        backend.set_trial_user_attr(trial_id, RUN_DIR_ATTR, str(run_dir))
    return {"study": study, "storage": shown_storage(storage), "trial": trial.number, "params": dict(trial.params)}


class RecordTrial(Callback):
    """In each sweep job, after its run dir is claimed (``ProtectRunDir``) and before training starts."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        target = os.environ.get(STUDY_ENV)
        if not target or process_rank() != 0 or OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
            return
        study = json.loads(target)
        run_dir = Path(str(config.hydra.runtime.output_dir))
        overrides = {str(o) for o in config.hydra.overrides.task}
        try:
            record = take_trial(study["storage"], study["study"], overrides, run_dir)
        except Exception as e:  # the link is a convenience: the trial itself still runs and is told its value
            log.warning("could not record the optuna trial of %s (%s: %s)", run_dir, type(e).__name__, e)
            return
        if record is None:
            log.warning("no running trial of optuna study %s matches %s; not recorded", study["study"], run_dir)
            return
        write_json_atomic(run_dir / TRIAL_FILE, record)
