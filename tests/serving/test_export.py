"""`python -m mmexp.export`: a trained checkpoint as one ONNX or TorchScript file with a plain-tensor signature,
plus preprocessing.json, matching the Lightning model's probabilities when run in a fresh process by a client
that knows only the export dir (tests/serving_client.py)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from mmexp.app.compose import compose_train_config
from mmexp.contracts import Batch
from mmexp.core.errors import ConfigError, RunDirInUse
from mmexp.data.tokenizers import WordTokenizer
from mmexp.export import EXPORTERS, export
from mmexp.models.encoders.base import _pixel_affine
from mmexp.serving.export import TOLERANCE, Trained, export_model
from mmexp.serving.formats import ONNX, TORCHSCRIPT
from mmexp.serving.graph import INPUTS
from mmexp.train import train
from mmexp.training.classifier import MultimodalClassifier
from tests.conftest import REPO, compose_cfg, compose_command, run_cli
from tests.data_factory import clean_rows, write_manifest
from tests.hf_factory import required_overrides, tiny_models

FUSIONS = sorted(p.stem for p in (REPO / "conf" / "fusion").glob("*.yaml"))
SMALL = ["debug=fast", "logger=none", "data=folder", "data.image_size=16"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_manifest(root, clean_rows(root, n=48))
    return root


def train_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, data: Path, *overrides: str) -> Path:
    out = tmp_path_factory.mktemp("train")
    train(compose_cfg(out, cache_dir, *SMALL, f"data.root={data}", *overrides))
    return out / "run"


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, data: Path) -> Path:
    """The default model (cnn + lstm + concat), trained once for this module."""
    return train_run(tmp_path_factory, cache_dir, data)


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, data: Path) -> Path:
    """Frozen Hugging Face backbones (tiny local ViT at 32 px, so the graph resizes the 16 px images; tiny BERT)."""
    models = tiny_models()
    hf = ["image_encoder=hf", f"image_encoder.name={models['vit']}", "text_encoder=hf"]
    return train_run(tmp_path_factory, cache_dir, data, *hf, f"text_encoder.name={models['bert']}", "fusion=attention")


def compose_export(out: Path, run: Path, *overrides: str) -> DictConfig:
    ckpt = run / "checkpoints" / "best.ckpt"
    return compose_command("export", out, out / "cache", f"ckpt_path={ckpt}", *overrides, run_dir=out / "export")


def served(model_dir: Path, data: Path, run: Path, tmp_path: Path) -> dict[str, list[float]]:
    """The test rows scored by tests/serving_client.py in a fresh process (no mmexp import)."""
    ids = set(json.loads((run / "split.json").read_text())["test"])
    rows = [line for line in (data / "manifest.jsonl").read_text().splitlines() if json.loads(line)["id"] in ids]
    manifest = tmp_path / "test_rows.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    client = REPO / "tests" / "serving_client.py"
    done = subprocess.run(
        [sys.executable, str(client), str(model_dir), str(data), str(manifest)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mmexp" not in done.stderr
    return dict(json.loads(done.stdout))


def lightning_probabilities(run: Path) -> dict[str, list[float]]:
    """The Lightning model's probabilities of the test rows, as the run wrote them (predictions/test.csv)."""
    with open(run / "predictions" / "test.csv", newline="") as f:
        return {r["id"]: [float(v) for k, v in r.items() if k.startswith("p_")] for r in csv.DictReader(f)}


def assert_parity(served_probs: dict[str, list[float]], expected: dict[str, list[float]]) -> None:
    assert served_probs.keys() == expected.keys() and len(expected) >= 8
    worst = max(abs(a - b) for k in expected for a, b in zip(served_probs[k], expected[k], strict=True))
    assert worst <= 1e-5, worst


def test_default_model_exports_to_torchscript_and_matches_lightning_in_a_fresh_process(
    default_run: Path, data: Path, tmp_path: Path
) -> None:
    result = export(compose_export(tmp_path, default_run, "format=torchscript"))
    model_dir = Path(result["model_dir"])
    assert model_dir == tmp_path / "export" / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.pt", "preprocessing.json", "vocab.json"]
    spec = json.loads((model_dir / "preprocessing.json").read_text())
    labels = json.loads((default_run / "labels.json").read_text())
    assert spec["labels"] == labels and spec["task"] == "multiclass" and spec["output"]["activation"] == "softmax"
    assert [i["name"] for i in spec["inputs"]] == list(INPUTS) and spec["inputs"][0]["shape"] == ["batch", 3, 16, 16]
    assert spec["image"] | {"size": 16, "resize": "squash", "mean": [0.5] * 3} == spec["image"]
    assert spec["text"]["tokenizer"] == "words" and json.loads((model_dir / "vocab.json").read_text())[:2] == [
        "<pad>",
        "<unk>",
    ]
    assert spec["verified"]["max_abs_diff"] <= TOLERANCE and len({s[1] for s in spec["verified"]["inputs"]}) > 2
    assert json.loads((tmp_path / "export" / "run_info.json").read_text())["status"] == "completed"
    assert_parity(served(model_dir, data, default_run, tmp_path), lightning_probabilities(default_run))


def test_lstm_model_is_refused_by_onnx_in_one_line_naming_torchscript(default_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^format=onnx: text_encoder \(LSTMEncoder\) .* use format=torchscript") as e:
        export(compose_export(tmp_path, default_run, "format=onnx"))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "export" / "model").exists() and [p.name for p in tmp_path.glob("export/.*")] == []


@pytest.mark.slow  # ~60 s on 2 busy cores: the dynamo exporter on two transformers, a fresh process importing them
def test_pretrained_model_exports_to_onnx_and_matches_lightning_in_a_fresh_process(
    pretrained_run: Path, data: Path, tmp_path: Path
) -> None:
    model_dir = Path(export(compose_export(tmp_path, pretrained_run, "format=onnx"))["model_dir"])
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.onnx", "preprocessing.json", "tokenizer"]
    spec = json.loads((model_dir / "preprocessing.json").read_text())
    assert spec["text"]["tokenizer"] == "huggingface" and (model_dir / "tokenizer" / "tokenizer_config.json").is_file()
    assert spec["image"]["mean"] == pytest.approx([0.4] * 3) and spec["image"]["model_size"] == 32
    assert_parity(served(model_dir, data, pretrained_run, tmp_path), lightning_probabilities(pretrained_run))


def test_export_refuses_other_runs_dirs_and_unknown_formats(default_run: Path, tmp_path: Path) -> None:
    ckpt = f"ckpt_path={default_run / 'checkpoints' / 'best.ckpt'}"
    inside = compose_command("export", tmp_path, tmp_path, ckpt, run_dir=default_run / "exported")
    with pytest.raises(RunDirInUse, match="inside the training run"):
        export(inside)
    with pytest.raises(ConfigError, match="format=tflite: expected one of onnx, torchscript"):
        export(compose_export(tmp_path, default_run, "format=tflite"))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    for write in EXPORTERS.values():
        with pytest.raises(RunDirInUse, match="not empty"):
            write(default_run / "checkpoints" / "best.ckpt", taken)
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]


def tiny_classifier(fusion: str, task: str = "multiclass") -> Trained:
    """An untrained tiny cnn + bow model with ``fusion``: export needs weights, not good ones."""
    overrides = [f"fusion={fusion}", "text_encoder=bow", "text_encoder.embed_dim=8", "image_encoder.channels=[4,8]"]
    cfg = compose_train_config([*overrides, f"task={task}"], run_dir=Path("unused"))
    tokenizer = WordTokenizer(max_tokens=12)
    tokenizer.fit(["a red round thing", "a blue square thing number one"])
    from mmexp.training.build import build_model

    torch.manual_seed(0)
    model = build_model(cfg, num_classes=3, labels=["x", "y", "z"], **tokenizer.encoder_kwargs())
    assert isinstance(model, MultimodalClassifier)
    return Trained(model.eval(), tokenizer, ["x", "y", "z"], 16, "squash", {})


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_exports_to_torchscript(fusion: str, tmp_path: Path) -> None:
    out = export_model(tiny_classifier(fusion), tmp_path / "model", TORCHSCRIPT)
    assert json.loads((out / "preprocessing.json").read_text())["verified"]["max_abs_diff"] <= TOLERANCE


@pytest.mark.parametrize(
    "fusion", [f if f == "concat" else pytest.param(f, marks=pytest.mark.slow) for f in FUSIONS]
)  # the dynamo exporter takes 5-40 s a model here (2 busy cores): the cheapest fusion in the fast suite
def test_every_fusion_exports_to_onnx_with_the_three_inputs(fusion: str, tmp_path: Path) -> None:
    import onnxruntime

    trained = tiny_classifier(fusion)
    _pixel_affine.cache_clear()  # as in a fresh process: filled first under torch.export, it held fake tensors
    out = export_model(trained, tmp_path / "model", ONNX)
    assert json.loads((out / "preprocessing.json").read_text())["verified"]["max_abs_diff"] <= TOLERANCE
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(INPUTS)


def test_multilabel_export_applies_a_sigmoid_per_class_and_keeps_the_thresholds(tmp_path: Path) -> None:
    trained = tiny_classifier("gated", task="multilabel")
    out = export_model(trained, tmp_path / "model", TORCHSCRIPT)
    spec = json.loads((out / "preprocessing.json").read_text())
    assert spec["output"]["activation"] == "sigmoid" and spec["decision"]["thresholds"] == dict.fromkeys("xyz", 0.5)
    image = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    ids = torch.tensor([[2, 3, 0], [4, 0, 0]])
    probs = torch.jit.load(str(out / "model.pt"))(image, ids, (ids != 0).long())
    batch = Batch(image=image, text_ids=ids, text_mask=ids != 0, label=torch.zeros(2, 3))
    with torch.no_grad():
        expected = trained.model(batch).sigmoid()
    assert probs.shape == (2, 3) and torch.allclose(probs, expected, atol=1e-6)


def test_cli_claims_a_new_export_dir_and_fails_in_one_line(default_run: Path, tmp_path: Path) -> None:
    ckpt = f"ckpt_path={default_run / 'checkpoints' / 'best.ckpt'}"
    done = run_cli("mmexp.export", ckpt, "format=tflite", f"paths.output_dir={tmp_path}", cwd=tmp_path)
    assert done.returncode == 1
    message = "mmexp: error: format=tflite: expected one of onnx, torchscript, bundle"
    assert done.stderr.strip().splitlines()[-1] == message
    (export_dir,) = (tmp_path / "exports").iterdir()
    assert (export_dir / ".mmexp-run.json").is_file() and export_dir.name.endswith("_format=tflite")  # the naming rule
    assert json.loads((export_dir / "run_info.json").read_text())["status"] == "failed"


def encoder_swapped(group: str, option: str) -> Trained:
    """cnn + bow + concat with one encoder replaced by ``option`` (docs/export.md's encoder table)."""
    from mmexp.training.build import build_datamodule, build_model

    small_text = ["text_encoder=bow", "text_encoder.embed_dim=8"]
    partner = small_text if group == "image_encoder" else ["image_encoder.channels=[4,8]"]
    overrides = [f"{group}={option}", *required_overrides(group, option), *partner]
    cfg = compose_train_config([*overrides, "data.image_size=16"], run_dir=Path("unused"))
    datamodule = build_datamodule(cfg.data, cfg.text_encoder)
    datamodule.tokenizer.fit(["a red round thing", "a blue square thing number one"])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=3, labels=["x", "y", "z"], **datamodule.tokenizer.encoder_kwargs())
    return Trained(model.eval(), datamodule.tokenizer, ["x", "y", "z"], 16, "squash", {})


ENCODERS = [("image_encoder", p.stem) for p in sorted((REPO / "conf" / "image_encoder").glob("*.yaml"))] + [
    ("text_encoder", p.stem) for p in sorted((REPO / "conf" / "text_encoder").glob("*.yaml"))
]


@pytest.mark.slow  # pretrained backbones through both exporters: minutes
@pytest.mark.parametrize(("group", "option"), ENCODERS)
def test_every_encoder_exports_to_torchscript_and_to_onnx_or_is_refused(
    group: str, option: str, tmp_path: Path
) -> None:
    trained = encoder_swapped(group, option)
    export_model(trained, tmp_path / "ts", TORCHSCRIPT)
    if option in ("lstm", "bigru"):
        with pytest.raises(ConfigError, match="use format=torchscript"):
            export_model(trained, tmp_path / "onnx", ONNX)
        return
    spec = json.loads((export_model(trained, tmp_path / "onnx", ONNX) / "preprocessing.json").read_text())
    assert spec["verified"]["max_abs_diff"] <= TOLERANCE


def test_bundle_format_writes_the_bundle_mmexp_load_reads(default_run: Path, data: Path, tmp_path: Path) -> None:
    import pandas as pd

    import mmexp

    model_dir = Path(export(compose_export(tmp_path, default_run, "format=bundle"))["model_dir"])
    assert (model_dir / "bundle.json").is_file() and (tmp_path / "export" / "run_info.json").is_file()
    expected = pd.read_csv(default_run / "predictions" / "test.csv")
    rows = pd.read_json(data / "manifest.jsonl", lines=True, dtype={"id": str})
    frame = rows.set_index("id").loc[expected["id"].astype(str)].reset_index()
    proba = mmexp.load(model_dir).predict_proba(frame, root=data)
    columns = [c for c in expected.columns if c.startswith("p_")]
    assert proba.to_numpy() == pytest.approx(expected[columns].to_numpy(), abs=1e-6)
