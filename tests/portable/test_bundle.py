"""A model that leaves the lab: the run's model/ bundle, the Python API (mmexp.train / mmexp.load) and DataFrames.

One tiny run, trained from Python on a DataFrame whose images are paths, PIL images and bytes, is shared by
every test here (read only); its predictions/test.csv is the reference every way of predicting must equal.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hydra.core.hydra_config import HydraConfig
from PIL import Image

import mmexp
from mmexp.core.errors import ConfigError
from mmexp.data.manifest import read_rows
from mmexp.data.records import Columns, parse_records
from mmexp.portable.bundle import BundleError, write_bundle
from tests.conftest import REPO
from tests.data_factory import clean_rows, write_manifest

BUNDLE_FILES = ["bundle.json", "config.yaml", "tokenizer.json", "weights.pt"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 rows, four classes (colour word in the text x shape in the image), as a folder dataset."""
    root = tmp_path_factory.mktemp("data")
    write_manifest(root, clean_rows(root, n=48))
    return root


def as_frame(data: Path, *, in_memory: bool) -> pd.DataFrame:
    """The manifest's rows as a DataFrame; ``in_memory``: every third image a PIL image, every third bytes."""
    frame = pd.DataFrame([json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()])
    if in_memory:
        images: list[Any] = list(frame["image"])
        for i in range(len(images)):
            if i % 3 == 1:
                images[i] = Image.open(data / images[i]).copy()
            elif i % 3 == 2:
                images[i] = (data / images[i]).read_bytes()
        frame["image"] = images
    return frame


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, data: Path) -> tuple[mmexp.Run, Any]:
    """One run trained with ``mmexp.train(...)`` on an in-memory frame; also the Hydra state before it."""
    out = tmp_path_factory.mktemp("api")
    before = HydraConfig.instance().cfg
    overrides = ["debug=fast", "logger=none", "text_encoder=bow", "data.image_size=16"]
    paths = [f"paths.output_dir={out}", f"paths.cache_dir={cache_dir}"]
    trained = mmexp.train([*overrides, *paths], data=as_frame(data, in_memory=True), root=data)
    return trained, before


def test_python_training_keeps_the_run_dir_contract_and_writes_a_bundle(run: tuple[mmexp.Run, Any]) -> None:
    trained, hydra_before = run
    assert HydraConfig.instance().cfg is hydra_before  # the caller's Hydra state is as it was
    assert trained.dir.parent.name == "runs" and "_text_encoder=bow_" in trained.dir.name  # the CLI's naming
    for name in ("config.yaml", "run_info.json", "split.json", "metrics.json", "predictions/test.csv"):
        assert (trained.dir / name).is_file(), name
    assert trained.metrics == json.loads((trained.dir / "metrics.json").read_text())
    assert json.loads((trained.dir / "run_info.json").read_text())["status"] == "completed"
    assert sorted(p.name for p in (trained.dir / "model").iterdir()) == BUNDLE_FILES  # nothing else
    meta = json.loads((trained.dir / "model" / "bundle.json").read_text())
    assert meta["format"] == 1 and meta["mmexp_version"] == mmexp.__version__
    assert meta["labels"] == json.loads((trained.dir / "labels.json").read_text())
    assert meta["image"]["size"] == 16 and meta["image"]["mean"] == [0.5, 0.5, 0.5]
    assert meta["inputs"]["columns"]["text"] == "text" and meta["task"] == {
        "name": "multiclass",
        "label_lookalikes": "error",
    }
    assert json.loads((trained.dir / "model" / "tokenizer.json").read_text())["vocab"][:2] == ["<pad>", "<unk>"]


def read_predictions(path: Path | str | io.StringIO) -> pd.DataFrame:
    fixed = {c: str for c in ("id", "label", "predicted", "missing")}
    return pd.read_csv(path, dtype=fixed, keep_default_na=False).set_index("id")


def assert_same_predictions(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Classes exactly, probabilities to 1e-6, for every row of ``expected``."""
    got = got.set_index("id") if "id" in got.columns else got
    got = got.loc[expected.index]
    assert list(got["predicted"]) == list(expected["predicted"])
    assert list(got["label"]) == list(expected["label"])
    probabilities = [c for c in expected.columns if c.startswith("p_")]
    assert (got[probabilities] - expected[probabilities]).abs().max().max() <= 1e-6


def test_a_copied_bundle_predicts_the_test_csv_in_a_fresh_process(
    run: tuple[mmexp.Run, Any], data: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(run[0].dir, tmp_path / "run")  # the shared run stays; its copy is deleted
    bundle = shutil.copytree(copy / "model", tmp_path / "elsewhere" / "bundle")
    expected = read_predictions(copy / "predictions" / "test.csv")
    shutil.rmtree(copy)
    frame = as_frame(data, in_memory=False)
    frame[frame["id"].isin(expected.index)].to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    script = (
        "import sys, pandas, mmexp\n"
        "rows = pandas.read_json(sys.argv[1], lines=True, dtype=False)\n"
        "mmexp.load(sys.argv[2]).predictions(rows, root=sys.argv[3]).to_csv(sys.stdout, index=False)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "rows.jsonl"), str(bundle), str(data)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_predictions(read_predictions(io.StringIO(done.stdout)), expected)


def test_load_predicts_in_process_from_a_bundle_a_run_dir_or_a_checkpoint(
    run: tuple[mmexp.Run, Any], data: Path, tmp_path: Path
) -> None:
    trained = run[0]
    expected = read_predictions(trained.dir / "predictions" / "test.csv")
    frame = as_frame(data, in_memory=True).set_index("id", drop=False)
    rows = frame.loc[list(expected.index)]
    predictor = trained.predictor()
    table = predictor.predictions(rows, root=data, batch_size=3)
    assert list(table.index) == list(rows.index)  # indexed like the frame
    assert_same_predictions(table, expected)
    assert list(predictor.predict(rows, root=data)) == list(expected["predicted"])
    proba = predictor.predict_proba(rows, root=data)
    assert list(proba.columns) == predictor.labels and proba.sum(axis=1).round(5).eq(1).all()
    best = trained.dir / "checkpoints" / "best.ckpt"
    assert write_bundle(best, tmp_path / "exported") == tmp_path / "exported"
    for source in (trained.dir, best, tmp_path / "exported"):
        assert_same_predictions(mmexp.load(source).predictions(rows, root=data), expected)


def test_a_damaged_or_newer_bundle_is_one_clear_error(run: tuple[mmexp.Run, Any], tmp_path: Path) -> None:
    def broken(name: str, change: Any) -> Path:
        bundle = shutil.copytree(run[0].dir / "model", tmp_path / name)
        change(bundle)
        return bundle

    def truncate(b: Path) -> None:
        (b / "weights.pt").write_bytes((b / "weights.pt").read_bytes()[:1000])

    def newer(b: Path) -> None:
        meta = json.loads((b / "bundle.json").read_text())
        (b / "bundle.json").write_text(json.dumps({**meta, "format": 99, "mmexp_version": "9.0"}))

    cases = {
        "truncated": (truncate, "weights.pt does not match the digest"),
        "incomplete": (lambda b: (b / "config.yaml").unlink(), "config.yaml is missing"),
        "garbled": (lambda b: (b / "bundle.json").write_text("{"), "bundle.json is damaged"),
        "newer": (newer, "written by mmexp 9.0 in bundle format 99; this mmexp"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(BundleError, match=message) as caught:
            mmexp.load(broken(name, change))
        assert "\n" not in str(caught.value)
    with pytest.raises(BundleError, match="not a model bundle, a run dir or a checkpoint"):
        mmexp.load(tmp_path)


def bad_frame(data: Path) -> pd.DataFrame:
    """Eight rows indexed 100..107: 101 has no text, 103 the id of 100, 104 no label, 105 bytes that are not an
    image (found when decoded), 106 a lost image."""
    frame = as_frame(data, in_memory=False).head(8).set_axis(range(100, 108))
    frame.loc[101, "text"] = ""
    frame.loc[103, "id"] = frame.loc[100, "id"]
    frame.loc[104, "label"] = None
    frame["image"] = frame["image"].astype(object)
    frame.at[105, "image"] = b"not an image"
    frame.loc[106, "image"] = "img/lost.png"
    return frame


def test_bad_dataframe_rows_get_the_manifests_reasons_named_by_index(
    run: tuple[mmexp.Run, Any], data: Path, tmp_path: Path, cache_dir: Path
) -> None:
    frame = bad_frame(data)
    records = frame.drop(index=105).to_dict(orient="records")
    manifest_rows = [{k: v for k, v in r.items() if isinstance(v, str) or pd.notna(v)} for r in records]
    write_manifest(tmp_path, manifest_rows)  # the same rows as a manifest (a missing value: no key)
    _, bad = parse_records(read_rows(tmp_path / "manifest.jsonl"), data, Columns())
    manifest_reasons = [b.reason.replace("(first on line 1)", "(first at index 100)") for b in bad]
    overrides = ["logger=none", f"paths.output_dir={tmp_path}", f"paths.cache_dir={cache_dir}"]
    with pytest.raises(ConfigError) as caught:
        mmexp.train(overrides, data=frame.drop(index=105), root=data, run_dir=tmp_path / "never")
    message = str(caught.value)
    assert message.startswith("4 bad row(s) in the DataFrame:\n")
    assert [line.split(": ", 1)[0].strip() for line in message.splitlines()[1:5]] == [
        "index 101",
        "index 103",
        "index 104",
        "index 106",
    ]
    assert [line.split(": ", 1)[1] for line in message.splitlines()[1:5]] == manifest_reasons
    assert message.endswith("Fix the rows, or set data.on_bad_record=skip to train without them.")
    assert not (tmp_path / "never").exists()  # refused before anything was written
    with pytest.raises(ConfigError, match=r"^1 bad row\(s\) in the DataFrame:\n  index 105: unreadable or corrupt"):
        mmexp.train(overrides, data=frame.loc[[100, 102, 105, 107]], root=data, run_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()

    predictor = run[0].predictor()
    unlabeled = frame.drop(columns=["label"]).drop(index=[103, 106])  # a row without text or label is scored
    with pytest.raises(ConfigError, match=r"1 bad row\(s\) in the DataFrame:\n  index 105: unreadable or corrupt"):
        predictor.predict(unlabeled, root=data)
    with pytest.raises(ConfigError, match=r"(?s)2 bad row.*index 103: duplicate id '\w+' \(first at index 100\)"):
        predictor.predict(frame, root=data)
    kept = predictor.predict(frame, root=data, on_bad_record="skip")
    assert list(kept.index) == [100, 101, 102, 104, 107]  # 101 without text and 104 without label are scored


def test_import_mmexp_is_light_and_train_is_callable_in_every_import_order() -> None:
    script = (
        "import sys, mmexp\n"
        "assert not {'torch', 'lightning', 'pandas'} & set(sys.modules), sorted(sys.modules)\n"
        "first = mmexp.train\n"
        "import mmexp.train as module\n"
        "assert first is module is mmexp.train and callable(module) and module.main\n"
        "from mmexp import fit, load, Run\n"
        "assert callable(fit) and callable(load) and Run.__name__ == 'Run'\n"
    )
    reverse = "import mmexp.train\nimport mmexp\nassert callable(mmexp.train) and mmexp.train.train\n"
    for code in (script, reverse):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]


def test_the_api_composes_inside_a_callers_hydra_context_and_gives_it_back(tmp_path: Path) -> None:
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_module("mmexp.conf", version_base="1.3"):
        theirs = GlobalHydra.instance().hydra
        with pytest.raises(ConfigError, match="absent: no such file or folder"):  # composed, then refused
            mmexp.train([f"paths.output_dir={tmp_path}"], data=tmp_path / "absent", run_dir=tmp_path / "run")
        assert GlobalHydra.instance().hydra is theirs
