"""The one naming rule: what a run dir and every dashboard call a run (mmexp/core/naming.py)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict

from mmexp.app.cli import quote_path_overrides
from mmexp.core.naming import dir_name, format_value, name_items, run_label, short_keys, varying_keys
from mmexp.core.resolvers import SWEPT_KEYS_ENV, job_suffix, run_suffix, run_tags, tag_list
from mmexp.run.sweep_keys import NameSweepJobs, swept_keys
from tests.conftest import run_cli
from tests.training.test_loggers import mlflow_runs, wandb_records


def test_a_sweep_job_is_named_by_what_varies_with_short_keys_and_rounded_floats() -> None:
    job = ["++trainer.max_epochs=2", "data.synthetic.n_samples=300", "fusion=concat", "split.fold=0", "seed=1"]
    items = name_items(job, varying=["fusion", "split.fold"])
    assert run_label(items) == "fusion=concat,fold=0" and dir_name(items) == "fusion=concat_fold=0"
    optuna_trial = ["optimizer.lr=0.00012345678", "model.dropout=0.3000000001", "model.head_hidden=128"]
    assert run_label(name_items(optuna_trial, ["optimizer.lr", "model.dropout", "model.head_hidden"])) == (
        "lr=0.0001235,dropout=0.3,head_hidden=128"
    )
    # a single run (or a sweep of one job) shows every override, without +/++ and without where files go
    single = ["+model.label_smoothing=0.1", "paths.output_dir=/x", "hydra.run.dir=/y", "logger=many", "~data.sampler"]
    assert run_label(name_items(single)) == "label_smoothing=0.1,sampler=null"
    assert name_items(job, varying=[]) == name_items(job)


def test_keys_are_the_shortest_unambiguous_suffix() -> None:
    keys = ["split.fold", "fusion", "model.dropout", "fusion.dropout", "optimizer.lr", "b", "a.b"]
    assert short_keys(keys) == {
        "split.fold": "fold",
        "fusion": "fusion",
        "model.dropout": "model.dropout",  # two keys end in dropout: both keep their group
        "fusion.dropout": "fusion.dropout",
        "optimizer.lr": "lr",
        "b": "b",
        "a.b": "a.b",
    }
    assert [format_value(v) for v in ("1e-05", "0.1", "3", "'quoted'", "1.23456789e3", "concat")] == [
        "1e-05",
        "0.1",
        "3",
        "quoted",
        "1235",
        "concat",
    ]


def test_dir_names_are_filesystem_safe_and_long_ones_stay_unique() -> None:
    assert dir_name(name_items(["data.manifest=a/b c.csv", "x=[1,2]", 'y="q"'])) == "manifest=a-b-c.csv_x=-1-2_y=q"
    long = [f"model.option_{i}=value_number_{i}" for i in range(8)]
    name, other = dir_name(name_items(long)), dir_name(name_items([*long[:-1], "model.option_7=changed"]))
    assert len(name) <= 80 and name != other
    assert name.startswith("option_0=value_number_0_") and re.fullmatch(r"[\w.=+-]+", name)
    assert run_suffix(["fusion=concat"], ["fusion"]) == "" and run_suffix(["seed=1"]) == "_seed=1"


def test_the_report_finds_varying_keys_of_finished_runs() -> None:
    runs = [["fusion=concat", "seed=0", "x=1"], ["fusion=gated", "seed=0", "x=1"], ["fusion=gated", "seed=0"]]
    assert varying_keys(runs) == ["fusion", "x"]


def test_sweep_keys_come_from_command_line_sweeps_and_the_sweepers_search_space() -> None:
    with initialize_config_module("mmexp.conf", version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=optuna"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.overrides.task = ["fusion=concat,gated", "seed=range(2)", "split.fold=0", "+trainer.max_epochs=2"]
    assert swept_keys(cfg) == ["fusion", "seed", "optimizer.lr", "model.dropout", "model.head_hidden"]
    callback = NameSweepJobs()
    callback.on_multirun_start(cfg)
    try:
        assert json.loads(os.environ[SWEPT_KEYS_ENV])[0] == "fusion"
        trial = ["fusion=gated", "seed=1", "split.fold=0", "+trainer.max_epochs=2", "optimizer.lr=0.001234567"]
        assert job_suffix(trial) == "_fusion=gated_seed=1_lr=0.001235"
        tags = run_tags(trial, {"fusion": "gated", "split": "kfold"}, "/o/multirun/2026-12-02_x/3_fusion=g", "MULTIRUN")
        assert tags == {
            "fusion": "gated",
            "seed": "1",
            "lr": "0.001235",
            "split": "kfold",
            "sweep": "2026-12-02_x",
            "run_dir": "/o/multirun/2026-12-02_x/3_fusion=g",
        }
        assert tag_list(tags) == ["fusion=gated", "seed=1", "lr=0.001235", "split=kfold", "sweep=2026-12-02_x"]
    finally:
        callback.on_multirun_end(cfg)
    assert SWEPT_KEYS_ENV not in os.environ


def test_run_dirs_with_equals_signs_can_be_passed_back_unquoted() -> None:
    args = ["hydra.run.dir=out/m/0_fusion=concat_fold=0", "resume=auto", "ckpt_path=a=1/b.ckpt,c/d.ckpt", "x=1"]
    quoted = quote_path_overrides(args)
    assert quoted == [
        'hydra.run.dir="out/m/0_fusion=concat_fold=0"',
        "resume=auto",
        'ckpt_path="a=1/b.ckpt",c/d.ckpt',
        "x=1",
    ]
    assert quote_path_overrides(quoted) == quoted  # already quoted: kept
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(quoted)
    assert parsed[0].value() == "out/m/0_fusion=concat_fold=0"
    jobs = [parser.parse_override(f"ckpt_path={v}").value() for v in parsed[2].sweep_string_iterator()]
    assert jobs == ["a=1/b.ckpt", "c/d.ckpt"]  # a sweep over two checkpoints still sweeps


@pytest.mark.slow  # two trainings with every logger (~100 s on a busy 2-core machine); the fast suite's joblib
# sweep in test_sweeps.py checks job names, MLflow names and tags and resuming a named dir
def test_a_real_sweep_names_its_jobs_dashboards_and_tags_by_the_swept_key(tmp_path: Path) -> None:
    """Two jobs (fusion varies; max_epochs, fold and n_samples are shared and left out of every name)."""
    result = run_cli(
        "mmexp.train",
        "-m",
        "fusion=concat,gated",
        "++trainer.max_epochs=1",
        "split=kfold",
        "split.fold=1",
        "data.synthetic.n_samples=120",
        "debug=fast",
        "logger=many",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0_fusion=concat", "1_fusion=gated"]
    runs = sorted(mlflow_runs(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"), key=lambda r: r["name"])
    assert [r["name"] for r in runs] == ["0_fusion=concat", "1_fusion=gated"]
    assert [(r["tags"]["fusion"], r["tags"]["sweep"]) for r in runs] == [("concat", sweep.name), ("gated", sweep.name)]
    assert not {"fold", "max_epochs", "n_samples"} & set(runs[0]["tags"])  # shared: in the params only
    assert runs[0]["params"]["split.fold"] == "1" and runs[0]["params"]["fusion"] == "concat"
    (wandb_run,) = [r["run"] for r in wandb_records(jobs[1]) if r["type"] == "run"]
    assert wandb_run["display_name"] == "1_fusion=gated" and wandb_run["run_group"] == sweep.name
    assert "fusion=gated" in wandb_run["tags"] and f"sweep={sweep.name}" in wandb_run["tags"]
    for job in jobs:  # each dashboard's best val/f1_macro is the job's metrics.json's
        best = json.loads((job / "metrics.json").read_text())["val"]["val/f1_macro"]
        run = next(r for r in runs if r["name"] == job.name)
        assert run["metrics"]["val/f1_macro"] == pytest.approx(best)


@pytest.mark.parametrize("command", ["train", "eval", "predict"])
def test_every_command_names_its_dirs_by_the_rule(command: str) -> None:
    with initialize_config_module("mmexp.conf", version_base="1.3"):
        cfg = compose(command, overrides=[], return_hydra_config=True)
    raw = OmegaConf.to_container(cfg.hydra, resolve=False)
    assert isinstance(raw, dict)
    assert "mmexp_run_suffix:${hydra.overrides.task}" in raw["run"]["dir"]
    assert "mmexp_job_suffix:${hydra.overrides.task}" in raw["sweep"]["subdir"]
