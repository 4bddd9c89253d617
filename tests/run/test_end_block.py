"""The ends of a run and a sweep: the run's dir, rounded metrics and next commands; the sweep's report."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mmexp.run.end_block import end_block, job_line
from mmexp.run.sweep_report import ReportSweep, ranking_top
from tests.conftest import run_cli

NOISE = ("GPU available", "TPU available", "Trainer already configured", "modules in eval mode", "Modules in eval")
LIGHTNING_TABLE = ("Test metric", "DataLoader 0", "┃")


def test_a_run_ends_with_its_dir_rounded_metrics_and_commands_hydra_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "outputs" / "runs" / "2026-12-02_10-00-00-000001_fusion=late,seed=1"
    metrics = {
        "val": {"val/f1_macro": 0.28812345, "val/acc": 0.5, "val/loss": 1.23456},
        "test": {"test/f1_macro": 0.000214755, "test/acc": 0.99999, "test/ece": 0.00021475553512573242},
        "best_checkpoint": str(run / "checkpoints" / "best.ckpt"),
    }
    block = end_block(run, metrics, optimized="val/f1_macro")
    lines = block.splitlines()
    assert lines[0] == f"run done: outputs/runs/{run.name}"  # relative to where the user is
    assert lines[1].split() == ["val", "f1_macro", "0.2881", "acc", "0.5"]
    assert lines[2].split() == ["test", "f1_macro", "0.0002148", "acc", "1"]  # 4 significant digits
    assert "ece" not in block and "loss" not in block  # the key metrics only: metrics.json has the rest
    commands = [line.strip() for line in lines[lines.index("next:") + 1 :]]
    assert [c.split()[2] for c in commands] == ["mmexp.eval", "mmexp.predict", "mmexp.report"]
    for command in commands[:2]:  # the shell word is an override Hydra reads back as the checkpoint's path
        (ckpt,) = OverridesParser.create().parse_overrides([shlex.split(command)[3]])
        assert ckpt.key_or_group == "ckpt_path" and ckpt.value() == f"outputs/runs/{run.name}/checkpoints/best.ckpt"
    assert shlex.split(commands[2])[3] == f"outputs/runs/{run.name}"
    assert job_line(run, metrics, optimized="val/f1_macro") == (
        f"job done: outputs/runs/{run.name}: val f1_macro 0.2881  acc 0.5; test f1_macro 0.0002148  acc 1"
    )


def test_ranking_top_is_the_ranking_table_cut_after_three_rows() -> None:
    markdown = "# Report\n\ntext\n\n| group | f1 |\n|---|---|\n| a | 1 |\n| b | 2 |\n| c | 3 |\n| d | 4 |\n\n| x |\n"
    assert ranking_top(markdown) == ["| group | f1 |", "|---|---|", "| a | 1 |", "| b | 2 |", "| c | 3 |"]
    assert ranking_top("no table") == []
    under_heading = "| note |\n|---|\n| x |\n\n## Ranking\n\n| rank | group |\n|---|---|\n| 1 | fusion=late |\n"
    assert ranking_top(under_heading) == ["| rank | group |", "|---|---|", "| 1 | fusion=late |"]


def test_a_report_that_fails_costs_one_warning_not_the_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})  # no run dirs: the report refuses
    ReportSweep().on_multirun_end(config)
    out, err = capsys.readouterr()
    assert out == ""
    warning = err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("mmexp: warning: no sweep report")
    assert "no run directories" in warning[0] and f"python -m mmexp.report {tmp_path}" in warning[0]


def test_a_sweep_ends_with_its_report_and_its_jobs_with_one_line_each(tmp_path: Path, cache_dir: Path) -> None:
    result = run_cli(
        "mmexp.train",
        "-m",
        "fusion=concat,late",
        "data.synthetic.n_samples=120",
        "debug=fast",
        "logger=none",
        f"paths.cache_dir={cache_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()
    assert all((sweep / name).is_file() for name in ("report.html", "report.md", "report.csv"))
    shown = f"sweep report: outputs/multirun/{sweep.name}/report.html"  # as the user would type it
    assert shown in out
    ranking = out.split(shown)[1].splitlines()[1:]
    assert ranking[0].startswith("|") and "fusion=" in "\n".join(ranking[2:4])  # the top of the ranking
    jobs = re.findall(r"job done: (\S+): val f1_macro (\S+)", out)
    assert len(jobs) == 2 and all((tmp_path / d).parent == sweep for d, _ in jobs)
    assert all(len(value.lstrip("0.")) <= 4 for _, value in jobs)  # rounded to 4 significant digits
    assert "run done:" not in out  # a job's line, not a single run's block
    for noise in NOISE + LIGHTNING_TABLE:
        assert noise not in out, noise


def test_known_noise_is_dropped_and_other_warnings_stay(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import warnings

    from lightning.pytorch.utilities.rank_zero import rank_zero_info
    from lightning.pytorch.utilities.warnings import PossibleUserWarning

    from mmexp.core.log_setup import not_noise, quiet_known_warnings, route_lightning_logs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_warnings()
        warnings.warn("Found 307 module(s) in eval mode at the start of training.", PossibleUserWarning, stacklevel=1)
        warnings.warn("The 'train_dataloader' does not have many workers", PossibleUserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["The 'train_dataloader' does not have many workers"]

    def record(level: int, msg: str) -> logging.LogRecord:
        return logging.LogRecord("lightning", level, __file__, 0, msg, (), None)

    assert not not_noise(record(logging.INFO, "GPU available: False, used: False"))
    assert not not_noise(record(logging.INFO, "Trainer already configured with model summary callbacks: [...]"))
    assert not_noise(record(logging.INFO, "`Trainer.fit` stopped: `max_epochs=1` reached."))
    assert not_noise(record(logging.WARNING, "GPU available but not used."))

    caplog.set_level(logging.INFO)
    route_lightning_logs()
    rank_zero_info("TPU available: False, using: 0 TPU cores")  # as Lightning's Trainer logs them
    logging.getLogger("lightning.pytorch.accelerators.cuda").info("LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]")
    rank_zero_info("`Trainer.fit` stopped: `max_epochs=1` reached.")
    assert caplog.messages == ["`Trainer.fit` stopped: `max_epochs=1` reached."]
