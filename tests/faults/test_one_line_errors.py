"""Class 7 of issue 25: failures a user causes end in one line that names the cause and the fix, never in a
traceback; where the command would write a dir, the refusal comes before anything is written."""

from __future__ import annotations

import pathlib
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra._internal.callbacks import Callbacks
from omegaconf import OmegaConf

from mmexp.app.cli import run_job
from mmexp.app.config_checks import check_config
from mmexp.core.errors import ConfigError
from mmexp.train import train
from tests.conftest import run_cli
from tests.data_factory import clean_rows, write_manifest
from tests.faults.in_process import run_main

FAST = ["debug=fast", "logger=none", "trainer.max_epochs=1", "data.synthetic.n_samples=120"]


def test_train_refuses_a_missing_or_crafted_checkpoint_before_its_run_dir(tmp_path: Path, make_cfg) -> None:
    crafted = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "payload": pathlib.PurePosixPath("/etc")}, crafted)  # a global beyond tensors
    cases = {
        tmp_path / "nope.ckpt": r"ckpt_path=.*nope\.ckpt: no such file; give a checkpoint to start from",
        crafted: r"crafted\.ckpt: holds objects other than tensors .*\(Unsupported global: GLOBAL pathlib\.PurePosix",
    }
    for path, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            train(make_cfg(*FAST, f"ckpt_path={path}"))
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override", ["seed=-1", "seed=4294967296", "seed=true", "split.seed=-3"])
def test_a_seed_numpy_cannot_take_is_one_error(make_cfg, override: str) -> None:
    key, _, value = override.partition("=")
    with pytest.raises(ConfigError, match=rf"^{key}={value.capitalize() if value == 'true' else value} is invalid: "
                       r"expected an integer from 0 to 4294967295"):  # fmt: skip
        check_config(make_cfg(override))


@pytest.mark.parametrize("loop", [("+a=${b}", "+b=${a}"), ("model.dropout=${model.dropout}",)])
def test_an_interpolation_loop_on_the_command_line_is_one_line_and_makes_no_dir(tmp_path: Path, loop) -> None:
    for sweep in ([], ["-m"]):
        message = run_main("train", *sweep, *FAST, *loop, f"paths.output_dir={tmp_path / 'out'}")
        assert not (tmp_path / "out").exists()
        assert message == (
            "mmexp: error: the config cannot be resolved: Recursive interpolation detected; check the ${...} in the "
            f"overrides {', '.join(loop)} (each must name another key, with no loop)"
        )


@pytest.mark.parametrize(
    "node",
    [
        {"a": "${b}", "b": "${a}"},  # a loop in a config file
        {"a": "${missing.key}"},  # an interpolation of a key that does not exist
        {"a": "${oc.env:"},  # bad ${...} syntax
        {"a": "???"},  # a mandatory value nobody gave
    ],
)
def test_any_unresolvable_config_in_a_job_is_one_line(node: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run_job(lambda: OmegaConf.create(node).a, run_dir=None)
    message = str(exited.value.code)
    assert message.startswith("mmexp: error: the config cannot be resolved") and "\n" not in message


def test_resume_auto_without_the_dir_to_resume_is_one_line_and_trains_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    message = run_main("train", *FAST, "resume=auto", f"paths.output_dir={out}")
    assert message is not None and message.startswith("mmexp: error: resume=auto needs hydra.run.dir=<the dir of")
    message = run_main("train", "-m", *FAST, "resume=auto", f"paths.output_dir={out}")
    assert message is not None and message.startswith("mmexp: error: resume=auto needs hydra.sweep.dir=<the dir of")
    assert not out.exists()


def _optuna_callbacks(*overrides: str) -> None:
    """The sweep's callbacks as Hydra runs them (Hydra only warns about an exception a callback raises)."""
    with initialize_config_module("mmexp.conf", version_base="1.3"):
        config = compose("train", overrides=list(overrides), return_hydra_config=True)
    Callbacks(config).on_multirun_start(config=config)


def test_an_optuna_study_of_another_direction_is_one_line_however_the_sweeper_was_chosen(tmp_path: Path) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="mine", storage=storage, direction="maximize")
    sweep = [f"hydra.sweeper.storage={storage}"]
    with pytest.raises(SystemExit) as refused:  # hydra/sweeper=optuna without hparams_search=optuna
        _optuna_callbacks(
            "hydra/sweeper=optuna",
            *sweep,
            f"hydra.sweep.dir={tmp_path / 'sweep1'}",
            "hydra.sweeper.study_name=mine",
            "hydra.sweeper.direction=minimize",
        )
    assert 'directions: ["maximize"] there, ["minimize"] here' in str(refused.value.code)
    with pytest.raises(SystemExit) as refused:
        _optuna_callbacks(
            "hparams_search=optuna", *sweep, f"hydra.sweep.dir={tmp_path / 'sweep2'}", "hydra.sweeper.direction=max"
        )
    assert str(refused.value.code) == (
        "mmexp: error: hydra.sweeper.direction=max: expected minimize or maximize "
        "(a list of them for several objectives)"
    )
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["mine"]


def test_a_relative_data_root_is_read_from_where_training_ran_or_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmexp.core.training_config import training_config  # new in issue 25

    run, project, elsewhere = tmp_path / "run", tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / ".hydra").mkdir(parents=True)
    (run / "config.yaml").write_text("data:\n  root: data\n")  # as training saved it: as typed
    (run / ".hydra" / "hydra.yaml").write_text(
        f"hydra:\n  runtime:\n    cwd: {project}\n    choices:\n      data: folder\n"
    )
    write_manifest(project / "data", clean_rows(project / "data", n=4))
    monkeypatch.chdir(elsewhere)
    assert training_config(run, own_data=True).data.root == str(project / "data")
    assert training_config(run, own_data=False).data.root == "data"  # the command brings its own data
    shutil.rmtree(project / "data")
    with pytest.raises(ConfigError) as refused:
        training_config(run, own_data=True)
    assert str(refused.value) == (
        f"data.root=data in {run / 'config.yaml'} is relative to the directory where training ran ({project}) and "
        f"is not found there nor from here ({elsewhere}); run from that directory, or give the data with an "
        "absolute path: data=folder data.root=<absolute path of data>"
    )


@pytest.mark.slow  # the fast test above checks the same rule on a run dir's files
def test_eval_from_another_directory_finds_a_training_time_relative_data_root(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, elsewhere, run = tmp_path / "project", tmp_path / "elsewhere", tmp_path / "run"
    elsewhere.mkdir()
    write_manifest(project / "data", clean_rows(project / "data", n=24))
    monkeypatch.chdir(project)
    trained = run_main("train", *FAST[:3], "data=folder", "data.root=data", f"hydra.run.dir={run}",
                       f"paths.cache_dir={cache_dir}")  # fmt: skip
    assert trained is None
    monkeypatch.chdir(elsewhere)
    ckpt = run / "checkpoints" / "best.ckpt"
    evaluated = run_main("eval", f"ckpt_path={ckpt}", "~robustness.corruptions", f"paths.cache_dir={cache_dir}")
    assert evaluated is None and list((elsewhere / "outputs" / "evals").glob("*/eval.json"))


def test_the_command_line_prints_the_one_line_and_no_traceback(tmp_path: Path) -> None:
    result = run_cli("mmexp.train", "seed=-1", "logger=none", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == "mmexp: error: seed=-1 is invalid: expected an integer from 0 to 4294967295, e.g. seed=0"
    )
