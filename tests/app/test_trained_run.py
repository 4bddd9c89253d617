"""``TrainedRun``: one way to rebuild a training run from a checkpoint (eval, predict, export, bundles)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from mmexp.core.errors import ConfigError
from mmexp.evaluation.inference import infer
from mmexp.evaluation.trained_run import TrainedRun
from mmexp.train import train
from tests.conftest import compose_cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("trained_run")
    overrides = ("debug=fast", "logger=none", "text_encoder=bow", "data.image_size=16", "data.synthetic.n_samples=60")
    train(compose_cfg(out, cache_dir, *overrides))
    return out / "run"


def test_a_rebuilt_run_scores_its_test_rows_as_training_wrote_them(trained: Path) -> None:
    run = TrainedRun.load(trained / "checkpoints" / "best.ckpt")
    assert run.run_dir == trained.resolve() and run.labels == json.loads((trained / "labels.json").read_text())
    model = run.model()
    assert not model.training
    datamodule = run.datamodule()
    datamodule.prepare_data()
    datamodule.setup("test")
    with open(trained / "predictions" / "test.csv", newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    scored = infer(model, datamodule.test_dataloader(), device=torch.device("cpu"))
    assert scored.index is not None
    assert [datamodule.info.ids[i] for i in scored.index.tolist()] == [r["id"] for r in written]
    expected = torch.tensor([[float(r[f"p_{name}"]) for name in run.labels] for r in written])
    assert torch.allclose(scored.probs, expected, atol=1e-6)
    assert run.source == {
        "checkpoint": str(trained.resolve() / "checkpoints" / "best.ckpt"),
        "epoch": run.checkpoint["epoch"],
        "run_dir": str(trained.resolve()),
    }


def test_a_checkpoint_outside_its_run_dir_is_one_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ckpt_path=.*no such file"):
        TrainedRun.load(tmp_path / "missing.ckpt")
