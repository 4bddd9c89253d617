"""End-to-end runs of the real entry point on the built-in data."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from mmexp.data.text import tokenize
from mmexp.train import train
from tests.conftest import REPO, cover_fast, run_cli
from tests.hf_factory import required_overrides

FUSIONS = sorted(p.stem for p in (REPO / "conf" / "fusion").glob("*.yaml"))
RUN_FILES = (
    "config.yaml",
    "run_info.json",
    "split.json",
    "labels.json",
    "vocab.json",
    "test_inputs.jsonl",
    "metrics.json",
    "checkpoints/best.ckpt",
    "checkpoints/last.ckpt",
    "csv/metrics.csv",
    "predictions/val.csv",
    "predictions/test.csv",
)


# One fusion end to end here in the fast suite: the others train end to end in other fast tests (concat is the
# default, cross_attention runs in every encoder pair, attention and product in the presets) and run forward,
# backward and with missing inputs in tests/models/test_fusion.py; `-m slow` trains every one. Checked with per-test
# coverage: the slow cases cover no statement of mmexp/ that the fast suite misses.
FAST_FUSIONS = {"late"}


@pytest.mark.parametrize(
    "fusion", [f if f in FAST_FUSIONS else pytest.param(f, marks=pytest.mark.slow) for f in FUSIONS]
)
def test_fast_run_for_every_fusion(fusion: str, make_cfg, tmp_path: Path) -> None:
    metrics = train(make_cfg("debug=fast", f"fusion={fusion}", "text_encoder=bow"))
    assert 0.0 <= metrics["test"]["test/acc"] <= 1.0
    assert (tmp_path / "run" / "metrics.json").exists()


def test_run_dir_is_complete_and_consistent(make_cfg, tmp_path: Path) -> None:
    run = tmp_path / "run"
    metrics = train(make_cfg("debug=fast", "seed=7"))
    for name in RUN_FILES:
        assert (run / name).exists(), name
    saved = json.loads((run / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    labels = json.loads((run / "labels.json").read_text())
    assert saved["labels"] == labels and len(labels) == 6
    expected = {
        f"test/{m}"
        for m in (
            "acc",
            "f1_macro",
            "f1_micro",
            "precision_macro",
            "precision_micro",
            "recall_macro",
            "recall_micro",
            "auroc",
            "ece",
            "loss",
        )
    }
    assert expected <= set(saved["test"]) and "val/f1_macro" in saved["val"]
    assert set(saved["test_per_class"]) == {"precision", "recall", "f1", "support"}
    specs = saved["metric_specs"]  # direction and range of every logged metric, for the report
    assert {k.split("/")[1] for k in [*saved["val"], *saved["test"]]} == set(specs)
    assert specs["loss"] == {"higher_is_better": False, "bounds": None}
    assert specs["f1_macro"] == {"higher_is_better": True, "bounds": [0.0, 1.0]}
    assert set(saved["test_per_class"]["f1"]) == set(labels)
    matrix = saved["confusion_matrix"]
    split = json.loads((run / "split.json").read_text())
    assert sum(map(sum, matrix)) == len(split["test"])  # limit_test_batches=2 x 256 covers the 300 test rows
    inputs = [json.loads(line) for line in (run / "test_inputs.jsonl").read_text().splitlines()]
    assert [row["id"] for row in inputs] == split["test"]  # what the report shows of a test row, recorded
    assert all(Path(row["image"]).is_absolute() and Path(row["image"]).is_file() and row["text"] for row in inputs)
    info = json.loads((run / "run_info.json").read_text())
    assert info["status"] == "completed" and info["seed"] == 7 and info["device"] == "cpu"
    assert info["packages"]["torch"] == torch.__version__
    assert info["start_time"] <= info["end_time"]
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["MultimodalDataModule"]["labels"] == labels  # vocab and label map travel with the model


def test_split_is_disjoint_and_tokenizer_sees_only_train(make_cfg, tmp_path: Path) -> None:
    train(make_cfg("debug=fast"))
    run = tmp_path / "run"
    split = json.loads((run / "split.json").read_text())
    sets = [set(split[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    data = OmegaConf.load(run / "config.yaml").data
    assert sum(map(len, sets)) == data.synthetic.n_samples  # every row of the built-in dataset, once
    manifest = hydra.utils.instantiate(data).manifest  # this run's data
    texts = {row["id"]: row["text"] for row in map(json.loads, manifest.read_text().splitlines())}
    train_tokens = {t for i in split["train"] for t in tokenize(texts[i])}
    vocab = set(json.loads((run / "vocab.json").read_text()))
    assert vocab - {"<pad>", "<unk>"} == train_tokens


@pytest.mark.slow  # range checks on a 2-class run: every statement it runs, fast runs run (per-test coverage)
def test_binary_task_trains_and_reports(make_cfg) -> None:
    metrics = train(make_cfg("debug=fast", "data.synthetic.n_shapes=2", "data.synthetic.n_words=1"))
    assert len(metrics["labels"]) == 2 and len(metrics["confusion_matrix"]) == 2
    assert 0.0 <= metrics["test"]["test/auroc"] <= 1.0


def test_refuses_to_reuse_a_run_dir(make_cfg) -> None:
    from mmexp.core.errors import ConfigError

    train(make_cfg("debug=fast"))
    with pytest.raises(ConfigError, match="already holds a run"):
        train(make_cfg("debug=fast"))


def test_cli_refuses_a_used_run_dir_before_writing_anything(tmp_path: Path) -> None:
    run = tmp_path / "old"
    (run / ".hydra").mkdir(parents=True)
    (run / "run_info.json").write_text('{"status": "completed"}')
    (run / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    result = run_cli("mmexp.train", "seed=2", f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"run dir {run} already holds a run; refusing to overwrite it" in result.stderr
    assert sorted(p.name for p in run.rglob("*")) == [".hydra", "overrides.yaml", "run_info.json"]
    assert (run / ".hydra" / "overrides.yaml").read_text() == "- seed=1\n"


@pytest.mark.parametrize(
    ("fusion", "low", "high"),
    [
        ("concat", 0.90, 1.0),
        ("text_only", 0.0, 0.70),
        # the fast suite keeps one fused and one unimodal run (~60% of this test's time was these two)
        pytest.param("attention", 0.90, 1.0, marks=pytest.mark.slow),
        pytest.param("image_only", 0.0, 0.70, marks=pytest.mark.slow),
    ],
)
def test_fusion_needs_both_modalities(fusion: str, low: float, high: float, make_cfg) -> None:
    """Built-in data caps image-only at 1/n_words = 0.5 and text-only at 1/n_shapes = 0.33."""
    metrics = train(
        make_cfg(
            f"fusion={fusion}",
            "logger=none",
            "trainer.max_epochs=6",
            "data.synthetic.n_samples=800",  # concat reaches 0.99 test accuracy on these 120 test rows
            "trainer.enable_model_summary=false",
        )
    )
    assert low <= metrics["test"]["test/acc"] <= high


@pytest.mark.slow  # the fast suite runs sweeps (tests/e2e/test_sweeps.py) and commands from other dirs (test_packaging)
def test_cli_multirun_from_another_directory(tmp_path: Path) -> None:
    out = tmp_path / "elsewhere"
    out.mkdir()
    result = run_cli(
        "mmexp.train",
        "-m",
        "fusion=concat,attention",
        "debug=fast",
        "logger=none",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=out,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((out / "outputs" / "multirun").glob("*/*/metrics.json"))
    assert [p.parent.name for p in runs] == [
        "0_fusion=concat",  # named by what the sweep varies (mmexp/core/naming.py)
        "1_fusion=attention",
    ]


def test_cli_config_error_is_one_line(tmp_path: Path) -> None:
    result = run_cli("mmexp.train", "data.batch_size=-3", cwd=tmp_path)
    assert result.returncode != 0
    assert "mmexp: error: data.batch_size=-3 is invalid" in result.stderr
    assert "Traceback" not in result.stderr


PRESETS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("seed*.yaml"))
# seed000 (product) and seed001 (attention: logs its modality weights) train in the fast suite; the rest use
# parts every fast run uses (seed002's 150-px images made it the slowest case), and their sizes are checked below
FAST_PRESETS = {"seed000_product", "seed001_attention"}


@pytest.mark.parametrize(
    "preset", [p if p in FAST_PRESETS else pytest.param(p, marks=pytest.mark.slow) for p in PRESETS]
)
def test_origin_preset_trains(preset: str, make_cfg) -> None:
    metrics = train(
        make_cfg(f"experiment={preset}", "debug=fast", "logger=none", "data.synthetic.n_samples=300")
    )  # seed002 draws 150x150 images: keep it small
    assert 0.0 <= metrics["test"]["test/acc"] <= 1.0


def test_presets_reproduce_the_origin_sizes(make_cfg) -> None:
    from mmexp.training.build import build_model

    seed003 = build_model(make_cfg("experiment=seed003_concat"), vocab_size=10000, num_classes=6)
    assert seed003.encoders["text"].embedding.weight.shape == (10000, 256)
    assert seed003.encoders["text"].out_dim == 64 and seed003.encoders["image"].out_dim == 64
    assert isinstance(seed003.head, torch.nn.Linear) and seed003.head.in_features == 128
    seed004 = build_model(make_cfg("experiment=seed004_cnn"), vocab_size=50, num_classes=6)
    assert set(seed004.encoders) == {"image"}


IMAGE_ENCODERS = sorted(p.stem for p in (REPO / "conf" / "image_encoder").glob("*.yaml"))
TEXT_ENCODERS = sorted(p.stem for p in (REPO / "conf" / "text_encoder").glob("*.yaml"))


PRETRAINED = {"efficientnet_lite0", "hf"}  # end to end with one partner each; every fusion in test_combinations
PAIRS = [
    (i, t)
    for i in IMAGE_ENCODERS
    for t in TEXT_ENCODERS
    if (i not in PRETRAINED or t == "lstm") and (t not in PRETRAINED or i == "cnn")
]
# EfficientNet-Lite0 trains end to end in the fast suite already (test_pretrained_preset_trains_on_frozen_cached_
# features, 224 px), so its pair here (12 s) runs with -m slow only
FAST_PAIRS = [p for p in PAIRS if p[0] != "efficientnet_lite0"]
SLOW_PAIRS = [pytest.param(*p, marks=pytest.mark.slow) for p in PAIRS if p[0] == "efficientnet_lite0"]


@pytest.mark.parametrize(
    ("image_encoder", "text_encoder"), [*cover_fast(FAST_PAIRS, lambda c: c[0], lambda c: c[1]), *SLOW_PAIRS]
)
def test_every_encoder_pair_trains(image_encoder: str, text_encoder: str, make_cfg) -> None:
    metrics = train(
        make_cfg(
            f"image_encoder={image_encoder}",
            f"text_encoder={text_encoder}",
            *required_overrides("image_encoder", image_encoder),
            *required_overrides("text_encoder", text_encoder),
            "debug=fast_dev_run",
            "logger=none",
            "fusion=cross_attention",
            "data.image_size=16",
            "data.batch_size=16",
            "data.eval_batch_size=16",
        )
    )
    assert 0.0 <= metrics["test"]["test/acc"] <= 1.0
