"""Decoded-image cache: resized uint8 images stored once, so later epochs and sweep jobs skip decoding."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import repeat
from pathlib import Path

import numpy as np

from mmexp.core.io import atomic_path, write_json_atomic
from mmexp.data.images import decode_images

log = logging.getLogger(__name__)
CHUNK = 256  # images decoded per task
PARALLEL_FROM = 50_000_000  # output pixels (~1,000 images at 224 px): less decodes faster than processes start
MAX_WORKERS = 8


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


def decode_into(
    out: np.ndarray, paths: list[Path], size: int, resize: str, *, parallel_from: int = PARALLEL_FROM
) -> dict[int, str]:
    """Decode ``paths`` into ``out`` (an array or a memory map) chunk by chunk; {row: problem}.

    From ``parallel_from`` output pixels on, chunks are decoded in one process per core (Pillow decoding is
    CPU-bound and holds the GIL), and only one chunk per process is in memory at a time. Where processes cannot
    be started (e.g. inside a sweep launcher's worker), it decodes here instead.
    """
    chunks = [list(range(start, min(start + CHUNK, len(paths)))) for start in range(0, len(paths), CHUNK)]
    jobs = [[paths[i] for i in chunk] for chunk in chunks]
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    serial: Iterable[tuple[np.ndarray, dict[int, str]]] = (decode_images(job, size, resize) for job in jobs)
    if len(paths) * size * size < parallel_from or workers < 2 or multiprocessing.current_process().daemon:
        return _store(out, chunks, serial)
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            return _store(out, chunks, pool.map(decode_images, jobs, repeat(size), repeat(resize)))
    except (BrokenProcessPool, OSError) as e:
        log.warning("data: parallel image decoding failed (%s); decoding in this process", e)
        return _store(out, chunks, serial)


def _store(
    out: np.ndarray, chunks: list[list[int]], results: Iterable[tuple[np.ndarray, dict[int, str]]]
) -> dict[int, str]:
    problems: dict[int, str] = {}
    for chunk, (images, found) in zip(chunks, results, strict=True):
        out[chunk[0] : chunk[-1] + 1] = images
        problems.update({chunk[k]: reason for k, reason in found.items()})
    return problems


def load_or_decode(
    paths: list[Path],
    size: int,
    *,
    manifest: Path,
    cache_dir: Path | None,
    key: str | None = None,
    resize: str = "squash",
    parallel_from: int = PARALLEL_FROM,
) -> tuple[np.ndarray, dict[int, str]]:
    """(N, 3, size, size) uint8 images and {row: problem}; with a cache, a memory map of its file.

    The cache file is decoded into directly (a memory map), so neither building nor reading it needs the whole
    dataset in RAM: pages are read when rows are used. It is opened copy-on-write, so nothing can change the file.
    Two jobs building the same cache at once both decode and the second rename wins: the result is identical, and
    a reader only ever sees complete files (the meta file is written last).
    """
    shape = (len(paths), 3, size, size)
    if cache_dir is None or not paths:
        images = np.zeros(shape, dtype=np.uint8)
        return images, decode_into(images, paths, size, resize, parallel_from=parallel_from)
    key = key or cache_key(paths, size, manifest, resize)
    data_file, meta_file = cache_dir / f"images-{key}.npy", cache_dir / f"images-{key}.json"
    if not (meta_file.exists() and data_file.exists()):
        with atomic_path(data_file) as tmp:
            target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            problems = decode_into(target, paths, size, resize, parallel_from=parallel_from)
            target.flush()
            del target
        meta = {"n": len(paths), "size": size, "resize": resize, "manifest": str(manifest), "problems": problems}
        write_json_atomic(meta_file, meta)
        log.info("data: cached %d decoded images in %s", len(paths), data_file)
    problems = {int(k): v for k, v in json.loads(meta_file.read_text())["problems"].items()}
    return np.load(data_file, mmap_mode="c"), problems
