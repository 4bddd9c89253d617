"""Decoded-image cache: resized uint8 images stored once, so later epochs and sweep jobs skip decoding.

A cache is found by its key: the manifest, the decode options and the bytes of every image file (``cache_key``),
so a cache never serves pixels of a file that has changed since, whatever its size and mtime say.
The cache is untrusted input like any file on disk: its meta file records a checksum of the images and their
problem list when it is written, and a read verifies it (``crc32``: measured 2.3 GB/s on one core, about 1.3 %
of the time decoding the same images takes). An unreadable, truncated or changed cache is rebuilt after one
warning; a cache directory that cannot be written means no cache for the run, after one warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import numpy as np

from mmexp.core.errors import cache_write_reason
from mmexp.core.io import atomic_path, checksum, remove_stale_temps, reserve_space, write_json_atomic
from mmexp.core.progress import progress
from mmexp.data.images import MAX_IMAGE_PIXELS, decode_images

log = logging.getLogger(__name__)
CHUNK = 256  # images decoded per task
PARALLEL_FROM = 50_000_000  # output pixels (~1,000 images at 224 px): less decodes faster than processes start
MAX_WORKERS = 8
FORMAT = 2  # meta file layout; 2 added the checksum (older caches are rebuilt once)
CHECKSUM_BYTES = 64 * 2**20  # bytes hashed per step: a memory map is read in bounded pieces
HASH_BLOCK = 2**20  # bytes of an image file read per step while hashing it


def cache_key(
    paths: list[Path], size: int, manifest: Path, resize: str = "squash", max_pixels: int = MAX_IMAGE_PIXELS
) -> str:
    """Changes when the manifest, the image size, the resize mode, the pixel limit or the bytes of any image
    file change. Defaults add nothing, so keys made before an option existed stay valid.

    The files' bytes, not their size and mtime: ``rsync -a`` of a re-export (or any same-size rewrite with the
    mtime restored) changes pixels without changing either, and a cache keyed on them kept serving the old
    pixels, to training and to eval's "test rows unchanged" check alike. Reading and hashing the files costs
    ~3 % of decoding them (docs/reliability.md has the measurement); a file merely touched keeps its cache.
    """
    digest = hashlib.sha256(manifest.read_bytes())
    digest.update(f"|{size}|".encode() if resize == "squash" else f"|{size}|{resize}|".encode())
    if max_pixels != MAX_IMAGE_PIXELS:
        digest.update(f"max_pixels={max_pixels}|".encode())
    digest.update(b"content|")  # keys of the size+mtime era can never match one of these
    for path in paths:
        digest.update(f"{path}|{file_digest(path)}\n".encode())
    return digest.hexdigest()[:20]


def file_digest(path: Path) -> str:
    """sha1 of the file's bytes (read in pieces: an image file may be large); "missing" or "unreadable"."""
    h = hashlib.sha1(usedforsecurity=False)
    try:
        with open(path, "rb") as f:
            while block := f.read(HASH_BLOCK):
                h.update(block)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable {e.errno}"
    return h.hexdigest()


def images_checksum(images: np.ndarray, problems: dict[int, str]) -> str:
    """Checksum of the image bytes (in row chunks: a memory map is never read whole) and of the problem list:
    a row dropped from the list would otherwise be trained on as a blank image."""
    row_bytes = images[0].nbytes if len(images) else 1
    rows = max(CHECKSUM_BYTES // max(row_bytes, 1), 1)
    chunks = (np.ascontiguousarray(images[start : start + rows]) for start in range(0, len(images), rows))
    return checksum(chain(chunks, [json.dumps(sorted(problems.items())).encode()]))


def decode_into(
    out: np.ndarray,
    paths: list[Path],
    size: int,
    resize: str,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    parallel_from: int = PARALLEL_FROM,
) -> dict[int, str]:
    """Decode ``paths`` into ``out`` (an array or a memory map) chunk by chunk; {row: problem}.

    From ``parallel_from`` output pixels on, chunks are decoded in one process per core (Pillow decoding is
    CPU-bound and holds the GIL), and only one chunk per process is in memory at a time. Where processes cannot
    be started (e.g. inside a sweep launcher's worker), it decodes here instead.
    """
    chunks = [list(range(start, min(start + CHUNK, len(paths)))) for start in range(0, len(paths), CHUNK)]
    jobs = [[paths[i] for i in chunk] for chunk in chunks]
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    serial: Iterable[tuple[np.ndarray, dict[int, str]]] = (decode_images(job, size, resize, max_pixels) for job in jobs)
    if len(paths) * size * size < parallel_from or workers < 2 or multiprocessing.current_process().daemon:
        return _store(out, chunks, serial)
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = pool.map(decode_images, jobs, repeat(size), repeat(resize), repeat(max_pixels))
            return _store(out, chunks, results)
    except (BrokenProcessPool, OSError) as e:
        log.warning("data: parallel image decoding failed (%s); decoding in this process", e)
        return _store(out, chunks, serial)


def _store(
    out: np.ndarray, chunks: list[list[int]], results: Iterable[tuple[np.ndarray, dict[int, str]]]
) -> dict[int, str]:
    problems: dict[int, str] = {}
    with progress("data: decoding images", len(out), unit="images", logger=log) as shown:
        for chunk, (images, found) in zip(chunks, results, strict=True):
            out[chunk[0] : chunk[-1] + 1] = images
            problems.update({chunk[k]: reason for k, reason in found.items()})
            shown.advance(len(chunk))
    return problems


@dataclass(frozen=True)
class DecodeSpec:
    """How images are decoded: what ``decode_into`` needs besides the paths."""

    size: int
    resize: str = "squash"
    max_pixels: int = MAX_IMAGE_PIXELS
    parallel_from: int = PARALLEL_FROM

    def shape(self, rows: int) -> tuple[int, int, int, int]:
        return (rows, 3, self.size, self.size)

    def into(self, out: np.ndarray, paths: list[Path]) -> dict[int, str]:
        return decode_into(
            out, paths, self.size, self.resize, max_pixels=self.max_pixels, parallel_from=self.parallel_from
        )


def load_or_decode(
    paths: list[Path],
    size: int,
    *,
    manifest: Path,
    cache_dir: Path | None,
    key: str | None = None,
    resize: str = "squash",
    max_pixels: int = MAX_IMAGE_PIXELS,
    parallel_from: int = PARALLEL_FROM,
) -> tuple[np.ndarray, dict[int, str]]:
    """(N, 3, size, size) uint8 images and {row: problem}; with a cache, a memory map of its file.

    The cache file is decoded into directly (a memory map), so neither building nor reading it needs the whole
    dataset in RAM. It is opened copy-on-write, so nothing can change the file, and verified against the
    checksum in its meta file before use. Two jobs building the same cache at once both decode and the second
    rename wins: the result is identical, and a reader only ever sees complete files (the meta file is written
    last). A cache that fails verification is rebuilt in place; one that cannot be written is skipped.
    """
    spec = DecodeSpec(size, resize, max_pixels, parallel_from)
    if cache_dir is None or not paths:
        return _decode_in_memory(paths, spec)
    key = key or cache_key(paths, size, manifest, resize, max_pixels)
    data_file, meta_file = cache_dir / f"images-{key}.npy", cache_dir / f"images-{key}.json"
    cached = read_cache(data_file, meta_file, spec.shape(len(paths)))
    if cached is not None:
        return cached
    try:
        return _build(data_file, meta_file, paths, manifest, spec)
    except OSError as e:
        why = cache_write_reason(e)
        log.warning("data: cannot write the image cache in %s (%s); decoding without a cache", cache_dir, why)
        return _decode_in_memory(paths, spec)


def _decode_in_memory(paths: list[Path], spec: DecodeSpec) -> tuple[np.ndarray, dict[int, str]]:
    images = np.zeros(spec.shape(len(paths)), dtype=np.uint8)
    return images, spec.into(images, paths)


def _build(
    data_file: Path, meta_file: Path, paths: list[Path], manifest: Path, spec: DecodeSpec
) -> tuple[np.ndarray, dict[int, str]]:
    """Decode into a temp file renamed over ``data_file``, then write the meta file with its checksum.

    An unwritable directory fails at the temp file, and a disk without room for the file at reserving its
    space, both before anything is decoded (an OSError; the temp file is removed). Temp files left by
    killed builds are removed first.
    """
    shape = spec.shape(len(paths))
    for stale in remove_stale_temps(data_file.parent, "images-"):
        log.info("data: removed %s, left by an image cache build that was killed", stale)
    with atomic_path(data_file) as tmp:
        target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        reserve_space(tmp)  # a full disk is an OSError now, not a SIGBUS while decoding into the map
        problems = spec.into(target, paths)
        target.flush()
        digest = images_checksum(target, problems)
        del target
    meta = {
        "format": FORMAT,
        "n": len(paths),
        "size": spec.size,
        "resize": spec.resize,
        "max_pixels": spec.max_pixels,
        "manifest": str(manifest),
        "checksum": digest,
        "problems": problems,
    }
    try:
        write_json_atomic(meta_file, meta)
    except OSError as e:  # the images are decoded: keep them for this run, leave no meta-less data file
        images = np.load(data_file)
        data_file.unlink(missing_ok=True)
        folder, why = data_file.parent, cache_write_reason(e)
        log.warning("data: cannot write the image cache in %s (%s); using it for this run only", folder, why)
        return images, problems
    log.info("data: cached %d decoded images in %s", len(paths), data_file)
    return np.load(data_file, mmap_mode="c"), problems


def read_cache(data_file: Path, meta_file: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, dict[int, str]] | None:
    """The cached images and problems when both files exist and agree with their checksum; else None.

    A missing file is a cache not built yet (or being built by another job): None, quietly. Anything else
    wrong (unreadable, truncated, another shape, changed bytes) is logged once, and the caller rebuilds it.
    """
    if not (meta_file.exists() and data_file.exists()):
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        images = np.load(data_file, mmap_mode="c")
        problems = _problems(meta, shape[0])
        wrong = _mismatch(meta, images, problems, shape)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, EOFError) as e:
        wrong = f"unreadable ({type(e).__name__}: {e})"
    if wrong:
        log.warning("data: the image cache %s is %s; rebuilding it", data_file, wrong)
        return None
    return images, problems


def _problems(meta: Any, rows: int) -> dict[int, str]:
    """The meta file's {row: reason}; ValueError when it is not one."""
    found = {int(row): reason for row, reason in meta["problems"].items()}
    if not all(0 <= row < rows and isinstance(reason, str) for row, reason in found.items()):
        raise ValueError("its problem list names rows or reasons that cannot be")
    return found


def _mismatch(meta: Any, images: np.ndarray, problems: dict[int, str], shape: tuple[int, ...]) -> str | None:
    """Why the cache cannot be used, or None."""
    if meta.get("format") != FORMAT:
        return f"in format {meta.get('format')!r}, not {FORMAT} (written by another mmexp version)"
    if images.dtype != np.uint8 or images.shape != shape:
        return f"{images.dtype} {images.shape}, not uint8 {shape}"
    if meta.get("checksum") != images_checksum(images, problems):
        return "not what was written (checksum mismatch: truncated, overwritten or corrupted)"
    return None
