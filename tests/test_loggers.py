"""Every logger writes real files that hold the metrics (no mocks: all of them run offline)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mmexp.train import train


@pytest.fixture(scope="module")
def many_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    from tests.conftest import compose_cfg

    out = tmp_path_factory.mktemp("loggers")
    train(compose_cfg(out, cache_dir, "debug=fast", "logger=many", "fusion=attention", "trainer.max_epochs=2"))
    return out


def test_csv_logger_has_one_val_row_per_epoch(many_run: Path) -> None:
    """The best checkpoint's post-fit validation goes to metrics.json only, not as an extra point on the curve."""
    with open(many_run / "run" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows if r.get("val/f1_macro")] == ["0", "1"]


def tensorboard_events(run: Path) -> list[Any]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulators = []
    for events in (run / "tensorboard").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        accumulators.append(acc)
    return accumulators


def test_tensorboard_has_scalars_hparams_with_final_metrics_and_confusion_image(many_run: Path) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = many_run / "run"
    accumulators = tensorboard_events(run)
    tags = {kind: [t for acc in accumulators for t in acc.Tags()[kind]] for kind in ("scalars", "images")}
    assert {"val/f1_macro", "test/acc", "train/loss_step"} <= set(tags["scalars"])
    assert "test/confusion_matrix" in tags["images"]
    assert sum(len(acc.Scalars("val/f1_macro")) for acc in accumulators if "val/f1_macro" in acc.Tags()["scalars"]) == 2
    # the HPARAMS tab: the config as hparams and the final val/test values as its metrics
    hparams, metric_names = {}, []
    for acc in accumulators:
        for blob in acc._plugin_to_tag_to_content.get("hparams", {}).values():
            data = plugin_data_pb2.HParamsPluginData.FromString(blob)
            if data.HasField("session_start_info"):
                hparams = dict(data.session_start_info.hparams)
            if data.HasField("experiment"):
                metric_names = [m.name.tag for m in data.experiment.metric_infos]
    assert hparams["fusion._target_"].string_value.endswith("AttentionFusion")
    assert hparams["optimizer.lr"].number_value == pytest.approx(0.002)
    assert {"final/val/f1_macro", "final/test/acc"} <= set(metric_names)
    metrics = json.loads((run / "metrics.json").read_text())
    final = [
        acc.Scalars("final/test/acc")[0].value for acc in accumulators if "final/test/acc" in acc.Tags()["scalars"]
    ]
    assert final == [pytest.approx(metrics["test"]["test/acc"])]


def test_each_config_value_is_logged_once(many_run: Path) -> None:
    """``data.split`` is ``${split}``: loggers get ``split.*`` and no copy under ``data.split.*``."""
    (run,) = mlflow_runs(f"sqlite:///{many_run / 'mlflow.db'}")
    assert "split.seed" in run["params"] and "optimizer.lr" in run["params"]
    assert not [k for k in run["params"] if k.startswith(("data.split.", "data.cache_dir"))]


def wandb_records(run_dir: Path) -> list[dict[str, Any]]:
    """The offline run's records as W&B's own reader prints them (``wandb leet inspect --json``)."""
    done = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir / "wandb")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_wandb_offline_run_holds_metrics_config_once_tags_and_image(many_run: Path) -> None:
    records = wandb_records(many_run / "run")
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert "fusion=attention" in run["tags"]
    config = [key for r in records if r["type"] == "config" for key in r["config"]["update"]]
    assert "optimizer.lr" in config and len(config) == len(set(config))  # each key once
    assert not [k for k in config if k.startswith("data.split.")]  # no copy of split.*
    logged = {key for r in records if r["type"] == "history" for key in r["history"]["item"]}
    assert {"test/acc", "val/f1_macro"} <= logged
    offline = next((many_run / "run" / "wandb").glob("offline-run-*"))
    assert list((offline / "files" / "media" / "images").glob("test/confusion_matrix*.png"))


MLFLOW_READER = """
import json, sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
print(json.dumps([
    {"metrics": r.data.metrics, "params": r.data.params, "tags": r.data.tags,
     "artifacts": [a.path for a in client.list_artifacts(r.info.run_id)]}
    for r in runs
]))
"""


def mlflow_runs(tracking_uri: str, *, file_store: bool = False) -> list[dict]:
    """The runs as MLflow's own client sees them, in a fresh process; MLflow 3 opens a file store only when
    ``MLFLOW_ALLOW_FILE_STORE`` is set, so that variable is set for file stores only."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_ALLOW_FILE_STORE"}
    if file_store:
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    done = subprocess.run(
        [sys.executable, "-c", MLFLOW_READER, tracking_uri], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_mlflow_default_store_is_sqlite_and_its_client_reads_the_run(many_run: Path) -> None:
    (run,) = mlflow_runs(f"sqlite:///{many_run / 'mlflow.db'}")
    assert {"test/acc", "val/f1_macro"} <= set(run["metrics"])
    assert run["params"]["optimizer.lr"] == "0.002" and run["tags"]["fusion"] == "attention"
    assert run["artifacts"] == ["test_confusion_matrix.png"]
    assert list((many_run / "mlartifacts").rglob("test_confusion_matrix.png"))
    assert not (many_run / "mlruns").exists()


def test_mlflow_file_store_is_still_accepted(tmp_path: Path, cache_dir: Path) -> None:
    from tests.conftest import compose_cfg

    store = (tmp_path / "mlruns").as_uri()
    train(compose_cfg(tmp_path, cache_dir, "debug=fast", "logger=mlflow", f"logger.mlflow.tracking_uri={store}"))
    (run,) = [r for r in mlflow_runs(store, file_store=True) if r["metrics"]]
    assert "test/acc" in run["metrics"] and not (tmp_path / "mlflow.db").exists()
