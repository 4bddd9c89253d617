"""Decode any image file into a fixed-size uint8 RGB array; normalization happens on the batch.

Image files are untrusted input: whatever is wrong with one (missing, a directory, truncated, not an image,
a decompression bomb) becomes a reason for its bad row, never an exception out of ``decode_images``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

RESIZE_MODES = ("squash", "pad", "crop")
MAX_IMAGE_PIXELS = 89_478_485  # data.max_image_pixels default: Pillow's own (0.25 GiB as 32-bit pixels)


class ImageProblem(Exception):
    """An image that cannot become a training row; the message is its bad row's reason."""


class _PillowBombCheckOff:
    """Pillow's bomb check reads one process-wide limit (``Image.MAX_IMAGE_PIXELS``) inside ``Image.open``.

    mmexp checks each image against the caller's own limit instead, right after ``open`` read the header, so
    Pillow's check is off while any decode runs (threads counted) and restored when the last one ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved: int | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._active == 0:
                self._saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    Image.MAX_IMAGE_PIXELS = self._saved


_pillow_bomb_check_off = _PillowBombCheckOff()


def check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` before a single pixel is decoded."""
    width, height = size
    if width * height > max_pixels:
        raise ImageProblem(
            f"image {path.name!r} declares {width}x{height} = {width * height:,} pixels, above "
            f"data.max_image_pixels={max_pixels}; raise it if the image is genuine"
        )


def load_rgb(path: Path, size: int, resize: str = "squash", max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode by content (not extension), apply EXIF orientation, composite alpha on white, make it square.

    ``resize``: ``squash`` (stretch to size x size), ``pad`` (keep the aspect ratio, black borders), ``crop``
    (keep the aspect ratio, cut the longer side around the center). An image declaring more than
    ``max_pixels`` pixels raises ``ImageProblem`` without being decoded.
    """
    if path.is_dir():
        raise ImageProblem(f"image path {path.name!r} is a directory, not an image file")
    with _pillow_bomb_check_off(), Image.open(path) as file:
        check_pixels(path, file.size, max_pixels)
        file.seek(0)  # first frame of a GIF / multi-page file
        im = _to_rgb(ImageOps.exif_transpose(file))
        if resize == "pad":
            im = ImageOps.pad(im, (size, size), Image.Resampling.BILINEAR, color=(0, 0, 0))
        elif resize == "crop":
            im = ImageOps.fit(im, (size, size), Image.Resampling.BILINEAR)
        else:
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(im, dtype=np.float64)
        scale = 255.0 / max(array.max(), 1.0)
        return Image.fromarray((array * scale).astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def problem_reason(path: Path, error: Exception, max_pixels: int) -> str:
    """The bad-row reason for an image that failed to decode."""
    if isinstance(error, ImageProblem):
        return str(error)
    if isinstance(error, FileNotFoundError):
        return f"image file not found: {path.name!r}"
    if isinstance(error, Image.DecompressionBombError):  # Pillow's own check, should it run after all
        return f"image {path.name!r} is a decompression bomb ({error}); raise data.max_image_pixels={max_pixels}"
    return f"unreadable or corrupt image {path.name!r} ({type(error).__name__}: {error})"


def decode_images(
    paths: list[Path], size: int, resize: str = "squash", max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[np.ndarray, dict[int, str]]:
    """Stack decoded images as (N, 3, size, size) uint8; an image that fails becomes zeros + its reason."""
    out = np.zeros((len(paths), 3, size, size), dtype=np.uint8)
    problems: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            out[i] = load_rgb(path, size, resize, max_pixels)
        except Exception as e:  # a malformed file can make a Pillow plugin raise anything: it is one bad row
            problems[i] = problem_reason(path, e, max_pixels)
    return out, problems
