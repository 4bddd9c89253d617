"""Built-in procedural benchmark: image + caption pairs whose label depends on them in a known way.

``interaction`` picks the rule. With S = n_shapes, W = n_words, V = min(S, W), n = n_objects,
m = missing_cue, the Bayes ceilings from the generating attributes (what a perfect reader of one
modality, or of both, can reach) are:

==============  =====================  ====================  =========  ===  ==============  =======  =========
interaction     image shows            caption states        label      K    image only      text     both
==============  =====================  ====================  =========  ===  ==============  =======  =========
conjunction     shape s                word w                s-w        S*W  1/W             1/S      1
unique_image    shape s                random word (noise)   s          S    1               1/S      1
unique_text     random shape (noise)   word w                w          W    1/W             1        1
redundant       shape y, or none (m)   word y, or none (m)   y          V    1-m+m/V         1-m+m/V  1-m²+m²/V
synergy         shape a < V            word b < V            (a+b) % V  V    1/V             1/V      1
relational      n shapes, n colours    one of those colours  its shape  S    E[max count]/n  1/S      1
==============  =====================  ====================  =========  ===  ==============  =======  =========

With ``label_noise`` e (the label is replaced by a uniformly drawn class) each ceiling p becomes
``(1 - e) p + e / K``; ``ceilings(spec)`` computes them. Relational: the image-only reader guesses
the commonest shape; "E[max count]" is the expected largest count among n shapes drawn uniformly
(S=3, n=3: 17/27). Every caption also holds filler words and a decoy shape name; colour, size,
position and pixel noise are random, so they only lower what a model reaches. Late fusion adds
per-modality logits and cannot represent synergy (V=2: at most 3/4). The default, ``conjunction``,
generates exactly what the first version did, into the same cache directory.

``task`` picks the label format (the default, ``multiclass``, is the table above):

==========  =====================================================  ========================================
task        label                                                  ceilings (image / text / both)
==========  =====================================================  ========================================
binary      "yes" iff the multiclass label is class 0, else "no"   Bayes accuracy of yes/no; any interaction
multilabel  every "shape-word" pair with the shape shown and the   mean per-label (Hamming) accuracy;
            word stated (a sorted list, possibly empty)            conjunction only
==========  =====================================================  ========================================

Binary positives are 1/K of the rows (the multiclass classes are uniform), a minority on purpose: it
exercises PR-AUC and threshold tuning. Multilabel: shape i is shown, and word j stated, independently with
chance ``presence_rates`` (0.75, 0.45, 0.27, ...), so labels have unequal frequencies and a row holds zero
or more of them. Label noise with K = 2: binary redraws the label as a fair yes/no; multilabel flips each
label bit with chance e/2 (the same thing per bit), so every ceiling p becomes ``(1 - e) p + e / 2``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mmexp.core.errors import ConfigError, OutputError, cache_write_reason
from mmexp.core.progress import progress

log = logging.getLogger(__name__)
SHAPES = ("circle", "square", "triangle", "cross", "diamond", "bar")
WORDS = ("calm", "stormy", "sunny", "foggy", "windy", "snowy")
COLOURS = {
    "red": (230, 50, 50),
    "green": (60, 200, 70),
    "blue": (70, 110, 255),
    "yellow": (240, 220, 50),
    "magenta": (220, 70, 220),
    "cyan": (60, 220, 230),
}
INTERACTIONS = ("conjunction", "unique_image", "unique_text", "redundant", "synergy", "relational")
TASKS = ("multiclass", "binary", "multilabel")
BINARY_CLASSES = ("no", "yes")  # sorted: the default positive class, the second, is "yes"
FILLERS = (
    *("a", "the", "picture", "photo", "of", "with", "some", "nice", "today", "seen"),
    *("near", "here", "small", "large", "maybe", "looks", "like", "and", "very", "scene"),
)
MANIFEST_NAME = "manifest.jsonl"
_LATER_FIELDS = ("interaction", "n_objects", "missing_cue", "task")  # in the fingerprint only when not default


@dataclass(frozen=True)
class SyntheticSpec:
    """Size, label rule and difficulty of the built-in dataset; generation is deterministic in ``seed``."""

    n_samples: int = 2000
    n_shapes: int = 3
    n_words: int = 2
    image_size: int = 32
    label_noise: float = 0.0
    pixel_noise: float = 0.1
    n_fillers: int = 6
    seed: int = 0
    interaction: str = "conjunction"
    n_objects: int = 3  # relational: objects per image, each a different colour
    missing_cue: float = 0.5  # redundant: chance that a modality omits its cue, independently
    task: str = "multiclass"  # label format: multiclass | binary | multilabel (conjunction only)

    def __post_init__(self) -> None:
        if self.interaction not in INTERACTIONS:
            raise ConfigError(
                f"data.synthetic.interaction={self.interaction!r} is not one of: {', '.join(INTERACTIONS)}"
            )
        if self.task not in TASKS:
            raise ConfigError(f"data.synthetic.task={self.task!r} is not one of: {', '.join(TASKS)}")
        if self.task == "multilabel" and self.interaction != "conjunction":
            raise ConfigError(
                f"data.synthetic.task=multilabel supports only data.synthetic.interaction=conjunction "
                f"(got {self.interaction!r}): its labels are the shape-word pairs of image and caption"
            )
        checks = {
            "n_samples": self.n_samples >= 10,
            "n_shapes": 1 <= self.n_shapes <= len(SHAPES),
            "n_words": 1 <= self.n_words <= len(WORDS),
            "image_size": self.image_size >= 8,
            "label_noise": 0.0 <= self.label_noise < 1.0,
            "pixel_noise": 0.0 <= self.pixel_noise <= 1.0,
            "n_fillers": self.n_fillers >= 0,
            "n_objects": 1 <= self.n_objects <= len(COLOURS),
            "missing_cue": 0.0 <= self.missing_cue <= 1.0,
        }
        for field, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"data.synthetic.{field}={getattr(self, field)!r} is out of range "
                    f"(n_samples>=10, 1<=n_shapes<={len(SHAPES)}, 1<=n_words<={len(WORDS)}, "
                    f"image_size>=8, 0<=label_noise<1, 0<=pixel_noise<=1, n_fillers>=0, "
                    f"1<=n_objects<={len(COLOURS)}, 0<=missing_cue<=1)"
                )

    @property
    def n_values(self) -> int:
        """V: the values each modality takes under ``redundant`` and ``synergy``."""
        return min(self.n_shapes, self.n_words)

    @property
    def n_classes(self) -> int:
        """K: label classes (multilabel: the S*W shape-word pairs, any number of them per row)."""
        if self.task == "binary":
            return len(BINARY_CLASSES)
        return {
            "conjunction": self.n_shapes * self.n_words,
            "unique_image": self.n_shapes,
            "unique_text": self.n_words,
            "redundant": self.n_values,
            "synergy": self.n_values,
            "relational": self.n_shapes,
        }[self.interaction]

    def fingerprint(self) -> str:
        defaults = {f.name: f.default for f in fields(self) if f.name in _LATER_FIELDS}
        spec = {k: v for k, v in asdict(self).items() if k not in defaults or v != defaults[k]}
        blob = json.dumps(spec, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


@dataclass(frozen=True)
class Pair:
    """What one generated image shows, what its caption states, and its label before label noise."""

    shapes: tuple[int, ...]  # shape index of each object drawn (empty: no shape)
    colours: tuple[str, ...]  # relational, multilabel: the palette colour of each object; else empty (random)
    keys: tuple[str, ...]  # the words the caption states besides fillers and the decoy
    label: int | tuple[int, ...]  # a class index; multilabel: the indices of the classes present, ascending


def ceilings(spec: SyntheticSpec) -> dict[str, float]:
    """Bayes accuracy of a perfect image-only, text-only and image+text reader (see the module tables).

    Multilabel: the mean over the S*W labels of each label's Bayes accuracy (Hamming accuracy).
    """
    derive = {"multiclass": _multiclass_ceilings, "binary": _binary_ceilings, "multilabel": _hamming_ceilings}
    clean = derive[spec.task](spec)
    e = spec.label_noise
    k = spec.n_classes if spec.task == "multiclass" else 2  # binary, and each multilabel bit, is yes/no
    return {name: (1 - e) * p + e / k for name, p in zip(("image", "text", "both"), clean, strict=True)}


def _multiclass_ceilings(spec: SyntheticSpec) -> tuple[float, float, float]:
    s, w, v, m = spec.n_shapes, spec.n_words, spec.n_values, spec.missing_cue
    if spec.interaction == "relational":
        return _expected_max_count(s, spec.n_objects) / spec.n_objects, 1 / s, 1.0
    return {
        "conjunction": (1 / w, 1 / s, 1.0),
        "unique_image": (1.0, 1 / s, 1.0),
        "unique_text": (1 / w, 1.0, 1.0),
        "redundant": (1 - m + m / v, 1 - m + m / v, 1 - m * m + m * m / v),
        "synergy": (1 / v, 1 / v, 1.0),
    }[spec.interaction]


def _binary_ceilings(spec: SyntheticSpec) -> tuple[float, float, float]:
    """Yes = multiclass class 0; a reader says the likelier answer given what it sees: max(P(yes), P(no))."""
    s, w, v, m = spec.n_shapes, spec.n_words, spec.n_values, spec.missing_cue
    if spec.interaction == "relational":  # P(yes | image) = (count of shape 0) / n
        return _expected_majority_share(1 / s, spec.n_objects), _sure(1 / s), 1.0
    return {
        # conjunction: a reader that sees shape != 0 (word != 0) knows "no"; else P(yes) is 1/W (1/S)
        "conjunction": ((s - 1) / s + _sure(1 / w) / s, (w - 1) / w + _sure(1 / s) / w, 1.0),
        "unique_image": (1.0, _sure(1 / s), 1.0),
        "unique_text": (_sure(1 / w), 1.0, 1.0),
        "redundant": (1 - m + m * _sure(1 / v), 1 - m + m * _sure(1 / v), 1 - m * m + m * m * _sure(1 / v)),
        "synergy": (_sure(1 / v), _sure(1 / v), 1.0),
    }[spec.interaction]


def _hamming_ceilings(spec: SyntheticSpec) -> tuple[float, float, float]:
    """Label (i, j) = shape i shown and word j stated; image-only knows the first, text-only the second."""
    image, text = label_ceilings(spec)
    return sum(image) / len(image), sum(text) / len(text), 1.0


def label_ceilings(spec: SyntheticSpec) -> tuple[list[float], list[float]]:
    """Multilabel, without label noise: each class's image-only and text-only Bayes accuracy, in class order.

    Image-only: absent for sure when shape i is not shown (1 - p_i), else right with max(q_j, 1 - q_j);
    text-only symmetrically.
    """
    shown, stated = presence_rates(spec.n_shapes), presence_rates(spec.n_words)
    pairs = [(p, q) for p in shown for q in stated]  # class order: shape-major, as _class_names
    return [1 - p + p * _sure(q) for p, q in pairs], [1 - q + q * _sure(p) for p, q in pairs]


def presence_rates(k: int) -> tuple[float, ...]:
    """Multilabel: chance that shape (word) i is shown (stated); decreasing, so label frequencies differ."""
    return tuple(0.75 * 0.6**i for i in range(k))


def _sure(p: float) -> float:
    """Accuracy of the better of two answers when the first is right with chance ``p``."""
    return max(p, 1 - p)


def _expected_majority_share(p: float, n: int) -> float:
    """E[max(c, n - c)] / n for c ~ Binomial(n, p): the image reader of binary relational says the majority."""
    return sum(math.comb(n, c) * p**c * (1 - p) ** (n - c) * max(c, n - c) / n for c in range(n + 1))


def _expected_max_count(n_shapes: int, n_objects: int) -> float:
    """E[largest count of one shape] among ``n_objects`` shapes drawn uniformly from ``n_shapes``."""
    draws = itertools.product(range(n_shapes), repeat=n_objects)
    return sum(max(Counter(d).values()) for d in draws) / n_shapes**n_objects


def _class_names(spec: SyntheticSpec) -> list[str]:
    if spec.task == "binary":
        return list(BINARY_CLASSES)
    shapes, words = SHAPES[: spec.n_shapes], WORDS[: spec.n_words]
    return {
        "conjunction": [f"{shape}-{word}" for shape in shapes for word in words],
        "unique_image": list(shapes),
        "unique_text": list(words),
        "redundant": [f"class{k}" for k in range(spec.n_values)],
        "synergy": [f"class{k}" for k in range(spec.n_values)],
        "relational": list(shapes),
    }[spec.interaction]


def _sample_pair(spec: SyntheticSpec, rng: random.Random) -> Pair:
    if spec.task == "multilabel":
        return _sample_multilabel(spec, rng)
    pair = _sample_multiclass(spec, rng)
    if spec.task == "binary":  # "yes" (index 1) iff class 0: a 1/K minority
        return Pair(pair.shapes, pair.colours, pair.keys, int(pair.label == 0))
    return pair


def _sample_multiclass(spec: SyntheticSpec, rng: random.Random) -> Pair:
    kind, s, w, v = spec.interaction, spec.n_shapes, spec.n_words, spec.n_values
    if kind == "relational":
        colours = tuple(rng.sample(sorted(COLOURS), spec.n_objects))
        shapes = tuple(rng.randrange(s) for _ in colours)
        target = rng.randrange(spec.n_objects)
        return Pair(shapes, colours, (colours[target],), shapes[target])
    if kind in ("redundant", "synergy"):
        a, b = rng.randrange(v), rng.randrange(v)  # image value, text value (redundant: both state a)
        if kind == "synergy":
            return Pair((a,), (), (WORDS[b],), (a + b) % v)
        image_has, text_has = rng.random() >= spec.missing_cue, rng.random() >= spec.missing_cue
        return Pair((a,) if image_has else (), (), (WORDS[a],) if text_has else (), a)
    shape, word = rng.randrange(s), rng.randrange(w)  # conjunction draws first, as the first version did
    label = {"conjunction": shape * w + word, "unique_image": shape, "unique_text": word}[kind]
    return Pair((shape,), (), (WORDS[word],), label)


def _sample_multilabel(spec: SyntheticSpec, rng: random.Random) -> Pair:
    """Each shape shown and each word stated independently (``presence_rates``); labels are their pairs."""
    shapes = tuple(i for i, p in enumerate(presence_rates(spec.n_shapes)) if rng.random() < p)
    words = tuple(j for j, q in enumerate(presence_rates(spec.n_words)) if rng.random() < q)
    colours = tuple(rng.sample(sorted(COLOURS), len(shapes)))  # one grid cell each, as relational draws them
    labels = tuple(i * spec.n_words + j for i in shapes for j in words)
    return Pair(shapes, colours, tuple(WORDS[j] for j in words), labels)


def _noisy_label(spec: SyntheticSpec, rng: random.Random, label: int) -> int:
    if rng.random() >= spec.label_noise:
        return label
    if spec.task == "binary":
        return rng.randrange(len(BINARY_CLASSES))
    if spec.interaction == "conjunction":  # two draws, as the first version did
        return rng.randrange(spec.n_shapes) * spec.n_words + rng.randrange(spec.n_words)
    return rng.randrange(spec.n_classes)


def _noisy_labels(spec: SyntheticSpec, rng: random.Random, labels: tuple[int, ...]) -> list[int]:
    """Multilabel: each of the K label bits flips with chance e/2 (a fair yes/no redraw with chance e)."""
    flip = spec.label_noise / 2
    return [k for k in range(spec.n_classes) if (k in labels) != (rng.random() < flip)]


def generate(spec: SyntheticSpec) -> Iterator[tuple[dict[str, Any], Image.Image, Pair]]:
    """Yield each manifest row (image path not yet written), its image and the pair behind it.

    The row's ``label`` is a class name, or (multilabel) a sorted list of class names, possibly empty.
    """
    rng = random.Random(spec.seed)
    names = _class_names(spec)
    for i in range(spec.n_samples):
        pair = _sample_pair(spec, rng)
        image = _draw(pair, spec, rng)
        label: str | list[str]
        if isinstance(pair.label, tuple):
            label = sorted(names[k] for k in _noisy_labels(spec, rng, pair.label))
        else:
            label = names[_noisy_label(spec, rng, pair.label)]
        row = {
            "id": f"s{i:06d}",
            "image": f"images/{i:06d}.png",
            "text": _caption(pair.keys, spec, rng),
            "label": label,
        }
        yield row, image, pair


def synthetic_root(spec: SyntheticSpec, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / f"synthetic-{spec.fingerprint()}"


def synthetic_cached(spec: SyntheticSpec, cache_dir: str | Path) -> bool:
    return (synthetic_root(spec, cache_dir) / MANIFEST_NAME).exists()


def ensure_synthetic(spec: SyntheticSpec, cache_dir: str | Path) -> Path:
    """Return the dataset root for ``spec``, generating it once; safe under concurrent sweeps."""
    root = synthetic_root(spec, cache_dir)
    if (root / MANIFEST_NAME).exists():
        return root
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root.parent))
    except OSError as e:
        raise _cannot_write(e, root) from e
    try:
        _write_dataset(spec, staging)
        os.replace(staging, root)  # atomic: a reader sees all of it or nothing
    except OSError as e:
        if not (root / MANIFEST_NAME).exists():  # lost a race only if the winner finished
            raise _cannot_write(e, root) from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _cannot_write(error: OSError, root: Path) -> OutputError:
    """One line (a full or read-only cache disk), not Pillow's traceback from the image it was saving."""
    return OutputError(f"cannot write the built-in dataset into {root.parent}: {cache_write_reason(error)}")


def _write_dataset(spec: SyntheticSpec, root: Path) -> None:
    (root / "images").mkdir()
    rows = []
    with progress("data: writing the built-in dataset", spec.n_samples, logger=log) as shown:
        for row, image, _ in generate(spec):
            image.save(root / row["image"])
            rows.append(row)
            shown.advance()
    with open(root / MANIFEST_NAME, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


def _caption(keys: tuple[str, ...], spec: SyntheticSpec, rng: random.Random) -> str:
    """Filler words plus the stated ``keys`` plus a decoy shape name unrelated to the image."""
    tokens = [rng.choice(FILLERS) for _ in range(spec.n_fillers)]
    for key in keys:
        tokens.insert(rng.randrange(len(tokens) + 1), key)
    tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(SHAPES[: spec.n_shapes]))
    return " ".join(tokens)


def _draw(pair: Pair, spec: SyntheticSpec, rng: random.Random) -> Image.Image:
    """One shape of a random colour anywhere, or (relational, multilabel) one shape per colour, each in a cell."""
    s = spec.image_size
    background = tuple(rng.randrange(0, 80) for _ in range(3))
    image = Image.new("RGB", (s, s), background)
    draw = ImageDraw.Draw(image)
    if pair.colours:
        grid = 2 if len(pair.shapes) <= 4 else 3
        cell = s / grid
        slots = rng.sample(range(grid * grid), len(pair.shapes))
        for shape, colour, slot in zip(pair.shapes, pair.colours, slots, strict=True):
            half = rng.uniform(0.28, 0.42) * cell
            jitter = cell / 2 - half
            cx = (slot % grid + 0.5) * cell + rng.uniform(-jitter, jitter)
            cy = (slot // grid + 0.5) * cell + rng.uniform(-jitter, jitter)
            _paint(draw, SHAPES[shape], cx, cy, half, COLOURS[colour])
    elif pair.shapes:
        color = tuple(rng.randrange(120, 256) for _ in range(3))
        half = rng.uniform(0.22, 0.38) * s
        cx, cy = rng.uniform(half, s - half), rng.uniform(half, s - half)
        _paint(draw, SHAPES[pair.shapes[0]], cx, cy, half, color)
    if spec.pixel_noise > 0:
        noise_rng = np.random.default_rng(rng.randrange(2**32))
        noise = noise_rng.integers(0, 256, size=(s, s, 3), dtype=np.uint8)
        image = Image.blend(image, Image.fromarray(noise), 0.5 * spec.pixel_noise)
    return image


def _paint(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, half: float, color: tuple[int, ...]) -> None:
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
