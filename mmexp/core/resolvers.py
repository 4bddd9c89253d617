"""OmegaConf resolvers the configs use; registered on import of the entry points."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

SWEEP_JOBS_ENV = "MMEXP_SWEEP_JOBS"  # set by mmexp.run.sweep_size.CountSweepJobs in the sweep's process


def run_name_suffix(override_dirname: str, max_len: int = 80) -> str:
    """'_' + a filesystem- and override-safe form of the overrides, or '' when there are none.

    No '=', ',' or quotes survive, so the dir can be passed back as ``hydra.run.dir=<dir>`` unquoted.
    A longer list keeps its whole ``key-value`` items that fit and ends in a hash of all of them, so
    names stay readable (never cut mid-word) and two different override lists never share a name.
    """
    slug = re.sub(r"[^\w.+-]+", "-", override_dirname).strip("-")
    if len(slug) <= max_len:
        return f"_{slug}" if slug else ""
    digest = hashlib.blake2b(override_dirname.encode(), digest_size=4).hexdigest()
    kept: list[str] = []
    for item in slug.split("_"):
        if len("_".join([*kept, item])) > max_len - len(digest) - 1:
            break
        kept.append(item)
    return "_" + "_".join([*kept, digest])


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
    OmegaConf.register_new_resolver("mmexp_suffix", run_name_suffix, replace=True)
    OmegaConf.register_new_resolver("mmexp_parent_name", lambda path: Path(path).resolve().parent.name, replace=True)
    OmegaConf.register_new_resolver("mmexp_file_uri", lambda path: Path(path).resolve().as_uri(), replace=True)
    OmegaConf.register_new_resolver("mmexp_sqlite_uri", lambda path: f"sqlite:///{Path(path).resolve()}", replace=True)
    OmegaConf.register_new_resolver("mmexp_isatty", lambda: sys.stdout.isatty(), replace=True)


register()
