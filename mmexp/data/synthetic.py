"""Built-in procedural dataset whose label needs both the image and the text.

The label is ``<shape>-<word>``: the shape is drawn only in the image, the word is stated
only in the caption. The caption also names a random (usually wrong) shape and the image
has a random colour, position, size and background noise, so neither modality alone can
beat ``1 / n_words`` (image only) or ``1 / n_shapes`` (text only) accuracy.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mmexp.core.errors import ConfigError

SHAPES = ("circle", "square", "triangle", "cross", "diamond", "bar")
WORDS = ("calm", "stormy", "sunny", "foggy", "windy", "snowy")
FILLERS = (
    "a",
    "the",
    "picture",
    "photo",
    "of",
    "with",
    "some",
    "nice",
    "today",
    "seen",
    "near",
    "here",
    "small",
    "large",
    "maybe",
    "looks",
    "like",
    "and",
    "very",
    "scene",
)
MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and difficulty of the built-in dataset; generation is deterministic in ``seed``."""

    n_samples: int = 2000
    n_shapes: int = 3
    n_words: int = 2
    image_size: int = 32
    label_noise: float = 0.0
    pixel_noise: float = 0.1
    n_fillers: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "n_samples": self.n_samples >= 10,
            "n_shapes": 1 <= self.n_shapes <= len(SHAPES),
            "n_words": 1 <= self.n_words <= len(WORDS),
            "image_size": self.image_size >= 8,
            "label_noise": 0.0 <= self.label_noise < 1.0,
            "pixel_noise": 0.0 <= self.pixel_noise <= 1.0,
            "n_fillers": self.n_fillers >= 0,
        }
        for field, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"data.synthetic.{field}={getattr(self, field)!r} is out of range "
                    f"(n_samples>=10, 1<=n_shapes<={len(SHAPES)}, 1<=n_words<={len(WORDS)}, "
                    "image_size>=8, 0<=label_noise<1, 0<=pixel_noise<=1)"
                )

    @property
    def n_classes(self) -> int:
        return self.n_shapes * self.n_words

    def fingerprint(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def synthetic_root(spec: SyntheticSpec, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / f"synthetic-{spec.fingerprint()}"


def synthetic_cached(spec: SyntheticSpec, cache_dir: str | Path) -> bool:
    return (synthetic_root(spec, cache_dir) / MANIFEST_NAME).exists()


def ensure_synthetic(spec: SyntheticSpec, cache_dir: str | Path) -> Path:
    """Return the dataset root for ``spec``, generating it once; safe under concurrent sweeps."""
    root = synthetic_root(spec, cache_dir)
    if (root / MANIFEST_NAME).exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root.parent))
    try:
        _write_dataset(spec, staging)
        os.replace(staging, root)  # atomic: a reader sees all of it or nothing
    except OSError:
        if not (root / MANIFEST_NAME).exists():  # lost a race only if the winner finished
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _write_dataset(spec: SyntheticSpec, root: Path) -> None:
    rng = random.Random(spec.seed)
    (root / "images").mkdir()
    rows = []
    for i in range(spec.n_samples):
        shape, word = rng.randrange(spec.n_shapes), rng.randrange(spec.n_words)
        image_path = f"images/{i:06d}.png"
        _draw(SHAPES[shape], spec, rng).save(root / image_path)
        label = f"{SHAPES[shape]}-{WORDS[word]}"
        if rng.random() < spec.label_noise:
            label = f"{SHAPES[rng.randrange(spec.n_shapes)]}-{WORDS[rng.randrange(spec.n_words)]}"
        rows.append({"id": f"s{i:06d}", "image": image_path, "text": _caption(WORDS[word], spec, rng), "label": label})
    with open(root / MANIFEST_NAME, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


def _caption(word: str, spec: SyntheticSpec, rng: random.Random) -> str:
    """Filler words plus the label word plus a decoy shape name unrelated to the image."""
    tokens = [rng.choice(FILLERS) for _ in range(spec.n_fillers)]
    tokens.insert(rng.randrange(len(tokens) + 1), word)
    tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(SHAPES[: spec.n_shapes]))
    return " ".join(tokens)


def _draw(shape: str, spec: SyntheticSpec, rng: random.Random) -> Image.Image:
    s = spec.image_size
    background = tuple(rng.randrange(0, 80) for _ in range(3))
    image = Image.new("RGB", (s, s), background)
    draw = ImageDraw.Draw(image)
    color = tuple(rng.randrange(120, 256) for _ in range(3))
    half = rng.uniform(0.22, 0.38) * s
    cx, cy = rng.uniform(half, s - half), rng.uniform(half, s - half)
    box = (cx - half, cy - half, cx + half, cy + half)
    w = max(1, round(half / 2.5))
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=color)
    elif shape == "cross":
        draw.rectangle((cx - w / 2, cy - half, cx + w / 2, cy + half), fill=color)
        draw.rectangle((cx - half, cy - w / 2, cx + half, cy + w / 2), fill=color)
    elif shape == "diamond":
        draw.polygon([(cx, cy - half), (cx + half, cy), (cx, cy + half), (cx - half, cy)], fill=color)
    else:  # bar
        draw.rectangle((cx - half, cy - w / 2, cx + half, cy + w / 2), fill=color)
    if spec.pixel_noise > 0:
        noise_rng = np.random.default_rng(rng.randrange(2**32))
        noise = noise_rng.integers(0, 256, size=(s, s, 3), dtype=np.uint8)
        image = Image.blend(image, Image.fromarray(noise), 0.5 * spec.pixel_noise)
    return image
