"""Options are declared: a misspelled or out-of-range split/fusion option is a one-line ConfigError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

import mmexp
from mmexp.app.cli import run_job
from mmexp.app.config_checks import check_config, config_problems
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
from mmexp.data.task import Task
from mmexp.models.fusion.attention import CrossAttentionFusion, EarlyTransformerFusion
from mmexp.models.fusion.pooled import LateFusion, SumFusion, UnimodalFusion
from mmexp.training.build import build_task, instantiate
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


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
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


# --- issue 26: each option's rule written once, owned by the component that is built from it ---

SEVEN = [  # (overrides, the key the one line starts with, a fragment of the owner's rule)
    (["model.class_weights=balance"], "model.class_weights", "must be none, balanced or one positive weight"),
    (["model.class_weights=[1.0,-2.0]"], "model.class_weights", "every weight must be a positive number"),
    (["model.layer_lr_decay=1.5"], "model.layer_lr_decay", "must be in (0, 1]"),
    (["image_encoder=hf", "image_encoder.name=x", "image_encoder.lora_rank=-1"], "image_encoder.lora_rank", ">= 0"),
    (["text_encoder=minilm", "text_encoder.lora_rank=-2"], "text_encoder.lora_rank", ">= 0"),
    (["split.train=0.9"], "split.train + split.val + split.test", "must sum to 1"),
    (["split=kfold", "split.fold=7"], "split.fold", "must be in 0..4 for split.k=5"),
    (["split=group_kfold", "split.k=1"], "split.k", "must be >= 2"),
    (["split.on_leak=loud"], "split.on_leak", "must be warn, error or ignore"),
    (["data.sampler=uniform"], "data.sampler", "must be null (shuffle) or balanced"),
]


@pytest.mark.parametrize(("overrides", "key", "rule"), SEVEN, ids=[" ".join(o) for o, _, _ in SEVEN])
def test_each_owned_option_is_one_line_naming_its_key_before_anything_is_built(
    overrides: list[str], key: str, rule: str, make_cfg
) -> None:
    with pytest.raises(ConfigError) as refused:
        check_config(make_cfg(*overrides))
    message = str(refused.value)
    assert "\n" not in message and message.startswith(key) and rule in message


OWNED_RULES = {  # a fragment only the rule's one definition writes -> the module that owns it
    "model.class_weights={": "mmexp/training/options.py",
    "model.layer_lr_decay={": "mmexp/training/options.py",
    "lora_rank={rank!r}": "mmexp/models/encoders/fine_tuning.py",
    "must sum to 1": "mmexp/data/splits.py",
    "split.fold must be in 0..": "mmexp/data/splits.py",
    "must be warn, error or ignore": "mmexp/data/splits.py",
    "must be null (shuffle) or balanced": "mmexp/data/sampler_option.py",
}


@pytest.mark.parametrize("fragment", OWNED_RULES)
def test_each_owned_rule_is_written_in_one_module(fragment: str) -> None:
    package = Path(mmexp.__file__).parent
    holders = [p.relative_to(package.parent).as_posix() for p in package.rglob("*.py") if fragment in p.read_text()]
    assert holders == [OWNED_RULES[fragment]]


def test_the_owner_applies_the_same_rule_where_it_is_built() -> None:
    from mmexp.data.datamodule import MultimodalDataModule
    from mmexp.training.options import class_weights_option

    with pytest.raises(ConfigError, match=r"^data\.sampler must be null \(shuffle\) or balanced \(got 'uniform'\)$"):
        MultimodalDataModule(split=RandomSplit(**FRACTIONS), root="unused", sampler="uniform")
    with pytest.raises(ConfigError, match=r"^data\.on_leak must be warn, error or ignore \(got 'loud'\)$"):
        MultimodalDataModule(split=RandomSplit(**FRACTIONS), root="unused", on_leak="loud")
    assert class_weights_option([1, 4]) == [1.0, 4.0] and class_weights_option("none") is None


def test_every_problem_of_a_config_is_one_line_of_one_error(make_cfg) -> None:
    cfg = make_cfg("seed=-1", "data.sampler=uniform", "model.layer_lr_decay=2", "+fusion.hiden=3")
    with pytest.raises(ConfigError) as refused:
        check_config(cfg)
    lines = str(refused.value).splitlines()
    assert len(lines) == 3  # every bad value; the unknown option comes once the values are right (no import yet)
    assert lines[0] == "seed=-1 is invalid: expected an integer from 0 to 4294967295, e.g. seed=0"
    assert sorted(lines[1:]) == [
        "data.sampler must be null (shuffle) or balanced (got 'uniform')",
        "model.layer_lr_decay=2 must be in (0, 1] (null: no decay), e.g. model.layer_lr_decay=0.8",
    ]
    unknown = config_problems(make_cfg("+fusion.hiden=3", "+optimizer.lrr=0.1"))
    assert [line.split(" ")[0] for line in unknown] == ["fusion.hiden", "optimizer.lrr"]
    assert unknown[0].startswith("fusion.hiden is not an option here: remove it")
    with pytest.raises(SystemExit) as exited:  # the command line's error path: one "mmexp: error:" line each
        run_job(lambda: check_config(cfg), run_dir=None)
    assert str(exited.value.code).splitlines() == [f"mmexp: error: {line}" for line in lines]


def test_a_single_problem_prints_as_before(make_cfg) -> None:
    with pytest.raises(SystemExit) as exited:
        run_job(lambda: check_config(make_cfg("seed=-1")), run_dir=None)
    assert exited.value.code == (
        "mmexp: error: seed=-1 is invalid: expected an integer from 0 to 4294967295, e.g. seed=0"
    )


def test_options_are_bound_to_the_constructor_without_building_it(make_cfg) -> None:
    assert config_problems(make_cfg("split=kfold", "~split.k")) == [
        "split.k is required: add +split.k=<value> (or k to the YAML of its config group)"
    ]
    problems = config_problems(make_cfg("+task.label_sepp=x", "+optimizer.lrr=0.1"))
    assert any(p.startswith("task.label_sepp is not an option here") for p in problems)
    assert any(p.startswith("optimizer.lrr is not an option here") for p in problems)
    assert config_problems(make_cfg()) == []


# --- issue 26: the builder completes every partial; task is built like every group ---


def test_no_conf_yaml_needs_partial() -> None:
    conf = Path(mmexp.__file__).parents[1] / "conf"
    assert [p.name for p in conf.rglob("*.yaml") if "_partial_" in p.read_text()] == []


def test_a_config_without_partial_builds_the_same_model_as_one_with_it(make_cfg) -> None:
    import torch

    from mmexp.training.build import build_model

    plain = make_cfg("text_encoder=bigru", "fusion=gated")
    recorded = make_cfg("text_encoder=bigru", "fusion=gated")  # as a run recorded before the builder completed them
    with open_dict(recorded):
        for group in ("text_encoder", "fusion", "model", "optimizer", "scheduler"):
            recorded[group]._partial_ = True
    assert all("_partial_" not in plain[g] for g in ("text_encoder", "fusion", "model", "optimizer"))
    models = []
    for cfg in (plain, recorded):
        torch.manual_seed(0)
        models.append(build_model(cfg, num_classes=3, vocab_size=30))
    a, b = (m.state_dict() for m in models)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert type(models[0].encoders["text"]).__name__ == "BiGRUEncoder"


def test_a_user_text_encoder_yaml_without_partial_builds(tmp_path: Path) -> None:
    from mmexp.training.build import build_text_encoder

    (tmp_path / "mine.yaml").write_text("_target_: mmexp.models.encoders.text.BagOfWordsEncoder\nembed_dim: 8\n")
    encoder = build_text_encoder(OmegaConf.load(tmp_path / "mine.yaml"), vocab_size=12)
    assert encoder.out_dim == 8


@pytest.mark.parametrize("name", ["multiclass", "binary", "multilabel"])
def test_task_is_built_from_its_target_like_every_group(name: str, make_cfg) -> None:
    cfg = make_cfg(f"task={name}")
    assert cfg.task._target_ == "mmexp.data.task.Task"
    task = build_task(cfg.task)
    options = {k: v for k, v in OmegaConf.to_container(cfg.task).items() if k != "_target_"}
    assert task == Task(**options) and task.name == name
    assert build_task(OmegaConf.create(options)) == task  # a run recorded before task had a _target_
    assert build_task(None) == Task()
    with pytest.raises(ConfigError, match=r"^task\.label_sepp is not an option here"):
        build_task(make_cfg(f"task={name}", "+task.label_sepp=x").task)
