"""Claiming a run dir: exactly one process owns it, and no run writes into a folder that is not its own.

The claim is ``.mmexp-run.json`` (the command and its overrides), created with ``O_EXCL`` before anything
else is written into the dir, so of two runs started at once with one ``hydra.run.dir`` exactly one wins.
Its owner holds an ``flock`` on it while it runs (the kernel drops the lock when the process dies, even
from SIGKILL), so ``resume=auto`` never continues a run that is still going.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmexp.core.claim_probe import CLAIM_FILE_NAME
from mmexp.core.errors import ConfigError, RunDirInUse, output_error, run_dir_in_use
from mmexp.run.run_info import now_iso

CLAIM_FILE = CLAIM_FILE_NAME  # one name, kept in core so that the report can probe it
RUN_INFO = "run_info.json"  # a run made before claim files existed has only this


@dataclass
class Claim:
    """A run dir this process owns; ``release`` (or the process's end) frees it."""

    run_dir: Path
    resumed: bool = False  # the dir held this run already (resume=auto)
    completed: bool = False  # ... and it had finished: nothing to do
    fd: int | None = field(default=None, repr=False)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the file drops its flock
            self.fd = None


def claim_run_dir(
    run_dir: Path, *, command: str, overrides: list[str], resume: bool, expected: frozenset[str] = frozenset()
) -> Claim:
    """Own ``run_dir`` for ``command`` or raise ``RunDirInUse`` without writing anything into it.

    A new or empty dir is claimed; one that holds an mmexp run of ``command`` only with ``resume`` (and
    only when the run is not going on and the overrides match: ``check_same_overrides``); any other non-empty
    dir never. ``expected``: names Hydra itself put there first (a sweep job's ``.hydra``, its log).
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(e, run_dir, action="creating the run dir") from e
    if not (run_dir / CLAIM_FILE).exists():
        foreign = sorted(set(os.listdir(run_dir)) - expected - {CLAIM_FILE})
        legacy = RUN_INFO in foreign  # an mmexp run from before claim files
        if legacy and not resume:
            raise run_dir_in_use(run_dir, command)
        if foreign and not legacy:
            raise RunDirInUse(
                f"run dir {run_dir} is not empty and holds no mmexp run ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); refusing to write into it (give a new or empty hydra.run.dir)"
            )
        if legacy:
            check_same_overrides(_legacy_overrides(run_dir), overrides)
            overrides = _legacy_overrides(run_dir)
        try:
            fd = _create(run_dir, command, overrides)
        except FileExistsError:
            pass  # another process claimed it a moment ago
        else:
            return Claim(run_dir, resumed=legacy, completed=legacy and _status(run_dir) == "completed", fd=fd)
    if not resume:
        raise run_dir_in_use(run_dir, command)
    return _reclaim(run_dir, command=command, overrides=overrides)


def _create(run_dir: Path, command: str, overrides: list[str]) -> int:
    """Create the claim file (``O_EXCL``: fails if it exists), lock it, then write who claimed it."""
    path = run_dir / CLAIM_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise
    except OSError as e:
        raise output_error(e, path) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only for a resumer reading it; see _reclaim
        identity = {"command": command, "overrides": overrides, "created": now_iso(), "pid": os.getpid()}
        identity["host"] = socket.gethostname()
        os.write(fd, (json.dumps(identity, indent=2) + "\n").encode())
        os.fsync(fd)
    except OSError as e:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise output_error(e, path) from e
    return fd


def _reclaim(run_dir: Path, *, command: str, overrides: list[str]) -> Claim:
    """``resume=auto`` on a claimed dir: lock it (or refuse: it runs), check it is this command's run."""
    path = run_dir / CLAIM_FILE
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as e:
        raise output_error(e, path, action="opening") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        identity = _read_identity(path)
        if identity.get("command") != command:
            raise RunDirInUse(
                f"run dir {run_dir} holds an mmexp {identity.get('command')} run, not a {command} run; "
                "refusing to write into it (give a new hydra.run.dir)"
            )
        check_same_overrides(list(identity.get("overrides", [])), overrides)
        completed = _status(run_dir) == "completed"
    except BlockingIOError:
        os.close(fd)
        raise RunDirInUse(
            f"run dir {run_dir} is in use by another mmexp process (the run is still going); "
            "wait for it to end, or give a new hydra.run.dir"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return Claim(run_dir, resumed=True, completed=completed, fd=fd)


def _read_identity(path: Path) -> dict[str, Any]:
    try:
        identity = json.loads(path.read_text())
    except (OSError, ValueError):
        identity = None
    if not isinstance(identity, dict):  # its creator was killed before writing it (or someone edited it)
        raise RunDirInUse(
            f"{path} is empty or damaged, so whose run dir this is is unknown; if no mmexp process uses "
            "the dir, delete that file and run again"
        )
    return identity


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / RUN_INFO).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def _legacy_overrides(run_dir: Path) -> list[str]:
    try:
        return list(json.loads((run_dir / RUN_INFO).read_text()).get("overrides", []))
    except (OSError, ValueError, AttributeError, TypeError):
        return []


IGNORED_PREFIXES = ("hydra.", "paths.")  # where files go, not what is trained
IGNORED_KEYS = ("resume",)


def _as_mapping(overrides: list[str]) -> dict[str, str]:
    """``key=value`` overrides by key (``+``/``++``/``~`` dropped), without the keys a resume may change."""
    out: dict[str, str] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if key not in IGNORED_KEYS and not key.startswith(IGNORED_PREFIXES):
            out[key] = value
    return out


def check_same_overrides(recorded: list[str], given: list[str]) -> None:
    """A resume either repeats none of the run's overrides or all of them unchanged; anything else would
    train another config than the one the run was started with (and was silently dropped before)."""
    run, command = _as_mapping(recorded), _as_mapping(given)
    if not command or command == run:
        return
    diffs = []
    for key in sorted(run.keys() | command.keys()):
        if run.get(key) != command.get(key):
            had = f"run has {key}={run[key]}" if key in run else "run does not set it"
            gives = f"command gives {key}={command[key]}" if key in command else "command leaves it out"
            diffs.append(f"{key} ({had}, {gives})")
    raise ConfigError(
        "resume=auto must continue the run with its own overrides, but they differ: "
        + "; ".join(diffs)
        + " (repeat the run's overrides exactly, or give none; start a new run to change them)"
    )
