"""Issue 14, class 4: a cache is untrusted input, verified on every read.

A damaged decoded-image cache or meta file, or a damaged feature-cache file, is noticed (one warning), never
used, and rebuilt; a cache directory that cannot be written means no cache (one warning), not a crash.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

import mmexp.data.image_cache as image_cache_module
import mmexp.training.feature_cache as fc
from mmexp.data.image_cache import load_or_decode
from mmexp.train import train
from tests.conftest import compose_cfg
from tests.data_factory import clean_rows, write_manifest
from tests.training.test_feature_cache import bow, classifier, inputs, resnet

Images = tuple[np.ndarray, dict[int, str]]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture
def image_cache(tmp_path: Path) -> tuple[Callable[[], Images], Images, Path]:
    """A dataset of 8 images and one missing file (row 8), a function reading it through the cache, the
    images as decoded without a cache, and the cache folder (built once)."""
    rows = clean_rows(tmp_path, n=8)
    manifest = write_manifest(tmp_path, rows)
    paths = [tmp_path / r["image"] for r in rows] + [tmp_path / "img/gone.png"]
    cache = tmp_path / "cache"
    read = partial(load_or_decode, paths, 16, manifest=manifest, cache_dir=cache)
    read()
    return read, load_or_decode(paths, 16, manifest=manifest, cache_dir=None), cache


def only(cache: Path, suffix: str) -> Path:
    (found,) = cache.glob(f"images-*{suffix}")
    return found


def rewrite_rows(path: Path, change: Callable[[np.ndarray], None]) -> None:
    """Change the array inside a .npy file in place (its header stays valid)."""
    array = np.load(path, mmap_mode="r+")
    change(array)
    array.flush()


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zeros_of_the_same_shape(path: Path) -> None:
    np.save(path, np.zeros_like(np.load(path)))


def random_bytes(path: Path) -> None:
    def scramble(array: np.ndarray) -> None:
        array[2, :, 4:8] = np.random.default_rng(0).integers(0, 256, array[2, :, 4:8].shape, dtype=np.uint8)

    rewrite_rows(path, scramble)


def garbage_header(path: Path) -> None:
    path.write_bytes(b"\0" * 16 + path.read_bytes()[16:])


@pytest.mark.parametrize("damage", [truncate, zeros_of_the_same_shape, random_bytes, garbage_header])
def test_a_damaged_image_cache_is_rebuilt_after_one_warning(
    image_cache: tuple[Callable[[], Images], Images, Path],
    damage: Callable[[Path], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    read, (expected, problems), cache = image_cache
    damage(only(cache, ".npy"))
    images, found = read()
    assert np.array_equal(images, expected) and found == problems == {8: "image file not found: 'gone.png'"}
    assert len(warnings_of(caplog)) == 1 and "rebuilding it" in warnings_of(caplog)[0]
    caplog.clear()
    assert np.array_equal(read()[0], expected) and warnings_of(caplog) == []  # rebuilt in place: quiet again
    assert len(list(cache.iterdir())) == 2  # no stale or temp files


def drop_the_problem_row(meta: dict) -> dict:
    return {**meta, "problems": {}}  # the missing image would be trained on as a blank one


META_DAMAGE: dict[str, Callable[[str], str]] = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "random bytes": lambda text: "\x00\x9f\x13garbage",
    "another type": lambda text: json.dumps({**json.loads(text), "problems": 3}),
    "not an object": lambda text: "[]",
    "a problem row dropped": lambda text: json.dumps(drop_the_problem_row(json.loads(text))),
    "a problem row out of range": lambda text: json.dumps({**json.loads(text), "problems": {"99": "x"}}),
}


@pytest.mark.parametrize("damage", META_DAMAGE.values(), ids=META_DAMAGE.keys())
def test_a_damaged_meta_file_is_rebuilt_after_one_warning(
    image_cache: tuple[Callable[[], Images], Images, Path],
    damage: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    read, (expected, problems), cache = image_cache
    meta = only(cache, ".json")
    meta.write_text(damage(meta.read_text()))
    images, found = read()
    assert np.array_equal(images, expected) and found == problems and 8 in found
    assert len(warnings_of(caplog)) == 1 and "rebuilding it" in warnings_of(caplog)[0]
    caplog.clear()
    read()
    assert warnings_of(caplog) == []


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` and what it holds cannot be written. Root ignores file modes, so there ``tempfile.mkstemp``
    (where every atomic write starts) is made to fail inside it as the kernel would for anyone else."""
    folder.mkdir(parents=True, exist_ok=True)
    mkstemp = tempfile.mkstemp

    def refuse(*args: object, dir: str | Path | None = None, **kw: object):
        if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
            raise PermissionError(13, "Permission denied", str(dir))
        return mkstemp(*args, dir=dir, **kw)  # type: ignore[call-overload]

    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
    for path in modes:
        path.chmod(0o555)
    try:
        with pytest.MonkeyPatch.context() as patch:
            if os.geteuid() == 0:
                patch.setattr(tempfile, "mkstemp", refuse)
            yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def test_a_read_only_image_cache_dir_means_no_cache_and_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = clean_rows(tmp_path, n=6)
    manifest = write_manifest(tmp_path, rows)
    paths = [tmp_path / r["image"] for r in rows]
    expected, _ = load_or_decode(paths, 16, manifest=manifest, cache_dir=None)
    cache = tmp_path / "cache"
    with read_only(cache):
        images, problems = load_or_decode(paths, 16, manifest=manifest, cache_dir=cache / "images")
    assert np.array_equal(images, expected) and problems == {}
    assert len(warnings_of(caplog)) == 1 and "cannot write the image cache" in warnings_of(caplog)[0]
    assert not list(cache.rglob("*.*"))


def test_a_valid_cache_in_a_read_only_dir_is_used_quietly(
    image_cache: tuple[Callable[[], Images], Images, Path],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read, (expected, _), cache = image_cache
    monkeypatch.setattr(image_cache_module, "decode_images", None)  # reading must not decode (nor write)
    with read_only(cache):
        images, _ = read()
    assert np.array_equal(images, expected) and warnings_of(caplog) == []


def test_a_run_with_a_read_only_cache_dir_trains_without_caches(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    write_manifest(data, clean_rows(data, n=32))
    cfg = compose_cfg(
        tmp_path,
        cache,
        "data=folder",
        f"data.root={data}",
        "data.image_size=16",
        "debug=fast",
        "logger=none",
        "text_encoder=bow",
        "text_encoder.freeze=true",
    )
    with read_only(cache):
        metrics = train(cfg)
    assert metrics["labels"] == ["blue-round", "blue-square", "red-round", "red-square"]
    assert not list(cache.rglob("*.*"))
    cache_warnings = [m for m in warnings_of(caplog) if "cache" in m]  # one per cache, for the whole run
    assert len(cache_warnings) == 2, cache_warnings
    assert "cannot write the image cache" in cache_warnings[0] and "feature cache" in cache_warnings[1]


def feature_cache_file(tmp_path: Path) -> tuple[Callable[[], fc.FeatureCache | None], fc.FeatureCache, Path]:
    """A frozen BoW encoder's feature cache written to disk, a function reading it (or recomputing it), the
    features as computed, and the file."""
    model, data = classifier(resnet(), bow()), inputs(tmp_path)
    load = partial(
        fc.load_or_compute,
        model,
        "text",
        data,
        context="ctx",
        budget_bytes=math.inf,
        forward_context=contextlib.nullcontext(),
    )
    computed = load()
    assert computed is not None
    (path,) = tmp_path.glob("features-*.pt")
    return load, computed, path


def scramble_pooled(path: Path, pooled: torch.Tensor) -> None:
    """Random bytes over the stored pooled features (torch.save stores tensor data uncompressed)."""
    raw = bytearray(path.read_bytes())
    start = raw.find(pooled.numpy().tobytes())
    assert start > 0
    raw[start + 40 : start + 200] = random.Random(0).randbytes(160)
    path.write_bytes(bytes(raw))


def zero_pooled(path: Path, pooled: torch.Tensor) -> None:
    state = torch.load(path, weights_only=True)
    torch.save({**state, "pooled": torch.zeros_like(state["pooled"])}, path)


@pytest.mark.parametrize("damage", [scramble_pooled, zero_pooled])
def test_a_damaged_feature_cache_is_recomputed_after_one_warning(
    tmp_path: Path, damage: Callable[[Path, torch.Tensor], None], caplog: pytest.LogCaptureFixture
) -> None:
    load, computed, path = feature_cache_file(tmp_path)
    damage(path, computed.pooled)
    again = load()
    assert again is not None and torch.equal(again.pooled, computed.pooled) and torch.isfinite(again.pooled).all()
    assert len(warnings_of(caplog)) == 1 and "recomputing" in warnings_of(caplog)[0]
    caplog.clear()
    load()
    assert warnings_of(caplog) == []  # the recomputed file replaced the damaged one
