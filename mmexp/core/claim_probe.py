"""Whether the process that claimed a run dir still runs, read from the claim file alone.

A run that dies without a chance to update ``run_info.json`` (SIGKILL, OOM killer, SIGBUS, a power cut) leaves
it at ``status: running`` forever. Its claim file (``mmexp/run/claim.py``) was ``flock``-ed by that process, and
the kernel drops the lock when the process dies, so the lock tells a live run from a dead one. Here, in the
kernel, so that ``mmexp.report`` (which reads run dirs only and imports nothing above it) can ask too.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from mmexp.core.io import lock_is_held

CLAIM_FILE_NAME = ".mmexp-run.json"  # the claim file of mmexp/run/claim.py (its CLAIM_FILE)


def claim_holder_alive(run_dir: Path) -> bool | None:
    """True while the claiming process runs, False once it has ended; None when that cannot be known here:
    no claim file (a run from before claim files), or a claim made on another host (a file system need not
    show one host's locks to another)."""
    path = run_dir / CLAIM_FILE_NAME
    try:
        identity = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        identity = None
    host = identity.get("host") if isinstance(identity, dict) else None
    if host is not None and host != socket.gethostname():
        return None
    return lock_is_held(path)
