"""Decoded-image cache: resized uint8 images stored once, so later epochs and sweep jobs skip decoding."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from mmexp.core.io import write_atomic, write_json_atomic
from mmexp.data.images import decode_images

log = logging.getLogger(__name__)


def cache_key(paths: list[Path], size: int, manifest: Path, resize: str = "squash") -> str:
    """Changes when the manifest, the image size, the resize mode or any image file (size or mtime) changes."""
    digest = hashlib.sha256(manifest.read_bytes())
    digest.update(f"|{size}|".encode() if resize == "squash" else f"|{size}|{resize}|".encode())
    for path in paths:
        try:
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}|missing\n".encode())
    return digest.hexdigest()[:20]


def load_or_decode(
    paths: list[Path],
    size: int,
    *,
    manifest: Path,
    cache_dir: Path | None,
    key: str | None = None,
    resize: str = "squash",
) -> tuple[np.ndarray, dict[int, str]]:
    """(N, 3, size, size) uint8 images and {row: problem}; read from the cache when it is current.

    Two jobs building the same cache at once both decode and the second rename wins: the result is
    identical, and a reader only ever sees complete files (the meta file is written last).
    """
    if cache_dir is None:
        return decode_images(paths, size, resize)
    key = key or cache_key(paths, size, manifest, resize)
    data_file, meta_file = cache_dir / f"images-{key}.npy", cache_dir / f"images-{key}.json"
    if meta_file.exists() and data_file.exists():
        problems = {int(k): v for k, v in json.loads(meta_file.read_text())["problems"].items()}
        return np.load(data_file), problems
    images, problems = decode_images(paths, size, resize)
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(data_file, lambda f: np.save(f, images))
    meta = {"n": len(paths), "size": size, "resize": resize, "manifest": str(manifest), "problems": problems}
    write_json_atomic(meta_file, meta)
    log.info("data: cached %d decoded images in %s", len(paths), data_file)
    return images, problems
