"""Provenance of a run: code version, package versions, seed, device and wall-clock times."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("mmexp", "torch", "lightning", "torchmetrics", "hydra-core", "omegaconf", "numpy", "pillow")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def git_commit() -> str | None:
    """Commit of the mmexp source tree, or None for an installed package outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            text=True,
            capture_output=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=Path(__file__).resolve().parent,
            text=True,
            capture_output=True,
            timeout=5,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def new_run_id() -> str:
    """A random id for one run, kept across resumes and copies, so ``mmexp.report`` counts a copied dir once."""
    return uuid.uuid4().hex


def start_info(*, seed: int, overrides: list[str]) -> dict[str, Any]:
    return {
        "run_id": new_run_id(),
        "start_time": now_iso(),
        "end_time": None,
        "status": "running",
        "seed": seed,
        "command": sys.argv,
        "overrides": overrides,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "hostname": socket.gethostname(),
        "device": None,
    }
