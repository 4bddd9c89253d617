"""Issue 25, class 6: messages that sent a user the wrong way.

``mmexp.inspect``'s suggested first run must run as written (it stopped on the bad row inspect had just listed),
and it must not point at a run dir inspect never makes. An image folder linked into ``data.root`` from elsewhere
must be named as the link it is, with the documented option that allows it.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mmexp.app.compose import compose_train_config
from mmexp.data.manifest import read_rows
from mmexp.data.records import Columns, parse_records
from mmexp.data.task import Task
from mmexp.evaluation.predictions import check_manifest
from mmexp.inspect import inspect_data
from mmexp.training.build import build_datamodule
from tests.conftest import compose_command
from tests.data_factory import clean_rows, write_manifest


def test_inspect_suggests_a_first_run_that_runs_as_written(
    tmp_path: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "my data"  # a space: the command must quote it
    rows = [{**r, "y": r.pop("label")} for r in clean_rows(data, n=20)]  # the label column needs data.label_col
    rows[3]["image"] = "img/missing.png"
    write_manifest(data, rows, "csv")
    typed = ["data=folder", f"data.root={data}", "data.manifest=manifest.csv", "data.label_col=y", "seed=3"]
    typed.append("data.on_bad_record=error")  # inspect skips anyway; the suggested run must skip too
    with caplog.at_level(logging.WARNING):
        summary = inspect_data(compose_command("inspect", tmp_path / "out", cache_dir, *typed, run_dir=tmp_path))
    assert "see skipped.jsonl in the run dir" not in caplog.text  # inspect makes no run dir
    lines = summary.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("first run:"))
    assert lines[at + 1].strip() == (
        "1 bad row(s): the run skips them (data.on_bad_record=skip) and lists them in skipped.jsonl of its run dir"
    )
    words = shlex.split(lines[at].removeprefix("first run:").split("   (")[0])  # then the note in parentheses
    assert words[:4] == ["python", "-m", "mmexp.train", "experiment=pretrained"] and "seed=3" not in words
    assert "data.on_bad_record=error" not in words and words[-1] == "data.on_bad_record=skip"
    cfg = compose_train_config(words[3:], run_dir=tmp_path / "run")  # the command's overrides, as the shell passes them
    datamodule = build_datamodule(cfg.data, OmegaConf.create({}), task=cfg.task, image_cache=False)
    datamodule.setup()  # stopped on the bad row before: the command lacked data.on_bad_record=skip
    assert len(datamodule.info.records) == 19 and [b.line for b in datamodule.info.skipped] == [5]
    assert len(datamodule.label_names) == 4  # data.label_col=y travelled with it


def test_an_image_folder_linked_from_elsewhere_names_the_link_and_the_option(tmp_path: Path, make_cfg) -> None:
    store, data = tmp_path / "store", tmp_path / "data"
    rows = clean_rows(store, n=20)  # the images live in store/img; data/img is a link to them
    data.mkdir()
    (data / "img").symlink_to(store / "img", target_is_directory=True)
    path = write_manifest(data, rows)
    records, bad = parse_records(read_rows(path), data, Columns())
    assert not records and len(bad) == 20
    assert bad[0].reason == (
        f"image path 'img/000.png' resolves outside data.root through the symbolic link 'img' (-> {store / 'img'}); "
        "set data.follow_symlinks=true to allow links that leave data.root"
    )
    cfg = make_cfg("data=folder", f"data.root={data}", "data.follow_symlinks=true")  # the option, as documented
    datamodule = build_datamodule(cfg.data, cfg.text_encoder, task=cfg.task, image_cache=False)
    datamodule.setup()
    assert len(datamodule.info.records) == 20 and not datamodule.info.skipped
    assert not check_manifest(path, data, Columns(), Task(), follow_symlinks=True).bad  # mmexp.predict reads so too
    escape = [(1, {"id": "x", "image": "../store/img/000.png", "text": "t", "label": "a"})]
    _, [dots] = parse_records(escape, data, Columns(), follow_symlinks=True)  # ".." stays refused with the option
    assert dots.reason == "image path '../store/img/000.png' is outside data.root (paths must be relative to it)"
