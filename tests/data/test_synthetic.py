"""The built-in benchmark's tasks: binary and multilabel labels follow their rules and derived ceilings.

The multiclass default must not move: same cache directory, same rows.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import pytest

from mmexp.core.errors import ConfigError
from mmexp.data.synthetic import (
    INTERACTIONS,
    SHAPES,
    TASKS,
    WORDS,
    SyntheticSpec,
    ceilings,
    ensure_synthetic,
    generate,
    label_ceilings,
    presence_rates,
)
from tests.data.test_synthetic_benchmark import HARD, assert_ceilings, best_accuracy, generated_rows, measured_ceilings

N = 4000
SMALL = {"n_samples": N, "image_size": 8}  # the labels and captions do not depend on the image size


def within(measured: float, p: float, n: int = N) -> bool:
    """``measured`` is a proportion over ``n`` rows whose expectation is ``p``: 4 binomial SDs."""
    return abs(measured - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-9


def digest(spec: SyntheticSpec) -> str:
    h = hashlib.sha256()
    for row, image, _ in generate(spec):
        h.update(json.dumps(row).encode() + image.tobytes())
    return h.hexdigest()


def test_multiclass_default_is_unchanged() -> None:
    """Fingerprints and rows (manifest + pixels) as computed before ``task`` existed."""
    assert SyntheticSpec().fingerprint() == SyntheticSpec(task="multiclass").fingerprint() == "800f214edf93"
    golden: list[tuple[dict[str, Any], str, str]] = [
        ({}, "af571218cb67", "b7d25de15448a0079ce074c7b3443e6270c2062c0ec85b8a3b4957d34e3a2044"),
        (
            {"interaction": "relational", "label_noise": 0.3, "n_objects": 4},
            "1dc4b23c4dad",
            "0719db28615abe12b55835d8f419f9e23ba7f59ef1372d360f014e9495dfe892",
        ),
    ]
    for fields, fingerprint, rows in golden:
        spec = SyntheticSpec(n_samples=50, **fields)
        assert spec.fingerprint() == fingerprint
        assert digest(spec) == rows


def test_each_task_has_its_own_cache() -> None:
    prints = {SyntheticSpec(task=t).fingerprint() for t in TASKS}
    assert len(prints) == len(TASKS)
    assert SyntheticSpec(task="binary", interaction="synergy").fingerprint() not in prints


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"task": "ordinal"}, "data.synthetic.task='ordinal' is not one of: multiclass, binary, multilabel"),
        *(({"task": "multilabel", "interaction": i}, "interaction=conjunction") for i in INTERACTIONS[1:]),
    ],
)
def test_bad_task_is_a_config_error(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SyntheticSpec(**override)


# ---- binary ----------------------------------------------------------------------------------------


def test_binary_ceilings_at_the_defaults() -> None:
    expected = {  # (image only, text only, both), as in docs/benchmark.md
        "conjunction": (5 / 6, 5 / 6, 1.0),
        "unique_image": (1.0, 2 / 3, 1.0),
        "unique_text": (1 / 2, 1.0, 1.0),
        "redundant": (3 / 4, 3 / 4, 7 / 8),
        "synergy": (1 / 2, 1 / 2, 1.0),
        "relational": (7 / 9, 2 / 3, 1.0),
    }
    assert_ceilings(expected, task="binary")
    noisy = ceilings(SyntheticSpec(task="binary", label_noise=0.3))
    assert noisy["image"] == pytest.approx(0.7 * 5 / 6 + 0.15) and noisy["both"] == pytest.approx(0.85)


@pytest.mark.parametrize(("n_shapes", "n_objects"), [(2, 3), (3, 3), (4, 4), (3, 6)])
def test_binary_relational_image_ceiling_by_enumeration(n_shapes: int, n_objects: int) -> None:
    """The image reader sees every shape; P(yes) is the share of shape 0, so it says the majority."""
    draws = list(itertools.product(range(n_shapes), repeat=n_objects))
    share = [d.count(0) / n_objects for d in draws]
    brute = sum(max(p, 1 - p) for p in share) / len(draws)
    spec = SyntheticSpec(interaction="relational", task="binary", n_shapes=n_shapes, n_objects=n_objects)
    assert ceilings(spec)["image"] == pytest.approx(brute)


@pytest.mark.parametrize("hard", [False, True], ids=["defaults", "noisy"])
@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_binary_rate_and_ceilings_hold_on_generated_data(interaction: str, hard: bool) -> None:
    spec = SyntheticSpec(interaction=interaction, task="binary", **SMALL, **(HARD if hard else {}))
    labels = [row["label"] for row, _ in generated_rows(spec)]  # the rows measured_ceilings reads below
    assert set(labels) == {"no", "yes"}
    k = SyntheticSpec(interaction=interaction, **(HARD if hard else {})).n_classes  # the multiclass K
    e = spec.label_noise
    assert within(labels.count("yes") / N, (1 - e) / k + e / 2)  # multiclass classes are uniform
    derived, measured = ceilings(spec), measured_ceilings(spec)
    for reader, p in derived.items():
        assert within(measured[reader], p), (reader, measured[reader], p)


# ---- multilabel ------------------------------------------------------------------------------------


def multilabel_rows(spec: SyntheticSpec) -> tuple[list[Hashable], list[Hashable], list[list[str]]]:
    """What the image reader sees (the shapes), what the text reader sees (the stated words), the labels."""
    image: list[Hashable] = []
    text: list[Hashable] = []
    labels: list[list[str]] = []
    for row, _, pair in generate(spec):
        image.append(pair.shapes)
        text.append(tuple(sorted(t for t in row["text"].split() if t in WORDS)))
        labels.append(row["label"])
    return image, text, labels


def class_names(spec: SyntheticSpec) -> list[str]:
    return [f"{s}-{w}" for s in SHAPES[: spec.n_shapes] for w in WORDS[: spec.n_words]]


@pytest.mark.parametrize("hard", [False, True], ids=["defaults", "noisy"])
def test_multilabel_labels_and_hamming_ceilings(hard: bool) -> None:
    noisy = {"label_noise": 0.2, "n_shapes": 4, "n_words": 3, "seed": 1}
    spec = SyntheticSpec(task="multilabel", **SMALL, **(noisy if hard else {}))
    names, e = class_names(spec), spec.label_noise
    assert spec.n_classes == len(names)
    image, text, labels = multilabel_rows(spec)
    assert all(isinstance(y, list) and y == sorted(y) and set(y) <= set(names) for y in labels)
    sizes = Counter(len(y) for y in labels)
    assert sizes[0] > 0.05 * N and len(sizes) >= 4  # empty label lists occur; the number of labels varies

    counts = Counter(name for y in labels for name in y)
    shown, stated = presence_rates(spec.n_shapes), presence_rates(spec.n_words)
    clean = [p * q for p in shown for q in stated]
    for name, f in zip(names, clean, strict=True):
        assert within(counts[name] / N, (1 - e / 2) * f + e / 2 * (1 - f)), name  # each bit flips with e/2
    assert max(clean) > 4 * min(clean)  # unequal frequencies

    image_ceilings, text_ceilings = label_ceilings(spec)
    measured = {"image": 0.0, "text": 0.0, "both": 0.0}
    both = list(zip(image, text, strict=True))
    for k, name in enumerate(names):
        bits = ["1" if name in y else "0" for y in labels]
        for reader, keys, clean_p in (
            ("image", image, image_ceilings[k]),
            ("text", text, text_ceilings[k]),
            ("both", both, 1.0),
        ):
            got, p = best_accuracy(keys, bits), (1 - e) * clean_p + e / 2
            assert within(got, p), (name, reader, got, p)
            measured[reader] += got / len(names)
    derived = ceilings(spec)
    for reader, p in derived.items():  # a mean of proportions: its SD is at most the mean SD, < 1/(2 sqrt N)
        assert abs(measured[reader] - p) <= 4 * 0.5 / math.sqrt(N), (reader, measured[reader], p)
    assert derived["image"] == pytest.approx((1 - e) * sum(image_ceilings) / len(names) + e / 2)


def test_multilabel_defaults_and_draws() -> None:
    got = ceilings(SyntheticSpec(task="multilabel"))
    # shapes 0.75, 0.45, 0.27; words 0.75, 0.45: image-only sees the shape and says "word 0 yes, word 1 no"
    image = sum(1 - p + p * max(q, 1 - q) for p in (0.75, 0.45, 0.27) for q in (0.75, 0.45)) / 6
    text = sum(1 - q + q * max(p, 1 - p) for p in (0.75, 0.45, 0.27) for q in (0.75, 0.45)) / 6
    assert (got["image"], got["text"], got["both"]) == pytest.approx((image, text, 1.0))
    for row, _, pair in generate(SyntheticSpec(task="multilabel", n_samples=200, n_shapes=6, n_words=6)):
        assert len(set(pair.colours)) == len(pair.shapes)  # one palette colour, one grid cell per shape
        assert row["label"] == sorted(f"{SHAPES[s]}-{w}" for s in pair.shapes for w in pair.keys)


def test_tasks_write_their_labels_to_the_manifest(tmp_path: Path) -> None:
    for task, kind in (("binary", str), ("multilabel", list)):
        root = ensure_synthetic(SyntheticSpec(task=task, n_samples=12, image_size=8), tmp_path)
        rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
        assert len(rows) == 12 and all(isinstance(r["label"], kind) for r in rows)
        assert all((root / r["image"]).is_file() for r in rows)
