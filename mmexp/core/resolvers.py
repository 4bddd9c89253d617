"""OmegaConf resolvers the configs use; registered on import of the entry points."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mmexp.core.naming import dir_name, name_items

SWEEP_JOBS_ENV = "MMEXP_SWEEP_JOBS"  # set by mmexp.run.sweep_size.CountSweepJobs in the sweep's process
SWEPT_KEYS_ENV = "MMEXP_SWEPT_KEYS"  # set by mmexp.run.sweep_keys.NameSweepJobs in the sweep's process


def swept_keys_of_this_sweep() -> list[str] | None:
    """The keys the running sweep varies (``NameSweepJobs`` put them in the environment); None outside a sweep."""
    text = os.environ.get(SWEPT_KEYS_ENV)
    return [str(k) for k in json.loads(text)] if text else None


def run_suffix(overrides: Sequence[str], exclude: Sequence[str] = ()) -> str:
    """``_`` + the name of a single run's overrides (after its timestamp), or '' when it has none.

    ``exclude``: the command's ``hydra.job.config.override_dirname.exclude_keys`` (paths it reads or writes).
    The name holds no ``/``, ``,``, space or quote (``mmexp.core.naming.dir_name``).
    """
    name = dir_name(name_items([str(o) for o in overrides], exclude=[str(k) for k in exclude]))
    return f"_{name}" if name else ""


def job_suffix(overrides: Sequence[str], exclude: Sequence[str] = ()) -> str:
    """``_`` + the name of a sweep job's overrides that vary within the sweep (after its job number)."""
    items = name_items([str(o) for o in overrides], swept_keys_of_this_sweep(), [str(k) for k in exclude])
    return f"_{dir_name(items)}" if items else ""


def run_tags(overrides: Sequence[str], choices: Mapping[str, Any], run_dir: str, mode: Any) -> dict[str, str]:
    """Dashboard tags of a run: each named override (``fold: 0``), the fusion and split chosen, ``sweep`` (the
    sweep dir's name; '' for a single run) and ``run_dir``."""
    sweep = "MULTIRUN" in str(mode)
    items = name_items([str(o) for o in overrides], swept_keys_of_this_sweep() if sweep else None)
    tags = dict(items)
    for group in ("fusion", "split"):
        tags.setdefault(group, str(choices.get(group)))
    return {**tags, "sweep": Path(run_dir).resolve().parent.name if sweep else "", "run_dir": str(run_dir)}


def tag_list(tags: Mapping[str, Any]) -> list[str]:
    """``key=value`` tags for W&B (plain strings of at most 64 characters): no run dir, no empty values."""
    return [f"{k}={v}"[:64] for k, v in tags.items() if k != "run_dir" and v not in (None, "")]


def threads_per_job(n_jobs: int | None) -> int | None:
    """Torch threads for one of ``n_jobs`` parallel sweep jobs (joblib: -1 = one job per core)."""
    if n_jobs is None:
        return None
    cores = os.cpu_count() or 1
    jobs = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    return max(1, cores // jobs)


def launcher_threads(launcher: Any) -> int | None:
    """Torch threads for a job under ``launcher`` (``hydra.launcher``); None: torch's default (all cores).

    submitit jobs with ``cpus_per_task`` use their allocation; joblib splits the cores by ``n_jobs``;
    ``submitit_local`` starts every job of the sweep at once, so it splits them by the sweep's size.
    The basic launcher runs one job at a time: each gets every core.
    """
    if launcher is None:
        return None
    if launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    if launcher.get("n_jobs") is not None:
        return threads_per_job(int(launcher.n_jobs))
    if str(launcher.get("_target_", "")).endswith("submitit_launcher.LocalLauncher"):
        return threads_per_job(int(os.environ.get(SWEEP_JOBS_ENV, "1")))
    return None


def register() -> None:
    OmegaConf.register_new_resolver("mmexp_launcher_threads", launcher_threads, replace=True)
    OmegaConf.register_new_resolver("mmexp_run_suffix", run_suffix, replace=True)
    OmegaConf.register_new_resolver("mmexp_job_suffix", job_suffix, replace=True)
    OmegaConf.register_new_resolver("mmexp_tags", run_tags, replace=True)
    OmegaConf.register_new_resolver("mmexp_tag_list", tag_list, replace=True)
    OmegaConf.register_new_resolver("mmexp_parent_name", lambda path: Path(path).resolve().parent.name, replace=True)
    OmegaConf.register_new_resolver("mmexp_file_uri", lambda path: Path(path).resolve().as_uri(), replace=True)
    OmegaConf.register_new_resolver("mmexp_sqlite_uri", lambda path: f"sqlite:///{Path(path).resolve()}", replace=True)
    OmegaConf.register_new_resolver("mmexp_isatty", lambda: sys.stdout.isatty(), replace=True)


register()
