"""Class imbalance: balanced / explicit loss weights, the balanced sampler, per-class support in metrics and report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmexp.app.config_checks import check_config
from mmexp.core.config_io import load_config
from mmexp.core.errors import ConfigError
from mmexp.data.balance import BalancedSampler, balanced_class_weights
from mmexp.data.datamodule import MultimodalDataModule
from mmexp.reporting.document import Table
from mmexp.reporting.groups import analyse
from mmexp.reporting.runs import find_run_dirs, load_run
from mmexp.reporting.sections import per_class
from mmexp.train import train
from mmexp.training.build import build_datamodule, build_model
from tests.conftest import compose_cfg
from tests.data_factory import draw, write_manifest

MAJOR, MINOR = 180, 20  # a 90/10 split of two labels


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder dataset of 200 rows: 90% "major" (red round), 10% "minor" (blue square)."""
    root = tmp_path_factory.mktemp("imbalanced")
    (root / "img").mkdir()
    images = {
        label: draw(color, shape) for label, color, shape in (("major", "red", "round"), ("minor", "blue", "square"))
    }
    rows = []
    for i in range(MAJOR + MINOR):
        label = "major" if i < MAJOR else "minor"
        images[label].save(root / "img" / f"{i:03d}.png")
        rows.append({"id": f"r{i}", "image": f"img/{i:03d}.png", "text": f"a {label} thing {i}", "label": label})
    write_manifest(root, rows)
    return root


def folder(root: Path, *overrides: str) -> tuple[str, ...]:
    return ("data=folder", f"data.root={root}", "split.on_leak=ignore", *overrides)  # rows share 2 images


def datamodule(tmp_path: Path, cache_dir: Path, root: Path, *overrides: str, seed: int = 0) -> MultimodalDataModule:
    cfg = compose_cfg(tmp_path, cache_dir, *folder(root, *overrides))
    dm = build_datamodule(cfg.data, cfg.text_encoder)
    torch.manual_seed(seed)  # what seed_everything(cfg.seed) does before train.py sets the data up
    dm.setup("fit")
    return dm


def drawn_labels(dm: MultimodalDataModule) -> torch.Tensor:
    return torch.cat([batch.label for batch in dm.train_dataloader()])


def test_balanced_weights_are_sklearns_on_the_train_split(tmp_path: Path, cache_dir: Path, imbalanced: Path) -> None:
    from sklearn.utils.class_weight import compute_class_weight

    dm = datamodule(tmp_path, cache_dir, imbalanced)
    train_labels = dm.train_labels().numpy()
    assert len(train_labels) == len(dm.info.split.train) < MAJOR + MINOR  # the train split only
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=train_labels)
    assert balanced_class_weights(dm.train_labels(), 2).tolist() == pytest.approx(expected.tolist(), rel=1e-6)


def test_weighted_loss_is_torchs_cross_entropy_with_those_weights(tmp_path: Path, cache_dir: Path) -> None:
    cfg = compose_cfg(tmp_path, cache_dir, "model.class_weights=[1.0,3.0,0.5]", "model.label_smoothing=0.1")
    model = build_model(cfg, num_classes=3, vocab_size=20)
    logits, labels = torch.randn(8, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 1] * 2)
    expected = F.cross_entropy(logits, labels, weight=torch.tensor([1.0, 3.0, 0.5]), label_smoothing=0.1)
    assert model.loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert model.state_dict()["class_weight"].tolist() == [1.0, 3.0, 0.5]  # saved in the checkpoint
    plain = build_model(compose_cfg(tmp_path, cache_dir), num_classes=3, vocab_size=20)
    assert "class_weight" not in plain.state_dict()  # unweighted checkpoints keep their keys: old ones still load
    assert plain.loss(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("model.class_weights=[1.0,-2.0]", "model.class_weights"),
        ("model.class_weights=balance", "model.class_weights"),
        ("data.sampler=uniform", "data.sampler"),
    ],
)
def test_bad_values_are_one_config_error_before_any_data_is_read(
    tmp_path: Path, cache_dir: Path, override: str, field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        check_config(compose_cfg(tmp_path, cache_dir, override))


def test_a_weight_list_of_the_wrong_length_names_the_expected_length_and_the_class_order(
    tmp_path: Path, cache_dir: Path, imbalanced: Path
) -> None:
    cfg = compose_cfg(
        tmp_path, cache_dir, "logger=none", "debug=fast", *folder(imbalanced, "model.class_weights=[1,2,3]")
    )
    with pytest.raises(ConfigError, match=r"has 3 value\(s\); expected 2, .*: major, minor$"):
        train(cfg)


@pytest.mark.parametrize("resident", ["false", "true"])
def test_the_balanced_sampler_draws_classes_about_equally_and_reproducibly(
    tmp_path: Path, cache_dir: Path, imbalanced: Path, resident: str
) -> None:
    overrides = ("data.sampler=balanced", f"data.device_resident={resident}")
    dm = datamodule(tmp_path, cache_dir, imbalanced, *overrides)
    n = len(dm.info.split.train)
    labels = drawn_labels(dm)
    assert len(labels) == n  # one epoch: len(train) draws
    assert abs(int(labels.sum()) - n / 2) < 4 * math.sqrt(n / 4)  # minority drawn ~half the time (4 sigma)
    assert dm.train_labels().float().mean() < 0.15  # while the train split holds ~10% minority rows
    again = datamodule(tmp_path, cache_dir, imbalanced, *overrides)
    assert torch.equal(drawn_labels(again), labels)  # same seed, same draws
    other = datamodule(tmp_path, cache_dir, imbalanced, *overrides, seed=1)
    assert not torch.equal(drawn_labels(other), labels)


def test_each_epoch_draws_anew_and_a_resumed_epoch_draws_the_same() -> None:
    labels = torch.tensor([0] * 90 + [1] * 10)
    first = BalancedSampler(labels, num_classes=2, seed=3)
    first.set_epoch(0)
    epoch0 = list(first)
    first.set_epoch(1)
    epoch1 = list(first)
    assert epoch0 != epoch1
    resumed = BalancedSampler(labels, num_classes=2, seed=3)
    resumed.set_epoch(1)  # what Lightning calls when a run resumes at epoch 1
    assert list(resumed) == epoch1


def test_a_weighted_balanced_run_trains_and_reports_per_class_support(
    tmp_path: Path, cache_dir: Path, imbalanced: Path
) -> None:
    from sklearn.utils.class_weight import compute_class_weight

    overrides = folder(imbalanced, "model.class_weights=balanced", "data.sampler=balanced")
    train(compose_cfg(tmp_path, cache_dir, "logger=none", "debug=fast", *overrides))
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    split = json.loads((run / "split.json").read_text())
    support = metrics["test_per_class"]["support"]
    assert set(support) == {"major", "minor"} and sum(support.values()) == len(split["test"])
    assert support["minor"] < support["major"]

    ckpt = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    manifest = [json.loads(line) for line in (imbalanced / "manifest.jsonl").read_text().splitlines()]
    label_of = {row["id"]: row["label"] for row in manifest}
    train_labels = [label_of[i] for i in split["train"]]
    expected = compute_class_weight("balanced", classes=np.array(["major", "minor"]), y=np.array(train_labels))
    assert ckpt["state_dict"]["class_weight"].tolist() == pytest.approx(expected.tolist(), rel=1e-6)
    train_cfg = load_config(run / "config.yaml")  # as mmexp.eval rebuilds it: the weights come from the checkpoint
    dm = build_datamodule(train_cfg.data, train_cfg.text_encoder)
    dm.load_state_dict(ckpt["MultimodalDataModule"])
    rebuilt = build_model(train_cfg, num_classes=2, **dm.tokenizer.encoder_kwargs())
    rebuilt.load_state_dict(ckpt["state_dict"])  # strict
    assert rebuilt.class_weight is not None and torch.equal(rebuilt.class_weight, ckpt["state_dict"]["class_weight"])

    report = analyse([load_run(d) for d in find_run_dirs([tmp_path])], metric="f1_macro", baseline=None, ignore=())
    table = per_class(report)
    assert isinstance(table, Table) and table.headers[1:4] == ("class", "n", "support")
    shown = {row[1]: row[3] for row in table.rows}
    assert shown == {"major": str(support["major"]), "minor": str(support["minor"])}
