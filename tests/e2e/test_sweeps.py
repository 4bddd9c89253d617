"""Sweeps: Optuna tuning, parallel joblib jobs, failed jobs recorded, Slurm launcher composition."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from mmexp.core.resolvers import launcher_threads, threads_per_job
from tests.conftest import run_cli
from tests.training.test_loggers import mlflow_runs


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_two_optuna_sweepers_share_one_sqlite_study(tmp_path: Path) -> None:
    """The scale-out recipe: two sweeper processes started at once on one study get disjoint trials, all recorded."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = {**os.environ, "WANDB_MODE": "offline"}
    sweepers = [
        subprocess.Popen(
            [sys.executable, "-m", "mmexp.train", "hparams_search=optuna", "hydra.sweeper.n_trials=1",
             f"hydra.sweeper.storage={storage}", f"hydra.sweeper.sampler.seed={seed}", "debug=fast", "logger=none",
             f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / f'out{seed}'}"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for seed in (0, 1)
    ]  # fmt: skip
    for sweeper in sweepers:
        output, _ = sweeper.communicate(timeout=400)
        assert sweeper.returncode == 0, output[-3000:]
    (summary,) = optuna.get_all_study_summaries(storage)  # one study: the same sweep, whatever the seed and output
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert [t.number for t in study.trials] == [0, 1]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # each sweeper's job took its own trial: trial <-> run dir, one each (mmexp/run/optuna_trial.py)
    assert sorted(Path(t.user_attrs["run_dir"]).parents[2].name for t in study.trials) == ["out0", "out1"]
    recorded = sorted(
        json.loads(m.read_text())["val"]["val/f1_macro"] for m in tmp_path.glob("out*/multirun/*/*/metrics.json")
    )
    assert recorded == sorted(t.value for t in study.trials)  # every trial is one run dir, none shared
    assert {frozenset(t.params) for t in study.trials} == {
        frozenset({"optimizer.lr", "model.dropout", "model.head_hidden"})
    }
    # a trial's dir shows the values sampled for it, 4 significant digits, short keys, no hash
    for trial in tmp_path.glob("out*/multirun/*/0_*"):
        items = dict(re.findall(r"([a-z]+(?:_[a-z]+)*)=([^_]+)", trial.name.removeprefix("0_")))
        assert set(items) == {"lr", "dropout", "head_hidden"}, trial.name
        assert all(len(v.replace(".", "").lstrip("0").split("e")[0]) <= 4 for v in items.values()), trial.name
    # each sweeper writes the best trial of the (shared) study it saw into its own sweep dir
    for results in tmp_path.glob("out*/multirun/*/optimization_results.yaml"):
        assert yaml.safe_load(results.read_text())["best_value"] in recorded


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_parallel_sweep_records_a_failed_job_goes_on_and_shares_one_mlflow_store(tmp_path: Path) -> None:
    """joblib runs jobs 0 and 1 at once (both create the MLflow database and experiment: a file lock orders them),
    then 2 and 3, which fail; the failures are recorded and reported, the sweep goes on."""
    result = run_cli(
        "mmexp.train",
        "-m",
        "data.batch_size=16,-1",
        "seed=0,1",
        "debug=fast",
        "logger=mlflow",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = next((tmp_path / "outputs" / "multirun").iterdir())
    jobs = {p.name.split("_")[0]: p for p in sweep.iterdir() if p.is_dir()}
    info = {n: json.loads((jobs[n] / "run_info.json").read_text()) for n in ("0", "1", "2", "3")}
    assert [info[n]["status"] for n in ("0", "1")] == ["completed"] * 2
    assert [info[n]["status"] for n in ("2", "3")] == ["failed"] * 2 and "data.batch_size=-1" in info["2"]["error"]
    # each job is named by the keys the sweep varies (known in joblib's worker processes too), not a hash
    assert [jobs[n].name for n in ("0", "1", "2", "3")] == [
        "0_batch_size=16_seed=0",
        "1_batch_size=16_seed=1",
        "2_batch_size=-1_seed=0",
        "3_batch_size=-1_seed=1",
    ]
    runs = mlflow_runs(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    assert sorted(r["params"]["seed"] for r in runs) == ["0", "1"]  # both concurrent jobs recorded, once each
    assert sorted((r["name"], r["tags"]["seed"], r["tags"]["sweep"]) for r in runs) == [
        ("0_batch_size=16_seed=0", "0", sweep.name),
        ("1_batch_size=16_seed=1", "1", sweep.name),
    ]
    assert all("sweep_report" in r["artifacts"] for r in runs)  # the sweep's report, beside each of its runs
    # a job's dir goes back on the command line as it is (its '=' need no quotes): resume finds it complete
    again = run_cli("mmexp.train", f"hydra.run.dir={jobs['0']}", "resume=auto", cwd=tmp_path)
    assert again.returncode == 0 and "already completed" in again.stdout, again.stderr[-2000:]
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
    cores = os.cpu_count() or 1
    assert threads_per_job(1) == cores and threads_per_job(cores) == 1 and threads_per_job(-1) == 1
    joblib = OmegaConf.create({"_target_": "hydra_plugins.hydra_joblib_launcher.JoblibLauncher", "n_jobs": 2})
    slurm = OmegaConf.create({"_target_": "hydra_plugins.hydra_submitit_launcher.SlurmLauncher", "cpus_per_task": 6})
    basic = OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"})
    assert launcher_threads(joblib) == max(1, cores // 2) and launcher_threads(slurm) == 6
    assert launcher_threads(basic) is None  # one job at a time: torch's default


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_submitit_local_jobs_split_the_cores(tmp_path: Path) -> None:
    """submitit_local starts every job at once: 2 jobs on this machine get half the cores each."""
    result = run_cli(
        "mmexp.train",
        "-m",
        "seed=0,1",
        "debug=fast",
        "logger=none",
        "hydra/launcher=submitit_local",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    configs = sorted((tmp_path / "outputs" / "multirun").glob("*/*/config.yaml"))
    threads = [yaml.safe_load(c.read_text())["num_threads"] for c in configs]
    assert threads == [max(1, (os.cpu_count() or 1) // 2)] * 2
