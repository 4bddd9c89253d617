"""Prepare a sweep's Optuna study before the sweeper asks it for trials: name it, refuse another sweep's, create it.

Several sweeper processes can share one study: it is created once, under a lock, before any of them asks
for trials.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, read_write

from mmexp.core.errors import ConfigError
from mmexp.run.optuna_study import IDENTITY_ATTR, check_joinable, study_name, sweep_identity

log = logging.getLogger("mmexp.sweep")
STUDY_ENV = "MMEXP_OPTUNA_STUDY"  # {"storage": url, "study": name}: how a sweep's jobs find their study


def storage_lock(storage: str) -> AbstractContextManager[Any]:
    """A file lock beside a SQLite database; other databases (PostgreSQL, MySQL) serialize themselves."""
    if not storage.startswith("sqlite:///"):
        return nullcontext()
    from filelock import FileLock

    database = Path(storage.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(f"{database}.lock")


def open_storage(storage: str) -> Any:
    """Optuna's storage for ``storage``, without alembic's "setup plugin ..." INFO lines on the sweep's console."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # before optuna imports it: the lines come at import
    import optuna

    return optuna.storages.get_storage(storage)


def absolute_storage(storage: str) -> str:
    """A SQLite URL with an absolute path, so jobs started elsewhere (submitit) open the same database."""
    if not storage.startswith("sqlite:///"):
        return storage
    return f"sqlite:///{Path(storage.removeprefix('sqlite:///')).absolute()}"


def shown_storage(storage: str) -> str:
    """The URL without its password, for logs and run dirs."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", storage)


class CreateSharedStudy(Callback):
    """Name the sweep's study, check an existing one optimizes the same thing, and create it under a lock.

    Without ``hydra.sweeper.study_name`` the name is derived from what the sweep optimizes
    (``mmexp.run.optuna_study``). Two sweepers started at once would otherwise both find no tables and
    both create them, and one fails. Each sweeper then loads the study (``load_if_exists``) and asks it
    for its own trials, which Optuna numbers uniquely in the database, so the processes never run the
    same trial. The jobs find the study through ``MMEXP_OPTUNA_STUDY`` (``mmexp.run.optuna_trial``).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.sweeper
        if "optuna" not in str(sweeper.get("_target_", "")):
            return  # in every command's callbacks (conf/hydra/default.yaml): an Optuna sweep however it was chosen
        try:
            identity = sweep_identity(config)
        except ConfigError as e:  # raised, Hydra would only warn, and Optuna then fails in a traceback
            sys.exit(f"mmexp: error: {e}")
        own_name = study_name(identity)
        name = str(sweeper.get("study_name") or own_name)
        storage = absolute_storage(str(sweeper.storage)) if sweeper.get("storage") else None
        with read_write(sweeper):  # the sweeper is built from this config right after the callbacks
            sweeper.study_name = name
            sweeper.storage = storage
        if storage is None:
            log.info("optuna study %s in memory (set hydra.sweeper.storage to keep and watch it)", name)
            return
        try:
            trials = _create(storage, name, identity, own_name)
        except ConfigError as e:
            sys.exit(f"mmexp: error: {e}")
        os.environ[STUDY_ENV] = json.dumps({"storage": storage, "study": name})
        log.info("optuna study %s in %s: %d trials so far", name, shown_storage(storage), trials)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.pop(STUDY_ENV, None)


def _create(storage: str, name: str, identity: dict[str, Any], own_name: str) -> int:
    """Create or join study ``name``; the number of trials it holds already."""
    with storage_lock(storage):
        backend = open_storage(storage)
        import optuna

        existed = check_joinable(backend, name, shown_storage(storage), identity, own_name)
        study = optuna.create_study(
            study_name=name, storage=backend, directions=identity["directions"], load_if_exists=True
        )
        if not existed:
            study.set_user_attr(IDENTITY_ATTR, identity)
        return len(study.trials)
