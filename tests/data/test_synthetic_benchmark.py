"""The built-in benchmark's interactions: derived ceilings hold on generated data, and every one trains."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from mmexp.core.errors import ConfigError
from mmexp.data.synthetic import COLOURS, INTERACTIONS, WORDS, Pair, SyntheticSpec, ceilings, generate
from mmexp.train import train
from tests.conftest import REPO

MakeCfg = Callable[..., DictConfig]
FUSIONS = sorted(p.stem for p in (REPO / "conf" / "fusion").glob("*.yaml"))
FAST_FUSIONS = ("concat", "cross_attention")  # every fusion on conjunction: test_train.py (-m slow)
HARD: dict[str, Any] = {"label_noise": 0.2, "n_shapes": 4, "n_words": 3, "n_objects": 4, "missing_cue": 0.3, "seed": 1}


def best_accuracy(keys: Sequence[Hashable], labels: Sequence[str]) -> float:
    """Accuracy of the best predictor that sees only ``keys``: each key's majority label.

    The majority is learned on one half of the rows and scored on the other (both ways), so the
    estimate is not biased upwards by lucky majorities the way in-sample counts are.
    """
    correct = 0
    for fit in (0, 1):
        groups: dict[Hashable, Counter[str]] = defaultdict(Counter)
        for key, label in zip(keys[fit::2], labels[fit::2], strict=True):
            groups[key][label] += 1
        for key, label in zip(keys[1 - fit :: 2], labels[1 - fit :: 2], strict=True):
            correct += key in groups and groups[key].most_common(1)[0][0] == label
    return correct / len(labels)


@cache
def generated_rows(spec: SyntheticSpec) -> tuple[tuple[dict[str, Any], Pair], ...]:
    """``generate(spec)``'s rows and pairs, without the images, drawn once per spec (tests of one spec share them)."""
    return tuple((row, pair) for row, _, pair in generate(spec))


def measured_ceilings(spec: SyntheticSpec) -> dict[str, float]:
    """Ceilings estimated from the generated rows: what each reader sees, grouped against the real labels."""
    image: list[Hashable] = []
    text: list[Hashable] = []
    both: list[Hashable] = []
    labels: list[str] = []
    for row, pair in generated_rows(spec):
        stated = tuple(t for t in row["text"].split() if t in WORDS or t in COLOURS)
        if spec.interaction == "relational":  # the shapes present are all the image says about the label
            image.append(tuple(sorted(pair.shapes)))
            both.append(pair.shapes[pair.colours.index(stated[0])])  # the object the caption names
        else:
            image.append(pair.shapes)
            both.append((pair.shapes, stated))
        text.append(stated)
        labels.append(row["label"])
    assert len(set(labels)) == spec.n_classes
    return {
        "image": best_accuracy(image, labels),
        "text": best_accuracy(text, labels),
        "both": best_accuracy(both, labels),
    }


@pytest.mark.parametrize("hard", [False, True], ids=["defaults", "noisy"])
@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_unimodal_ceilings_hold_on_generated_data(interaction: str, hard: bool) -> None:
    spec = SyntheticSpec(interaction=interaction, n_samples=4000, **(HARD if hard else {}))
    derived, measured = ceilings(spec), measured_ceilings(spec)
    for reader, p in derived.items():
        tolerance = 4 * math.sqrt(p * (1 - p) / spec.n_samples) + 1e-9  # binomial, 4 sigma
        assert abs(measured[reader] - p) <= tolerance, (reader, measured[reader], p)


def assert_ceilings(expected: dict[str, tuple[float, float, float]], **spec: Any) -> None:
    """``ceilings()`` per interaction equals (image only, text only, both)."""
    for interaction, values in expected.items():
        got = ceilings(SyntheticSpec(interaction=interaction, **spec))
        assert (got["image"], got["text"], got["both"]) == pytest.approx(values), interaction


def test_derived_ceilings_at_the_defaults() -> None:
    expected = {  # (image only, text only, both), as in docs/benchmark.md
        "conjunction": (1 / 2, 1 / 3, 1.0),
        "unique_image": (1.0, 1 / 3, 1.0),
        "unique_text": (1 / 2, 1.0, 1.0),
        "redundant": (3 / 4, 3 / 4, 7 / 8),
        "synergy": (1 / 2, 1 / 2, 1.0),
        "relational": (17 / 27, 1 / 3, 1.0),
    }
    assert_ceilings(expected)
    noisy = ceilings(SyntheticSpec(label_noise=0.3))  # conjunction, 6 classes
    assert noisy["image"] == pytest.approx(0.7 / 2 + 0.3 / 6) and noisy["both"] == pytest.approx(0.7 + 0.3 / 6)


def test_default_interaction_generates_what_the_first_version_did() -> None:
    """Same fingerprint (same cache dir) and the same rows as before ``interaction`` existed."""
    noisy = {"seed": 2, "label_noise": 0.3, "n_shapes": 5, "n_words": 4, "pixel_noise": 0.0, "n_fillers": 2}
    golden: list[tuple[dict[str, Any], str, str]] = [  # sha256 of manifest.jsonl as the first version wrote it
        ({"seed": 1}, "9e5fe0f392fa", "4183dfad9422bd279e42871e5e15fa3916988fa10bd38b5053d57f921f100a7b"),
        (
            {**noisy, "image_size": 16},
            "37185b2f4a4e",
            "ae060ba3d24ef5b78aeb51dae49aa22fba72e6e72a2b0a529342663a66fe291f",
        ),
    ]
    for fields, fingerprint, digest in golden:
        spec = SyntheticSpec(n_samples=40, **fields)
        manifest = "".join(json.dumps(row) + "\n" for row, _, _ in generate(spec))
        assert spec.fingerprint() == fingerprint
        assert hashlib.sha256(manifest.encode()).hexdigest() == digest
    assert SyntheticSpec().fingerprint() == "800f214edf93"  # the quickstart's cache


def test_new_fields_change_the_fingerprint_only_when_set() -> None:
    base = SyntheticSpec()
    assert SyntheticSpec(interaction="conjunction", n_objects=3, missing_cue=0.5).fingerprint() == base.fingerprint()
    others = {SyntheticSpec(interaction=i).fingerprint() for i in INTERACTIONS}
    assert len(others) == len(INTERACTIONS)
    assert SyntheticSpec(interaction="relational", n_objects=4).fingerprint() not in others


def test_generation_is_deterministic_in_the_seed() -> None:
    def digest(spec: SyntheticSpec) -> str:
        h = hashlib.sha256()
        for row, image, _ in generate(spec):
            h.update(json.dumps(row).encode() + image.tobytes())
        return h.hexdigest()

    spec = SyntheticSpec(interaction="relational", n_samples=30)
    assert digest(spec) == digest(SyntheticSpec(interaction="relational", n_samples=30))
    assert digest(spec) != digest(SyntheticSpec(interaction="relational", n_samples=30, seed=1))


def test_relational_objects_have_distinct_colours_and_the_caption_names_one() -> None:
    for row, _, pair in generate(SyntheticSpec(interaction="relational", n_samples=200, n_objects=5)):
        assert len(pair.shapes) == len(set(pair.colours)) == 5
        named = [t for t in row["text"].split() if t in COLOURS]
        assert len(named) == 1 and named[0] in pair.colours


@pytest.mark.parametrize(
    ("override", "field"),
    [({"interaction": "xor"}, "interaction"), ({"n_objects": 9}, "n_objects"), ({"missing_cue": 1.5}, "missing_cue")],
)
def test_bad_benchmark_fields_name_the_field(override: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"data.synthetic.{field}="):
        SyntheticSpec(**override)


def _train_on(make_cfg: MakeCfg, interaction: str, fusion: str, tmp_path: Path) -> None:
    metrics = train(
        make_cfg(
            "debug=fast",
            "logger=none",
            "text_encoder=bow",
            f"fusion={fusion}",
            f"data.synthetic.interaction={interaction}",
            "data.synthetic.n_samples=120",
        )
    )
    assert 0.0 <= metrics["test"]["test/acc"] <= 1.0
    labels = json.loads((tmp_path / "run" / "labels.json").read_text())
    assert len(labels) == SyntheticSpec(interaction=interaction).n_classes


# every interaction trains with concat in the fast suite; with cross_attention (which every encoder pair in
# test_train.py runs) with -m slow: the interaction changes only the generated data, the same statements run
@pytest.mark.parametrize(
    ("interaction", "fusion"),
    [
        (i, f) if f == "concat" else pytest.param(i, f, marks=pytest.mark.slow)
        for f in FAST_FUSIONS
        for i in INTERACTIONS
        if i != "conjunction"
    ],
)
def test_every_interaction_trains(interaction: str, fusion: str, make_cfg: MakeCfg, tmp_path: Path) -> None:
    _train_on(make_cfg, interaction, fusion, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fusion", [f for f in FUSIONS if f not in FAST_FUSIONS])
@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_every_interaction_trains_with_every_fusion(
    interaction: str, fusion: str, make_cfg: MakeCfg, tmp_path: Path
) -> None:
    _train_on(make_cfg, interaction, fusion, tmp_path)
