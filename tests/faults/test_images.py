"""Issue 14, class 3: every image problem becomes a bad row with its reason, never an exception.

An image file is untrusted input: a decompression bomb, a directory, a file gone since validation, or bytes
no Pillow plugin expected must all reach ``data.on_bad_record`` as one bad row each.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from functools import partial
from pathlib import Path

import pytest
from hydra.utils import instantiate
from PIL import Image

from mmexp.core.errors import ConfigError
from mmexp.data.datamodule import MultimodalDataModule
from mmexp.data.images import decode_images
from mmexp.data.splits import stratified_split
from tests.conftest import compose_cfg
from tests.data_factory import clean_rows, write_manifest

SPLIT = partial(stratified_split, train=0.5, val=0.25, test=0.25, seed=0)
PIXEL_LIMIT = 89_478_485  # the documented default of data.max_image_pixels (Pillow's own)
BOMB = (20000, 20000)  # 400 M pixels: 1.2 GB as RGB, > 2x Pillow's limit (DecompressionBombError)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A valid PNG of a few dozen bytes declaring ``width`` x ``height`` RGB pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def encoded(fmt: str, size: tuple[int, int] = (24, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


def declaring(fmt: str, width: int, height: int) -> bytes:
    """A small real image of ``fmt`` whose header is edited to declare ``width`` x ``height``."""
    data = bytearray(encoded(fmt))
    if fmt == "GIF":  # logical screen size, 16-bit little-endian
        data[6:10] = struct.pack("<HH", width, height)
    elif fmt == "BMP":  # BITMAPINFOHEADER width, height
        data[18:26] = struct.pack("<ii", width, height)
    else:
        return png_header(width, height)
    return bytes(data)


def dataset(root: Path, n: int = 16) -> list[dict]:
    rows = clean_rows(root, n=n)
    write_manifest(root, rows)
    return rows


def datamodule(root: Path, **kw: object) -> MultimodalDataModule:
    return MultimodalDataModule(split=SPLIT, root=str(root), image_size=16, cache_dir=str(root / ".cache"), **kw)


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP"])
def test_a_decompression_bomb_is_a_bad_row_with_its_size_and_the_limit(tmp_path: Path, fmt: str) -> None:
    rows = dataset(tmp_path)
    width, height = (60000, 60000) if fmt == "GIF" else BOMB
    (tmp_path / rows[3]["image"]).write_bytes(declaring(fmt, width, height))
    with pytest.raises(ConfigError) as error:
        datamodule(tmp_path).setup()
    expected = (
        f"line 4: image '003.png' declares {width}x{height} = {width * height:,} pixels, "
        f"above data.max_image_pixels={PIXEL_LIMIT}; raise it if the image is genuine"
    )
    assert expected in str(error.value) and "data.on_bad_record=skip" in str(error.value)


def test_with_skip_the_bomb_row_is_skipped_and_the_rest_are_kept(tmp_path: Path) -> None:
    rows = dataset(tmp_path)
    (tmp_path / rows[3]["image"]).write_bytes(png_header(*BOMB))
    dm = datamodule(tmp_path, on_bad_record="skip")
    dm.setup()
    assert [(b.line, b.row["id"]) for b in dm.info.skipped] == [(4, "r3")]
    assert "declares 20000x20000" in dm.info.skipped[0].reason
    assert len(dm.info.records) == len(rows) - 1


def with_one_large_image(root: Path) -> list[dict]:
    """16 rows of 24 x 24 = 576-pixel images; row 5 (manifest line 6) is 40 x 40 = 1,600 pixels."""
    rows = dataset(root)
    Image.new("RGB", (40, 40), (30, 60, 220)).save(root / rows[5]["image"])
    return rows


def test_the_pixel_limit_is_the_configured_one_not_pillows_global(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = with_one_large_image(tmp_path)
    dm = datamodule(tmp_path, on_bad_record="skip", max_image_pixels=1000)
    dm.setup()
    assert [(b.line, b.reason) for b in dm.info.skipped] == [
        (
            6,
            "image '005.png' declares 40x40 = 1,600 pixels, above data.max_image_pixels=1000; "
            "raise it if the image is genuine",
        )
    ]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would refuse every image (> 2 x 100)
    images, problems = decode_images([tmp_path / r["image"] for r in rows[4:6]], 8, max_pixels=2000)
    assert problems == {} and (images.max(axis=(1, 2, 3)) > 0).all()  # both decoded
    assert Image.MAX_IMAGE_PIXELS == 100  # restored after decoding


def test_the_folder_config_passes_data_max_image_pixels(tmp_path: Path) -> None:
    with_one_large_image(tmp_path)
    cfg = partial(compose_cfg, tmp_path, tmp_path / "cache", "data=folder", f"data.root={tmp_path}")
    assert cfg().data.max_image_pixels == PIXEL_LIMIT
    dm = instantiate(cfg("data.max_image_pixels=1000", "data.on_bad_record=skip").data)
    dm.setup()
    assert [b.line for b in dm.info.skipped] == [6]
    with pytest.raises(ConfigError, match=r"data\.max_image_pixels must be a positive integer"):
        datamodule(tmp_path, max_image_pixels=0)


def test_a_directory_where_an_image_should_be_is_a_bad_row_saying_so(tmp_path: Path) -> None:
    rows = dataset(tmp_path)
    image = tmp_path / rows[3]["image"]
    image.unlink()
    image.mkdir()
    with pytest.raises(ConfigError, match=r"line 4: image path 'img/003\.png' is a directory, not an image file"):
        datamodule(tmp_path).setup()


def test_a_directory_or_a_vanished_file_at_decode_time_says_so(tmp_path: Path) -> None:
    (tmp_path / "album.png").mkdir()
    _, problems = decode_images([tmp_path / "album.png", tmp_path / "gone.png"], 8)
    assert problems == {
        0: "image path 'album.png' is a directory, not an image file",
        1: "image file not found: 'gone.png'",
    }


def mutants(count: int, seed: int = 0) -> list[bytes]:
    """Small images of several formats with random bytes changed and random tails cut (a fixed seed)."""
    sources = [encoded(fmt) for fmt in ("PNG", "GIF", "BMP", "TIFF", "JPEG", "WEBP", "ICO", "PPM", "TGA", "PCX")]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        out.append(bytes(data[: rng.randrange(len(data))] if rng.random() < 0.3 else data))
    return out


@pytest.mark.filterwarnings("ignore")  # Pillow warns about many of these files; a warning is no escape
def test_no_corrupted_image_escapes_decoding_as_an_exception(tmp_path: Path) -> None:
    paths = []
    for i, data in enumerate(mutants(3000)):
        paths.append(tmp_path / f"{i}.img")
        paths[-1].write_bytes(data)
    images, problems = decode_images(paths, 8)  # raises nothing
    assert len(images) == len(paths) and all(isinstance(reason, str) and reason for reason in problems.values())
    assert any("declares" in reason for reason in problems.values())  # the seed's mutants include bombs
