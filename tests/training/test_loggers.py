"""Every logger writes real files that hold the metrics (no mocks: all of them run offline)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mmexp.train import train


@pytest.fixture(scope="module")
def many_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """One run with every logger, whose last epoch validates worse than its best checkpoint (epoch 0), so a
    dashboard that shows the last epoch's value instead of metrics.json's fails the tests below."""
    from tests.conftest import compose_cfg

    out = tmp_path_factory.mktemp("loggers")
    overrides = ("debug=fast", "logger=many", "fusion=attention", "trainer.max_epochs=2", "scheduler=none")
    overrides += ("data.synthetic.n_samples=2000",)  # the size whose val curve falls after epoch 0 at this rate
    train(compose_cfg(out, cache_dir, *overrides, "optimizer.lr=0.005"))
    return out


def best_and_last_val(run: Path) -> tuple[float, float]:
    """metrics.json's val/f1_macro (the best checkpoint's) and the last epoch's, from the CSV curve."""
    best = json.loads((run / "metrics.json").read_text())["val"]["val/f1_macro"]
    with open(run / "csv" / "metrics.csv") as f:
        curve = [float(r["val/f1_macro"]) for r in csv.DictReader(f) if r.get("val/f1_macro") and r["epoch"] == "1"]
    assert curve and curve[0] != pytest.approx(best), "the fixture's last epoch must differ from its best checkpoint"
    return best, curve[0]


def test_csv_logger_has_one_val_row_per_epoch_and_no_summary_row(many_run: Path) -> None:
    """metrics.csv holds the curves only: metrics.json beside it is the run's summary."""
    with open(many_run / "run" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows if r.get("val/f1_macro")] == ["0", "1"]
    assert not any(r.get("val/f1_macro") and r.get("test/acc") for r in rows)


def tensorboard_events(run: Path) -> list[Any]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulators = []
    for events in (run / "tensorboard").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        accumulators.append(acc)
    return accumulators


def test_tensorboard_hparams_hold_the_choices_and_metrics_json_values(many_run: Path) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = many_run / "run"
    accumulators = tensorboard_events(run)
    tags = {kind: [t for acc in accumulators for t in acc.Tags()[kind]] for kind in ("scalars", "images")}
    assert {"val/f1_macro", "test/acc", "train/loss_step"} <= set(tags["scalars"])
    assert "test/confusion_matrix" in tags["images"]
    # the HPARAMS tab: the user's choices as hparams, metrics.json's names as its metrics
    hparams, metric_names = {}, []
    for acc in accumulators:
        for blob in acc._plugin_to_tag_to_content.get("hparams", {}).values():
            data = plugin_data_pb2.HParamsPluginData.FromString(blob)
            if data.HasField("session_start_info"):
                hparams = dict(data.session_start_info.hparams)
            if data.HasField("experiment"):
                metric_names = [m.name.tag for m in data.experiment.metric_infos]
    assert hparams["fusion"].string_value == "attention" and "trainer.max_epochs=2" in hparams["overrides"].string_value
    assert hparams["optimizer.lr"].number_value == pytest.approx(0.005)
    assert not [k for k in hparams if k.startswith(("callbacks.", "logger.", "paths.")) or k.endswith("_target_")]
    assert {"val/f1_macro", "test/acc"} <= set(metric_names)
    # HPARAMS shows a metric's last event in the run (its dir, every event file in order): the best checkpoint's
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    whole_run = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events = whole_run.Reload().Scalars("val/f1_macro")
    best, last = best_and_last_val(run)
    assert [e.value for e in events[:-1]] == [pytest.approx(best), pytest.approx(last)]  # the two epochs
    assert events[-1].step == max(e.step for e in events) and events[-1].value == pytest.approx(best)


def test_each_config_value_is_logged_once(many_run: Path) -> None:
    """``data.split`` is ``${split}``: loggers get ``split.*`` and no copy under ``data.split.*``."""
    (run,) = mlflow_runs(f"sqlite:///{many_run / 'mlflow.db'}")
    assert "split.seed" in run["params"] and "optimizer.lr" in run["params"]
    assert not [k for k in run["params"] if k.startswith(("data.split.", "data.cache_dir"))]
    assert len(run["params"]) < 100  # the experiment's values, not ~150 internal keys


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


def test_wandb_summary_is_metrics_json(many_run: Path) -> None:
    """What ``wandb leet inspect --summary`` (and the W&B run table after a sync) shows for the run."""
    offline = next((many_run / "run" / "wandb").glob("offline-run-*"))
    done = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(offline)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    inspected = json.loads(done.stdout)
    metrics = json.loads((many_run / "run" / "metrics.json").read_text())
    best, last = best_and_last_val(many_run / "run")
    assert inspected["summary"]["val/f1_macro"] == pytest.approx(best) != last
    assert inspected["summary"]["test/acc"] == pytest.approx(metrics["test"]["test/acc"])
    assert inspected["config"]["fusion"] == "attention" and not [k for k in inspected["config"] if "callbacks." in k]


def mlflow_runs(tracking_uri: str, *, file_store: bool = False) -> list[dict]:
    """The runs as MLflow's own client reads them from the store (a SQLite file or a folder): what the MLflow UI
    shows. MLflow 3 opens a file store only when ``MLFLOW_ALLOW_FILE_STORE`` is set, so that variable is set for
    file stores only (a run with a file store sets it in this process: it is removed for the others)."""
    from mlflow import MlflowClient

    with pytest.MonkeyPatch.context() as env:
        if file_store:
            env.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        else:
            env.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
        client = MlflowClient(tracking_uri)
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        return [
            {
                "name": r.info.run_name,
                "metrics": r.data.metrics,
                "params": r.data.params,
                "tags": r.data.tags,
                "artifacts": [a.path for a in client.list_artifacts(r.info.run_id)]
                + [a.path for a in client.list_artifacts(r.info.run_id, "predictions")],
            }
            for r in runs
        ]


def test_mlflow_default_store_is_sqlite_and_its_client_reads_the_run(many_run: Path) -> None:
    (run,) = mlflow_runs(f"sqlite:///{many_run / 'mlflow.db'}")
    metrics = json.loads((many_run / "run" / "metrics.json").read_text())
    best, last = best_and_last_val(many_run / "run")
    assert run["metrics"]["val/f1_macro"] == pytest.approx(best) != last  # the run table's value is metrics.json's
    assert run["metrics"]["test/acc"] == pytest.approx(metrics["test"]["test/acc"])
    assert run["params"]["optimizer.lr"] == "0.005" and run["params"]["fusion"] == "attention"
    assert run["tags"]["fusion"] == "attention" and run["tags"]["sweep"] == "" and run["name"] == "run"
    files = {
        *("config.yaml", "metrics.json", "predictions/val.csv", "predictions/test.csv"),
        *("model", "test_confusion_matrix.png"),
    }
    assert files <= set(run["artifacts"])
    assert list((many_run / "mlartifacts").rglob("test_confusion_matrix.png"))
    assert not (many_run / "mlruns").exists()


def test_mlflow_file_store_is_still_accepted(tmp_path: Path, cache_dir: Path) -> None:
    from tests.conftest import compose_cfg

    store = (tmp_path / "mlruns").as_uri()
    train(compose_cfg(tmp_path, cache_dir, "debug=fast", "logger=mlflow", f"logger.mlflow.tracking_uri={store}"))
    (run,) = [r for r in mlflow_runs(store, file_store=True) if r["metrics"]]
    assert "test/acc" in run["metrics"] and not (tmp_path / "mlflow.db").exists()
