"""The one way every ``python -m mmexp.<command>`` ends: results, or one line that says what went wrong.

Errors a user can cause (``ConfigError``, a config whose ``${...}`` cannot be resolved) print
``mmexp: error: <message>`` (one such line per problem of a config) and exit 1, without a traceback; any
failure of a job with a run dir is recorded in its run_info.json (never in another run's dir); in a Hydra sweep
a failed job is logged and the sweep goes on; Ctrl-C and SIGTERM exit 130 / 143.
"""

from __future__ import annotations

import atexit
import functools
import gc
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from mmexp.core.errors import UNRESOLVABLE, ConfigError, RunDirInUse, error_lines, unresolvable_config
from mmexp.run.status import mark_failed

log = logging.getLogger("mmexp")
T = TypeVar("T")


PATH_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "ckpt_path", "paths.", "data.root", "data.manifest")


def quote_path_overrides(args: list[str]) -> list[str]:
    """``args`` with the path overrides whose value holds ``=`` (a run dir named ``0_fusion=concat``) quoted,
    so ``hydra.run.dir=<run dir> resume=auto`` and ``ckpt_path=<run dir>/...`` parse as they are typed.

    Hydra's grammar reads an unquoted ``=`` in a value as an error; a quoted value, a comma-separated sweep of
    paths and every other override are kept as they are.
    """
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        bare = key.lstrip("+~")
        if sep and "=" in value and bare.startswith(PATH_KEYS) and not any(c in value for c in "\"'()[]{}$"):
            value = ",".join(f'"{v}"' if "=" in v else v for v in value.split(","))
        out.append(f"{key}{sep}{value}")
    return out


def command_line(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a ``@hydra.main`` entry point for the shell: ``quote_path_overrides`` on ``sys.argv`` before Hydra
    reads it, and an exit without the interpreter's last garbage collections.

    Those collections walk every object torch, Lightning and transformers created at import (measured: 1.5 s of
    each command's 7 s exit on 2 cores, for no effect: the process is ending). ``gc.freeze`` at exit leaves them
    out; files are still flushed and closed, and atexit handlers (loggers, W&B) still run.
    """

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sys.argv[1:] = quote_path_overrides(sys.argv[1:])
        atexit.register(gc.freeze)  # atexit runs last-registered first: after this, only earlier handlers run
        return main(*args, **kwargs)

    return wrapper


def task_overrides() -> list[str]:
    """The command line's overrides of this job (empty outside Hydra)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def config_choices() -> dict[str, str | None]:
    """The option chosen in each config group (``{"fusion": "concat", ...}``; empty outside Hydra)."""
    return dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_job(
    job: Callable[[], T], *, run_dir: Path | None, on_sweep_failure: T | None = None, on_interrupt: str = ""
) -> T | None:
    """Run ``job()``; ``run_dir`` (None: the command writes none) records failures.

    ``on_sweep_failure`` is returned for a failed sweep job (e.g. NaN, which Optuna records as a failed
    trial); ``on_interrupt`` is logged after Ctrl-C or SIGTERM (e.g. how to resume).
    """
    try:
        return job()
    except (KeyboardInterrupt, SystemExit) as e:  # Ctrl-C, or SIGTERM (Lightning's SIGTERMException)
        if run_dir is not None:
            mark_failed(run_dir, e, overrides=task_overrides(), status="interrupted")
        if on_interrupt:
            log.error("interrupted: %s", on_interrupt)
        raise SystemExit(128 + signal.SIGTERM if type(e).__name__ == "SIGTERMException" else 130) from None
    except Exception as raised:
        error = unresolvable_config(raised, task_overrides()) if isinstance(raised, UNRESOLVABLE) else raised
        if run_dir is not None and not isinstance(error, RunDirInUse):  # never touch another run's files
            mark_failed(run_dir, error, overrides=task_overrides())
        if in_multirun():
            log_sweep_failure(error)
            return on_sweep_failure
        if isinstance(error, ConfigError):
            raise SystemExit(error_lines(error)) from None
        raise


def log_sweep_failure(error: Exception) -> None:
    """One line on the console; the traceback only in the job's log file, where it is wanted.

    A sweep of fifty jobs with one bad option should read like a single run's one-line error, not a wall
    of tracebacks; a bug's traceback is still kept, beside the job's other log lines.
    """
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "job failed", (), sys.exc_info())
    for handler in files:
        if record.levelno >= handler.level:
            handler.handle(record)
    where = f"traceback in {files[0].baseFilename}" if files and not isinstance(error, ConfigError) else ""
    detail = "; ".join(filter(None, [where, "recorded in run_info.json", "the sweep goes on"]))
    ours = isinstance(error, ConfigError)
    message = "; ".join(str(error).splitlines()) if ours else f"{type(error).__name__}: {error}"
    log.error("job failed: %s (%s)", message, detail)
