"""Atomic file writes: a crash leaves the old file or the new one, never half of one.

Every file mmexp writes (run files, checkpoints, caches) goes through ``write_atomic``, so concurrent
sweep jobs and killed runs only ever see complete files. An operating-system failure (disk full,
read-only dir) becomes one ``OutputError`` naming the path, with the temp file removed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

from mmexp.core.errors import OutputError, output_error

TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp file beside ``path`` to write (e.g. a memory map); renamed over ``path`` when the block succeeds,
    removed when it fails.

    The temp file is ``flock``-ed while the block runs, so ``remove_stale_temps`` can tell the temp file of a
    process that was killed (SIGKILL, OOM: no cleanup ran) from one still being written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as e:
        raise output_error(e, path) from e
    tmp = Path(name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file: nobody else can hold it
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; run files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def lock_is_held(path: str | Path) -> bool | None:
    """Whether a live process holds an ``flock`` on ``path`` (None: no such file, or it cannot be opened).

    Probes with a shared, non-blocking lock released at once: it conflicts with a holder's exclusive lock only.
    The kernel drops a dead process's locks, so False means whoever locked the file is gone.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def remove_stale_temps(folder: Path, prefix: str, *, min_age_s: float = 10.0) -> list[Path]:
    """Remove the temp files of ``atomic_path`` writes to ``folder/<prefix>*`` whose writer died; the removed.

    A killed process leaves its temp file behind (it can be as large as the cache it was building, on the disk
    that may have run out); one whose writer still runs is locked and kept, and so is one younger than
    ``min_age_s`` (a writer locks its temp file a moment after creating it).
    """
    removed = []
    for tmp in folder.glob(f".{prefix}*{TEMP_SUFFIX}"):
        try:
            young = time.time() - tmp.stat().st_mtime < min_age_s
        except OSError:
            continue
        if not young and lock_is_held(tmp) is False:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def reserve_space(path: str | Path) -> None:
    """Allocate disk blocks for all of ``path`` as it is sized now (e.g. a new memory map's sparse file).

    Writing into a memory map whose pages the disk cannot back kills the process with SIGBUS (no message,
    no cleanup); reserving first turns a full disk into an ``OutputError`` here. A file system that cannot
    reserve (EOPNOTSUPP/EINVAL) is written unreserved, as before.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as e:
        raise output_error(e, path, action="reserving space for") from e
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise output_error(e, path, action="reserving space for") from e
    finally:
        os.close(fd)


class _TrackedFile:
    """A binary file that remembers the OSError its ``write`` raised.

    torch.save's zip writer turns a failed write (disk full) into ``RuntimeError: unexpected pos ...``;
    the remembered OSError is the cause the user needs to see.
    """

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self._f.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """``write(f)`` into a temp file beside ``path``, fsync, then rename it over ``path``."""
    tracked: _TrackedFile | None = None
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            tracked = _TrackedFile(f)
            write(cast(IO[bytes], tracked))  # a file in all but name
            f.flush()
            os.fsync(f.fileno())
    except OutputError:
        raise
    except OSError as e:
        raise output_error(e, path) from e
    except Exception as e:
        if tracked is not None and tracked.error is not None:
            raise output_error(tracked.error, path) from e
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def checksum(buffers: Iterable[Any]) -> str:
    """crc32 of the buffers' bytes in order: it catches truncation, zeroing and random bytes (the failures of
    files on disk) at memory speed; a cache is no security boundary, so a cryptographic hash buys nothing."""
    crc = 0
    for buffer in buffers:
        crc = zlib.crc32(buffer, crc)
    return f"crc32:{crc:08x}"
