"""Per-row predictions: every run's predictions/val.csv and test.csv, and `python -m mmexp.predict` on new rows.

New rows may lack a label, an image or a text: each is scored (the missing modality removed the way
``mmexp.eval`` removes it) and flagged, never dropped.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict

from mmexp.core.config_io import load_config
from mmexp.core.errors import ConfigError, RunDirInUse
from mmexp.data.manifest import iter_rows, read_rows
from mmexp.predict import predict
from mmexp.train import train
from tests.conftest import compose_cfg, compose_command, run_cli
from tests.data_factory import clean_rows, write_manifest

FIXED = ["id", "label", "predicted", "confidence", "missing"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small folder dataset: 48 rows, four classes (colour word in the text x shape in the image)."""
    root = tmp_path_factory.mktemp("data")
    write_manifest(root, clean_rows(root, n=48))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, data: Path) -> Path:
    """One tiny run on ``data`` shared by this module's tests (read only)."""
    out = tmp_path_factory.mktemp("train")
    overrides = ["debug=fast", "data=folder", f"data.root={data}", "text_encoder=bow", "data.image_size=16"]
    train(compose_cfg(out, cache_dir, "logger=none", *overrides))
    return out / "run"


def compose_predict(out: Path, cache_dir: Path, *overrides: str) -> DictConfig:
    """Compose predict.yaml as @hydra.main would, with the prediction dir at out/predict."""
    return compose_command("predict", out, cache_dir, *overrides, run_dir=out / "predict")


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def probabilities(row: dict[str, str]) -> dict[str, float]:
    return {k.removeprefix("p_"): float(v) for k, v in row.items() if k.startswith("p_")}


def check_rows(rows: list[dict[str, str]]) -> None:
    """Each row's probabilities sum to 1; predicted is their argmax and confidence its probability."""
    for row in rows:
        probs = probabilities(row)
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)
        best = max(probs, key=probs.__getitem__)
        assert row["predicted"] == best and float(row["confidence"]) == probs[best]


def ckpt(run: Path) -> str:
    return f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}"


def test_metrics_json_test_numbers_are_those_of_test_csv(trained: Path) -> None:
    """trainer.test scored every test row of this run once; test.csv holds those very probabilities."""
    from mmexp.data.task import Task
    from mmexp.training.metrics import TaskMetrics
    from mmexp.training.objective import Objective

    _, rows = read_csv(trained / "predictions" / "test.csv")
    labels = json.loads((trained / "labels.json").read_text())
    saved = json.loads((trained / "metrics.json").read_text())["test"]
    probs = torch.tensor([[float(r[f"p_{name}"]) for name in labels] for r in rows])
    target = torch.tensor([labels.index(r["label"]) for r in rows])
    metrics = TaskMetrics(Objective(Task(), len(labels)), "test/", kind="test")
    metrics.update(probs, target, None)
    recomputed = {k: float(v) for k, v in metrics.compute().items()}
    assert len(recomputed) > 3 and all(recomputed[k] == pytest.approx(saved[k], abs=1e-6) for k in recomputed)


def test_every_run_writes_its_test_predictions(trained: Path, data: Path) -> None:
    header, rows = read_csv(trained / "predictions" / "test.csv")
    labels = json.loads((trained / "labels.json").read_text())
    assert header == FIXED + [f"p_{name}" for name in labels]
    split = json.loads((trained / "split.json").read_text())
    assert sorted(r["id"] for r in rows) == sorted(split["test"])
    truth = {r["id"]: r["label"] for _, r in read_rows(data / "manifest.jsonl")}
    assert all(r["label"] == truth[r["id"]] and r["missing"] == "none" for r in rows)
    check_rows(rows)
    acc = sum(r["label"] == r["predicted"] for r in rows) / len(rows)
    assert acc == pytest.approx(json.loads((trained / "metrics.json").read_text())["test"]["test/acc"], abs=1e-6)


def test_every_run_writes_its_validation_predictions_in_the_same_format(trained: Path) -> None:
    """predictions/val.csv: the val rows of split.json, scored by the best checkpoint; its accuracy and macro-F1
    are the val metrics metrics.json holds (what mmexp.report --ensemble chooses members on)."""
    header, rows = read_csv(trained / "predictions" / "val.csv")
    assert header == read_csv(trained / "predictions" / "test.csv")[0]
    split = json.loads((trained / "split.json").read_text())
    assert [r["id"] for r in rows] and sorted(r["id"] for r in rows) == sorted(split["val"])
    check_rows(rows)
    val = json.loads((trained / "metrics.json").read_text())["val"]
    assert sum(r["label"] == r["predicted"] for r in rows) / len(rows) == pytest.approx(val["val/acc"], abs=1e-6)
    labels = json.loads((trained / "labels.json").read_text())
    f1 = []
    for name in labels:
        tp = sum(r["label"] == name == r["predicted"] for r in rows)
        support = sum(r["label"] == name for r in rows) + sum(r["predicted"] == name for r in rows)
        if support:  # torchmetrics leaves out classes neither true nor predicted
            f1.append(2 * tp / support)
    assert sum(f1) / len(f1) == pytest.approx(val["val/f1_macro"], abs=1e-6)


def test_predict_scores_every_row_of_the_training_data_like_the_run_did(
    trained: Path, tmp_path: Path, cache_dir: Path
) -> None:
    result = predict(compose_predict(tmp_path, cache_dir, ckpt(trained), "batch_size=5"))  # 48 rows, 10 batches
    assert result["rows"] == 48 and result["missing"] == {"none": 48, "image": 0, "text": 0}
    header, rows = read_csv(tmp_path / "predict" / "predictions.csv")
    assert header == read_csv(trained / "predictions" / "test.csv")[0]
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(48)]  # manifest order
    check_rows(rows)
    by_id = {r["id"]: r for r in rows}
    for expected in read_csv(trained / "predictions" / "test.csv")[1]:
        got = by_id[expected["id"]]
        assert got["predicted"] == expected["predicted"] and got["label"] == expected["label"]
        for name, p in probabilities(expected).items():
            assert probabilities(got)[name] == pytest.approx(p, abs=1e-5)
    assert json.loads((tmp_path / "predict" / "run_info.json").read_text())["status"] == "completed"


def manifest_rows(data: Path) -> list[dict]:
    """The training manifest's rows, as written."""
    return [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]


def unlabeled_rows(data: Path) -> list[dict]:
    """The training rows without labels; r0-r3 lose their text, r4-r7 their image (absent, empty or null)."""
    rows = [{k: v for k, v in r.items() if k in ("id", "image", "text")} for r in manifest_rows(data)[:12]]
    for i in range(4):
        rows[i]["text"] = "" if i % 2 else "   "
        del rows[i + 4]["image"]
    rows[5]["image"] = ""
    rows[6]["image"] = None
    rows[7]["text"] = None  # with no image either: a bad row
    return rows


def test_unlabeled_rows_and_missing_modalities_are_scored_and_flagged(
    trained: Path, data: Path, tmp_path: Path, cache_dir: Path
) -> None:
    rows = unlabeled_rows(data)
    rows[7]["text"] = "a red thing"
    (data / "new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    overrides = ["data=folder", f"data.root={data}", "data.manifest=new.jsonl", "batch_size=4"]
    result = predict(compose_predict(tmp_path, cache_dir, ckpt(trained), *overrides))
    assert result == {
        "rows": 12,
        "missing": {"none": 4, "image": 4, "text": 4},
        "skipped": 0,
        "predictions": str(tmp_path / "predict" / "predictions.csv"),
    }
    _, out = read_csv(tmp_path / "predict" / "predictions.csv")
    assert [r["id"] for r in out] == [r["id"] for r in rows]  # none dropped, in order
    assert [r["missing"] for r in out] == ["text"] * 4 + ["image"] * 4 + ["none"] * 4
    assert all(r["label"] == "" for r in out)
    check_rows(out)
    # a row without its text is scored as mmexp.eval scores a row whose text it removed
    from mmexp.data.records import ScoringRecord
    from mmexp.data.tokenizers import WordTokenizer
    from mmexp.evaluation.predictions import Inputs, to_batch
    from mmexp.evaluation.robustness import without
    from mmexp.training.build import build_model

    saved = torch.load(trained / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    tokenizer = WordTokenizer()
    tokenizer.load_state_dict(saved["MultimodalDataModule"])
    labels = saved["MultimodalDataModule"]["labels"]
    model = build_model(load_config(trained / "config.yaml"), num_classes=len(labels), **tokenizer.encoder_kwargs())
    model.load_state_dict(saved["state_dict"])
    full = [ScoringRecord(r["id"], data / r["image"], r["text"], None, 1) for r in manifest_rows(data)[:4]]
    batch, _ = to_batch(full, Inputs(tokenizer, 16, "squash", 10**8))
    with torch.inference_mode():
        expected = model.eval()(without("text")(batch)).softmax(-1)
        with_text = model(batch).softmax(-1)
    scored = torch.tensor([[float(r[f"p_{name}"]) for name in labels] for r in out[:4]])
    assert torch.allclose(scored, expected, atol=1e-5) and not torch.allclose(scored, with_text, atol=1e-4)


def test_a_row_with_neither_image_nor_text_or_a_lost_image_is_a_bad_row(
    trained: Path, data: Path, tmp_path: Path, cache_dir: Path
) -> None:
    rows = unlabeled_rows(data)  # r7 has neither
    rows[9]["image"] = "img/gone.png"
    (data / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    overrides = [ckpt(trained), "data=folder", f"data.root={data}", "data.manifest=bad.jsonl"]
    with pytest.raises(ConfigError) as error:
        predict(compose_predict(tmp_path / "a", cache_dir, *overrides))
    message = str(error.value)
    assert "2 bad row(s)" in message and "line 8: neither 'image' nor 'text'" in message
    assert "line 10: image file not found: 'img/gone.png'" in message and "on_bad_record=skip" in message
    assert not (tmp_path / "a" / "predict" / "predictions.csv").exists()
    result = predict(compose_predict(tmp_path / "b", cache_dir, *overrides, "data.on_bad_record=skip"))
    assert result["rows"] == 10 and result["skipped"] == 2
    skipped = (tmp_path / "b" / "predict" / "skipped.jsonl").read_text().splitlines()
    assert [json.loads(line)["line"] for line in skipped] == [8, 10]


def test_a_manifest_whose_columns_do_not_match_is_refused_in_one_line(
    trained: Path, data: Path, tmp_path: Path, cache_dir: Path
) -> None:
    rows = [{"id": r["id"], "picture": r["image"], "caption": r["text"]} for r in manifest_rows(data)[:4]]
    (data / "renamed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    overrides = [ckpt(trained), "data=folder", f"data.root={data}", "data.manifest=renamed.jsonl"]
    with pytest.raises(ConfigError) as error:
        predict(compose_predict(tmp_path, cache_dir, *overrides))
    message = str(error.value)
    assert "\n" not in message
    assert "no 'image' (data.image_col), 'text' (data.text_col) column" in message
    assert "columns found: 'caption', 'id', 'picture'" in message
    fixed = predict(
        compose_predict(tmp_path / "b", cache_dir, *overrides, "data.image_col=picture", "data.text_col=caption")
    )
    assert fixed["rows"] == 4


def test_predict_never_writes_into_the_training_run(trained: Path, tmp_path: Path, cache_dir: Path) -> None:
    cfg = compose_predict(tmp_path, cache_dir, ckpt(trained))
    with open_dict(cfg):
        cfg.paths.run_dir = str(trained / "predictions")
    with pytest.raises(RunDirInUse, match="inside the training run"):
        predict(cfg)


@pytest.mark.parametrize(
    "text",
    ['id,image,text\r\n1,a.png,"two\r\nlines"\r\n2,b.png,x\r\n', "\ufeffid,image,text\r1,a.png,x\r2,b.png,y\r", ""],
)
def test_streamed_rows_equal_the_rows_read_whole(tmp_path: Path, text: str) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(text.encode("utf-8"))
    assert list(iter_rows(path)) == read_rows(path)


def test_a_streamed_manifest_that_is_not_utf8_is_the_same_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"id": 1}\n{"id": 2, "text": "caf\xe9"}\n')
    with pytest.raises(ConfigError) as whole:
        read_rows(path)
    with pytest.raises(ConfigError) as streamed:
        list(iter_rows(path))
    assert str(streamed.value) == str(whole.value) and "(line 2)" in str(whole.value)


def test_predict_command_writes_predictions_csv(trained: Path, data: Path, tmp_path: Path) -> None:
    rows = unlabeled_rows(data)[:7]
    rows[0]["label"] = "red-round"  # labelled rows keep their label
    write_manifest(data, rows, "csv")  # data/manifest.csv: empty cells are missing images / texts
    result = run_cli(
        "mmexp.predict", ckpt(trained), "data=folder", f"data.root={data}", "data.manifest=manifest.csv", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    (out,) = (tmp_path / "outputs" / "predictions").glob("*/predictions.csv")
    _, scored = read_csv(out)
    assert [r["missing"] for r in scored] == ["text"] * 4 + ["image"] * 3
    assert [r["label"] for r in scored] == ["red-round"] + [""] * 6
