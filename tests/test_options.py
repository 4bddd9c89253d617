"""Options are declared: a misspelled or out-of-range split/fusion option is a one-line ConfigError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException

from mmexp.core.errors import ConfigError
from mmexp.data.splits import (
    AllRowsSplit,
    GroupKFoldSplit,
    KFoldSplit,
    PredefinedSplit,
    RandomSplit,
    Split,
    StratifiedSplit,
    kfold_split,
    random_split,
    stratified_split,
)
from mmexp.models.fusion.attention import CrossAttentionFusion, EarlyTransformerFusion
from mmexp.models.fusion.pooled import LateFusion, SumFusion, UnimodalFusion
from mmexp.training.build import instantiate
from tests.conftest import run_cli

LABELS = np.repeat(np.arange(3), 20)
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 0}
FOLDS = {"k": 5, "fold": 0, "val": 0.2, "seed": 0}
DIMS = {"image": 8, "text": 8}


@pytest.mark.parametrize("cls", [RandomSplit, StratifiedSplit, KFoldSplit, GroupKFoldSplit, PredefinedSplit])
def test_a_misspelled_split_option_is_rejected(cls: type) -> None:
    with pytest.raises(TypeError, match="fodl"):
        cls(fodl=3)


@pytest.mark.parametrize("override", ["split.fodl=3", "split.folds=5"])
def test_a_misspelled_split_override_is_rejected_by_hydra(override: str, make_cfg) -> None:
    with pytest.raises(ConfigCompositionException):
        make_cfg("split=kfold", override)


@pytest.mark.parametrize(
    ("cls", "options", "field"),
    [
        (RandomSplit, {**FRACTIONS, "train": 0.9}, "must sum to 1"),
        (StratifiedSplit, {**FRACTIONS, "train": 0.0, "val": 0.5, "test": 0.5}, r"split\.train"),
        (StratifiedSplit, {**FRACTIONS, "on_leak": "warm"}, r"split\.on_leak"),
        (RandomSplit, {**FRACTIONS, "seed": "abc"}, r"split\.seed"),
        (KFoldSplit, {**FOLDS, "k": 1}, r"split\.k must be >= 2"),
        (KFoldSplit, {**FOLDS, "fold": 5}, r"split\.fold must be in 0\.\.4"),
        (KFoldSplit, {**FOLDS, "fold": -1}, r"split\.fold"),
        (KFoldSplit, {**FOLDS, "val": 1.0}, r"split\.val"),
        (GroupKFoldSplit, {**FOLDS, "k": 0}, r"split\.k"),
        (GroupKFoldSplit, {**FOLDS, "fold": 7}, r"split\.fold"),
        (GroupKFoldSplit, {**FOLDS, "on_leak": "loud"}, r"split\.on_leak"),
        (PredefinedSplit, {"val": -0.1, "seed": 0}, r"split\.val"),
        (AllRowsSplit, {"on_leak": "never"}, r"split\.on_leak"),
    ],
)
def test_each_split_checks_its_options_when_built(cls: type, options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        cls(**options)


def same(a: Split, b: Split) -> bool:
    return all(np.array_equal(getattr(a, name), getattr(b, name)) for name in ("train", "val", "test"))


def test_split_classes_give_the_same_split_as_their_functions() -> None:
    assert same(RandomSplit(**FRACTIONS)(LABELS, groups=None, predefined=None), random_split(LABELS, **FRACTIONS))
    assert same(StratifiedSplit(**FRACTIONS)(LABELS), stratified_split(LABELS, **FRACTIONS))
    assert same(KFoldSplit(**FOLDS, stratified=False)(LABELS), kfold_split(LABELS, **FOLDS, stratified=False))
    groups = np.array([f"g{i % 10}" for i in range(len(LABELS))], dtype=object)
    by_group = GroupKFoldSplit(**FOLDS)(LABELS, groups=groups, predefined=None)
    assert not set(groups[by_group.train]) & set(groups[by_group.test])
    column = np.array(["train"] * 40 + ["test"] * 20, dtype=object)
    predefined = PredefinedSplit(val=0.25, seed=0)(LABELS, groups=None, predefined=column)
    assert len(predefined.test) == 20 and len(predefined.val) == 10


def test_all_rows_split_makes_every_row_a_test_row() -> None:
    split = AllRowsSplit()(LABELS, groups=None, predefined=None)
    assert np.array_equal(split.test, np.arange(len(LABELS))) and np.array_equal(split.train, split.test)
    assert np.array_equal(split.val, split.test) and AllRowsSplit().on_leak == "ignore"


def test_every_split_config_builds_its_class(make_cfg) -> None:
    for name, cls in [
        ("random", RandomSplit),
        ("stratified", StratifiedSplit),
        ("kfold", KFoldSplit),
        ("group_kfold", GroupKFoldSplit),
        ("predefined", PredefinedSplit),
    ]:
        assert type(instantiate(make_cfg(f"split={name}").split)) is cls


def test_a_bad_split_value_reaches_the_user_unwrapped(make_cfg) -> None:
    """The datamodule gets its split through mmexp.training.build.instantiate, which unwraps ConfigError."""
    with pytest.raises(ConfigError, match=r"split\.k must be >= 2"):
        instantiate(make_cfg("split=kfold", "split.k=1").data)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: LateFusion(dims=DIMS, num_classes=3, combine="bogus"), r"fusion\.combine must be mean or learned"),
        (lambda: LateFusion(dims=DIMS, num_classes=3, hidden=-1), r"fusion\.hidden"),
        (lambda: CrossAttentionFusion(dims=DIMS, num_classes=3, direction="x"), r"fusion\.direction must be one of"),
        (lambda: CrossAttentionFusion(dims=DIMS, num_classes=3, dim=10, heads=4), r"fusion\.dim \(10\).*fusion\.heads"),
        (lambda: EarlyTransformerFusion(dims=DIMS, num_classes=3, heads=0), r"fusion\.heads"),
        (lambda: EarlyTransformerFusion(dims=DIMS, num_classes=3, dropout=1.5), r"fusion\.dropout"),
        (lambda: UnimodalFusion(dims=DIMS, num_classes=3, modality="audio"), r"fusion\.modality"),
        (lambda: SumFusion(dims=DIMS, num_classes=3, hidden=0), r"fusion\.hidden"),
    ],
)
def test_a_bad_fusion_option_is_a_config_error(build, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        build()


def test_every_fusion_declares_its_contract() -> None:
    import inspect

    from mmexp.models.fusion import attention, pooled

    classes = [
        c
        for module in (pooled, attention)
        for _, c in inspect.getmembers(module, inspect.isclass)
        if c.__module__ == module.__name__ and c.__name__.endswith("Fusion")
    ]
    assert len(classes) >= 10
    for cls in classes:
        assert cls.__annotations__.get("produces_logits") == "bool", cls
        assert cls.__annotations__.get("modalities") == "tuple[str, ...]", cls
        assert cls.produces_logits is (cls is LateFusion), cls


def test_a_bad_fusion_option_ends_the_run_with_one_line(tmp_path: Path, cache_dir: Path) -> None:
    result = run_cli(
        "mmexp.train",
        "fusion=late",
        "fusion.combine=bogus",
        "logger=none",
        "trainer.max_epochs=1",
        "data.synthetic.n_samples=60",
        "text_encoder=bow",
        f"paths.output_dir={tmp_path / 'outputs'}",
        f"paths.cache_dir={cache_dir}",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode != 0
    assert "mmexp: error: fusion.combine" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
