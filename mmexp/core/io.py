"""Atomic file writes: a crash leaves the old file or the new one, never half of one.

Every file mmexp writes (run files, checkpoints, caches) goes through ``write_atomic``, so concurrent
sweep jobs and killed runs only ever see complete files. An operating-system failure (disk full,
read-only dir) becomes one ``OutputError`` naming the path, with the temp file removed.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

from mmexp.core.errors import OutputError, output_error


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp file beside ``path`` to write (e.g. a memory map); renamed over ``path`` when the block succeeds,
    removed when it fails."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise output_error(e, path) from e
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; run files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
