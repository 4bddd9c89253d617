"""OmegaConf resolvers the configs use; registered on import of the entry points."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from omegaconf import OmegaConf


def run_name_suffix(override_dirname: str, max_len: int = 80) -> str:
    """'_' + a filesystem- and override-safe form of the overrides, or '' when there are none.

    No '=', ',' or quotes survive, so the dir can be passed back as ``hydra.run.dir=<dir>`` unquoted.
    """
    slug = re.sub(r"[^\w.+-]+", "-", override_dirname).strip("-")[:max_len]
    return f"_{slug}" if slug else ""


def threads_per_job(n_jobs: int | None) -> int | None:
    """Torch threads for one of ``n_jobs`` parallel sweep jobs (joblib: -1 = one job per core)."""
    if n_jobs is None:
        return None
    cores = os.cpu_count() or 1
    jobs = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    return max(1, cores // jobs)


def register() -> None:
    OmegaConf.register_new_resolver("mmexp_threads_per_job", threads_per_job, replace=True)
    OmegaConf.register_new_resolver("mmexp_suffix", run_name_suffix, replace=True)
    OmegaConf.register_new_resolver("mmexp_parent_name", lambda path: Path(path).resolve().parent.name, replace=True)
    OmegaConf.register_new_resolver("mmexp_file_uri", lambda path: Path(path).resolve().as_uri(), replace=True)
    OmegaConf.register_new_resolver("mmexp_isatty", lambda: sys.stdout.isatty(), replace=True)


register()
