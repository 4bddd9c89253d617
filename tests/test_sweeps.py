"""Sweeps: Optuna tuning, parallel joblib jobs, failed jobs recorded, Slurm launcher composition."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from hydra import compose, initialize_config_module

from mmexp.core.resolvers import threads_per_job
from tests.conftest import run_cli


def test_optuna_search_runs_trials_and_reports_the_best(tmp_path: Path) -> None:
    result = run_cli(
        "mmexp.train",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "debug=fast",
        "logger=none",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = next((tmp_path / "outputs" / "multirun").iterdir())
    runs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert len(runs) == 2
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [json.loads((r / "metrics.json").read_text())["val"]["val/f1_macro"] for r in runs]
    assert abs(best["best_value"] - max(values)) < 1e-9
    assert set(best["best_params"]) == {"optimizer.lr", "model.dropout", "model.head_hidden"}


def test_parallel_sweep_records_a_failed_job_and_goes_on(tmp_path: Path) -> None:
    result = run_cli(
        "mmexp.train",
        "-m",
        "data.batch_size=16,-1",
        "debug=fast",
        "logger=none",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = next((tmp_path / "outputs" / "multirun").iterdir())
    jobs = {p.name.split("_")[0]: p for p in sweep.iterdir() if p.is_dir()}
    ok, bad = (json.loads((jobs[n] / "run_info.json").read_text()) for n in ("0", "1"))
    assert ok["status"] == "completed" and (jobs["0"] / "metrics.json").exists()
    assert bad["status"] == "failed" and "data.batch_size=-1" in bad["error"]
    report = run_cli("mmexp.report", str(sweep), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    failed_section = (sweep / "report.md").read_text().split("Failed")[1]
    assert "data.batch_size=-1" in failed_section


def test_slurm_launcher_composes() -> None:
    with initialize_config_module("mmexp.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hydra/launcher=submitit_slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.gpus_per_node=4",
                "hydra.launcher.tasks_per_node=4",
                "hydra.launcher.nodes=2",
            ],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.nodes == 2 and cfg.hydra.launcher.tasks_per_node == 4


def test_parallel_jobs_share_the_cores() -> None:
    assert threads_per_job(None) is None
    cores = __import__("os").cpu_count()
    assert threads_per_job(1) == cores and threads_per_job(cores) == 1 and threads_per_job(-1) == 1
