"""Record a failed job in its run dir, so reports list it instead of silently missing it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mmexp.core.io import write_json_atomic
from mmexp.run.run_info import now_iso

log = logging.getLogger("mmexp")


def mark_failed(run_dir: Path, error: BaseException, *, overrides: list[str], status: str = "failed") -> None:
    """Update run_info.json (or create it when the job failed before writing one).

    Best effort: when the disk is full or the dir read-only, the job's own error is the one to report,
    not a second traceback from recording it.
    """
    info_file = run_dir / "run_info.json"
    try:
        info = json.loads(info_file.read_text())
    except (OSError, json.JSONDecodeError):
        info = {"start_time": None, "overrides": overrides}
    info.update(status=status, end_time=now_iso(), error=f"{type(error).__name__}: {error}")
    try:
        write_json_atomic(info_file, info)
    except OSError as e:
        log.warning("could not record the %s job in %s: %s", status, info_file, e)
