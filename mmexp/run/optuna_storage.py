"""Let several Optuna sweeper processes share one study: create it once, before any of them asks for trials."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("mmexp.sweep")


def storage_lock(storage: str) -> AbstractContextManager[Any]:
    """A file lock beside a SQLite database; other databases (PostgreSQL, MySQL) serialize themselves."""
    if not storage.startswith("sqlite:///"):
        return nullcontext()
    from filelock import FileLock

    database = Path(storage.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(f"{database}.lock")


class CreateSharedStudy(Callback):
    """With ``hydra.sweeper.storage`` set, create the study (and the database's tables) under a lock.

    Two sweepers started at once would otherwise both find no tables and both create them, and one
    fails. Each sweeper then loads the study (``load_if_exists``) and asks it for its own trials, which
    Optuna numbers uniquely in the database, so the processes never run the same trial.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.sweeper
        storage = sweeper.get("storage")
        if not storage:
            return
        import optuna

        direction = sweeper.get("direction") or "minimize"
        directions = list(direction) if not isinstance(direction, str) else [direction]
        with storage_lock(str(storage)):
            study = optuna.create_study(
                study_name=sweeper.get("study_name"), storage=storage, directions=directions, load_if_exists=True
            )
        log.info("optuna study %s in %s: %d trials so far", study.study_name, storage, len(study.trials))
