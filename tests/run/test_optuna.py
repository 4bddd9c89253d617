"""Optuna sweeps people can watch: trials and run dirs name each other; a study holds one sweep's objective only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from mmexp.run.optuna_storage import STUDY_ENV, CreateSharedStudy, shown_storage
from mmexp.run.optuna_study import IDENTITY_ATTR
from mmexp.run.optuna_trial import RUN_DIR_ATTR, TRIAL_FILE
from tests.conftest import run_cli


def sweep_config(*overrides: str) -> DictConfig:
    """The sweep's own config, as Hydra hands it to ``on_multirun_start``."""
    with initialize_config_module("mmexp.conf", version_base="1.3"):
        return compose("train", overrides=["hparams_search=optuna", *overrides], return_hydra_config=True)


def start(*overrides: str) -> str:
    """Run the study callback as a sweep does; the study name the sweeper is then built with."""
    config = sweep_config(*overrides)
    CreateSharedStudy().on_multirun_start(config)
    return str(config.hydra.sweeper.study_name)


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_trials_and_run_dirs_name_each_other(tmp_path: Path, cache_dir: Path) -> None:
    """A real 2-trial sweep with the default storage (a database in the sweep dir) and the derived study name;
    then another sweep that names its study."""
    import optuna

    result = run_cli(
        "mmexp.train", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "debug=fast", "logger=none",
        "data.synthetic.n_samples=120", f"paths.cache_dir={cache_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()
    storage = f"sqlite:///{sweep.resolve() / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)  # the sweeper used the study the callback named
    assert summary.study_name.startswith("synthetic-multiclass-val_f1_macro-max-")
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    space = {"optimizer.lr", "model.dropout", "model.head_hidden"}
    assert set(study.user_attrs[IDENTITY_ATTR]["search_space"]) == space
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    run_dirs = {Path(t.user_attrs[RUN_DIR_ATTR]) for t in study.trials}
    assert {d.parent for d in run_dirs} == {sweep.resolve()} and len(run_dirs) == 2
    for trial in study.trials:
        run_dir = Path(trial.user_attrs[RUN_DIR_ATTR])
        names = {"study": study.study_name, "storage": storage, "trial": trial.number, "params": trial.params}
        assert json.loads((run_dir / TRIAL_FILE).read_text()) == names
        assert json.loads((run_dir / "metrics.json").read_text())["val"]["val/f1_macro"] == trial.value
    assert study.study_name in result.stderr + result.stdout  # the log names the study to open
    assert "setup plugin" not in result.stdout  # alembic's INFO lines stay off the console

    # a sweep of other data naming this study: refused before any trial, in one line, the study untouched
    refused = run_cli(
        "mmexp.train", "hparams_search=optuna", f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study.study_name}", "debug=fast", "logger=none", "data.synthetic.n_samples=200",
        f"paths.cache_dir={cache_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode == 1 and refused.stderr.startswith("mmexp: error: hydra.sweeper.study_name=")
    assert "\n" not in refused.stderr.strip() and "data.synthetic.n_samples: 120 there, 200 here)" in refused.stderr
    assert len(optuna.load_study(study_name=study.study_name, storage=storage).trials) == 2


def test_another_sweep_never_joins_a_study_silently(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    monkeypatch.setenv(STUDY_ENV, "")  # restored after the test: the callback tells jobs their study through it
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = start(f"hydra.sweeper.storage={storage}", "data.synthetic.n_samples=300")
    # the same sweep from another process (scale-out: another sampler seed, another output dir) shares it
    assert start(f"hydra.sweeper.storage={storage}", "data.synthetic.n_samples=300", "hydra.sweeper.sampler.seed=1",
                 f"paths.output_dir={tmp_path / 'elsewhere'}") == first  # fmt: skip
    # other data, another task: each its own study
    other = start(f"hydra.sweeper.storage={storage}", "data.synthetic.n_samples=200")
    binary = start(f"hydra.sweeper.storage={storage}", "data.synthetic.n_samples=300", "task=binary")
    assert binary.startswith("synthetic-binary-")
    assert {s.study_name for s in optuna.get_all_study_summaries(storage)} == {first, other, binary}
    recorded = optuna.load_study(study_name=first, storage=storage).user_attrs[IDENTITY_ATTR]
    assert recorded["data"]["synthetic"]["n_samples"] == 300

    # other data into the first study by name: one line naming both studies and what differs
    with pytest.raises(SystemExit) as refused:
        start(f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={first}", "data.synthetic.n_samples=200")
    message = str(refused.value.code)
    assert message.startswith(f"mmexp: error: hydra.sweeper.study_name={first}: ") and "\n" not in message
    assert "data.synthetic.n_samples: 300 there, 200 here" in message and other in message
    # another direction: one line (Optuna's own answer is a traceback from deep in create_study)
    with pytest.raises(SystemExit) as refused:
        start(f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={first}", "data.synthetic.n_samples=300",
              "hydra.sweeper.direction=minimize")  # fmt: skip
    assert 'directions: ["maximize"] there, ["minimize"] here' in str(refused.value.code)
    # a study that predates recorded identities (the old default name) is checked for its direction
    optuna.create_study(study_name="mmexp", storage=storage, direction="minimize")
    with pytest.raises(SystemExit, match=r"study_name=mmexp: .*directions"):
        start(f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=mmexp")
    # a name of one's own still works
    assert start(f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=mine") == "mine"
    assert {s.study_name for s in optuna.get_all_study_summaries(storage)} == {first, other, binary, "mmexp", "mine"}
    # what logs and run dirs show of a storage: never its password
    assert shown_storage("postgresql://user:s3cret@db:5432/optuna") == "postgresql://user:***@db:5432/optuna"
