"""Decoded-image cache: resized uint8 images stored once, so later epochs and sweep jobs skip decoding."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from mmexp.data.images import decode_images

log = logging.getLogger(__name__)


def cache_key(paths: list[Path], size: int, manifest: Path) -> str:
    """Changes when the manifest, the image size or any image file (size or mtime) changes."""
    digest = hashlib.sha256(manifest.read_bytes())
    digest.update(f"|{size}|".encode())
    for path in paths:
        try:
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}|missing\n".encode())
    return digest.hexdigest()[:20]


def _save_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a bare name
        np.save(f, array)


def load_or_decode(paths: list[Path], size: int, *, manifest: Path,
                   cache_dir: Path | None) -> tuple[np.ndarray, dict[int, str]]:
    """(N, 3, size, size) uint8 images and {row: problem}; read from the cache when it is current.

    Two jobs building the same cache at once both decode and the second rename wins: the result is
    identical, and a reader only ever sees complete files (the meta file is written last).
    """
    if cache_dir is None:
        return decode_images(paths, size)
    key = cache_key(paths, size, manifest)
    data_file, meta_file = cache_dir / f"images-{key}.npy", cache_dir / f"images-{key}.json"
    if meta_file.exists() and data_file.exists():
        problems = {int(k): v for k, v in json.loads(meta_file.read_text())["problems"].items()}
        return np.load(data_file), problems
    images, problems = decode_images(paths, size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _save_atomic(data_file, lambda tmp: _write_npy(tmp, images))
    meta = {"n": len(paths), "size": size, "manifest": str(manifest), "problems": problems}
    _save_atomic(meta_file, lambda tmp: Path(tmp).write_text(json.dumps(meta)))
    log.info("data: cached %d decoded images in %s", len(paths), data_file)
    return images, problems
