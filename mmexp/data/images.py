"""Decode any image file into a fixed-size uint8 RGB array; normalization happens on the batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RESIZE_MODES = ("squash", "pad", "crop")


def load_rgb(path: Path, size: int, resize: str = "squash") -> np.ndarray:
    """Decode by content (not extension), apply EXIF orientation, composite alpha on white, make it square.

    ``resize``: ``squash`` (stretch to size x size), ``pad`` (keep the aspect ratio, black borders), ``crop``
    (keep the aspect ratio, cut the longer side around the center).
    """
    with Image.open(path) as file:
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


def decode_images(paths: list[Path], size: int, resize: str = "squash") -> tuple[np.ndarray, dict[int, str]]:
    """Stack decoded images as (N, 3, size, size) uint8; unreadable ones become zeros + a reason."""
    out = np.zeros((len(paths), 3, size, size), dtype=np.uint8)
    problems: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            out[i] = load_rgb(path, size, resize)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            problems[i] = f"unreadable or corrupt image {path.name!r} ({type(e).__name__}: {e})"
    return out, problems
