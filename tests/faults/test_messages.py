"""Class 9: failures read as one line that names the cause, and read-only commands write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from mmexp.core.errors import ConfigError
from mmexp.inspect import inspect_data
from mmexp.train import train
from tests.conftest import run_cli
from tests.data_factory import clean_rows, write_manifest


def files_under(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_a_failed_sweep_job_prints_one_line_and_keeps_the_traceback_in_its_log(tmp_path: Path) -> None:
    result = run_cli(
        "mmexp.train",
        "-m",
        "data.batch_size=-1",
        "debug=fast",
        "logger=none",
        f"paths.cache_dir={tmp_path}",
        cwd=tmp_path,
    )
    console = result.stdout + result.stderr
    assert result.returncode == 0, console[-3000:]
    assert "Traceback" not in console
    failed = [line for line in console.splitlines() if "job failed" in line]
    assert len(failed) == 1 and "data.batch_size=-1" in failed[0], console[-3000:]
    logs = list((tmp_path / "outputs" / "multirun").rglob("*.log"))
    assert logs and "Traceback" in "".join(p.read_text() for p in logs)


def compose_inspect(*overrides: str) -> DictConfig:
    """inspect.yaml composed as ``python -m mmexp.inspect`` composes it (its Hydra part is checked by the CLI tests)."""
    with initialize_config_module("mmexp.conf", version_base="1.3"):
        cfg = compose("inspect", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # as @hydra.main sets it (a config resolver reads it), not a prior test
    with open_dict(cfg):
        del cfg.hydra
    return cfg


def test_a_dataset_with_one_class_is_one_error_naming_it(tmp_path: Path, make_cfg) -> None:
    rows = [{**r, "label": "cat"} for r in clean_rows(tmp_path / "data", n=20)]
    write_manifest(tmp_path / "data", rows)
    with pytest.raises(ConfigError, match=r"'cat'.*at least two classes"):
        train(make_cfg("debug=fast", "logger=none", "data=folder", f"data.root={tmp_path / 'data'}"))


def test_inspect_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_manifest(data, clean_rows(data, n=20))
    before = files_under(tmp_path)
    folder = run_cli("mmexp.inspect", "data=folder", f"data.root={data}", cwd=tmp_path)  # Hydra writes nothing either
    assert folder.returncode == 0, folder.stderr[-3000:]
    cache = tmp_path / "cache"  # the built-in data is not cached yet: generated in a temporary folder
    summary = inspect_data(compose_inspect("data.synthetic.n_samples=60", f"paths.cache_dir={cache}"))
    assert "60 usable" in summary
    assert files_under(tmp_path) == before


def test_inspect_with_no_usable_row_says_why(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rows = [{**r, "image": f"missing/{r['id']}.png"} for r in clean_rows(data, n=6)]
    write_manifest(data, rows)
    with pytest.raises(ConfigError, match=r"(?s)no usable rows.*line 1: image file not found: 'missing/r0.png'") as e:
        inspect_data(compose_inspect("data=folder", f"data.root={data}"))  # inspect already skips bad rows
    assert "set data.on_bad_record=skip" not in str(e.value) and "skip cannot help" in str(e.value)
