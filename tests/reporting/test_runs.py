"""A report a reviewer can trust and read: ranked on validation, each run once, one ranking per dataset, short
labels, tables and figures that fit an 800 px page, and a warning when test sets are too small."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import struct
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from mmexp.report import main
from mmexp.reporting import plots
from mmexp.reporting.groups import analyse
from mmexp.reporting.labels import group_labels
from mmexp.reporting.plots import curve_band
from mmexp.reporting.runs import find_run_dirs, load_run
from mmexp.run.recorder import RunRecorder
from mmexp.run.run_info import start_info
from tests.reporting.test_report import read_csv, write_run


def set_val(run_dir: Path, f1: float) -> None:
    """Give a run a validation score different from its test score."""
    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["val"]["val/f1_macro"] = f1
    path.write_text(json.dumps(metrics))


def set_info(run_dir: Path, **fields: object) -> None:
    path = run_dir / "run_info.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def set_config(run_dir: Path, **fields: object) -> None:
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **fields}))


def test_groups_rank_on_validation_and_the_header_says_test_never_chooses(tmp_path: Path, capsys) -> None:
    # test says image_only is better, validation says concat: the ranking follows validation
    for fold in (0, 1):
        set_val(write_run(tmp_path / f"c{fold}", fusion="concat", fold=fold, f1=0.5 + 0.01 * fold), 0.9)
        set_val(write_run(tmp_path / f"i{fold}", fusion="image_only", fold=fold, f1=0.8 + 0.01 * fold), 0.6)
    assert main([str(tmp_path)]) == 0
    rows = read_csv(tmp_path / "report.csv")
    assert list(rows) == ["fusion=concat,split=kfold", "fusion=image_only,split=kfold"]
    assert rows["fusion=concat,split=kfold"]["rank"] == "1"
    assert float(rows["fusion=concat,split=kfold"]["val/f1_macro_mean"]) == pytest.approx(0.9)
    md = (tmp_path / "report.md").read_text()
    assert "Ranked and chosen by val/f1_macro" in md and "never used to rank or choose" in md
    header = next(line for line in md.splitlines() if line.startswith("| rank |"))
    assert header.startswith("| rank | group | n | val/f1_macro ↑ | test/f1_macro ↑ |")
    # the comparison with the baseline is on the held-out test score
    assert "Compared on test/f1_macro" in md and float(rows["fusion=concat,split=kfold"]["mean_diff"]) < 0
    # a test metric can still be chosen, with a warning in the header
    assert main([str(tmp_path), "--metric", "test/f1_macro"]) == 0
    assert next(iter(read_csv(tmp_path / "report.csv"))) == "fusion=image_only,split=kfold"
    assert "makes that score optimistic" in (tmp_path / "report.md").read_text()


def test_a_copied_run_dir_is_counted_once_and_named_in_one_line(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    for fold in (0, 1):
        write_run(sweep / f"{fold}", fusion="concat", fold=fold, f1=0.6 + 0.1 * fold)
        set_info(sweep / f"{fold}", run_id=f"id{fold}")
    shutil.copytree(sweep / "0", sweep / "0_copy")
    # runs from before run ids: the same start time, seed and overrides is the same run; another start is not
    for name, start in (("old", "2026-01-01T00:00:00.000+00:00"), ("old_copy", "2026-01-01T00:00:00.000+00:00")):
        write_run(sweep / name, fusion="late", fold=0)
        set_info(sweep / name, start_time=start)
    write_run(sweep / "old_rerun", fusion="late", fold=0)
    set_info(sweep / "old_rerun", start_time="2026-01-02T00:00:00.000+00:00")
    assert main([str(sweep)]) == 0
    rows = read_csv(sweep / "report.csv")
    assert rows["fusion=concat,split=kfold"]["n"] == "2"  # not 3
    assert float(rows["fusion=concat,split=kfold"]["test/f1_macro_std"]) > 0
    assert rows["fusion=late,split=kfold"]["n"] == "2"  # old + old_rerun
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if "Counted once" in line]
    assert "2 run dir(s)" in line and "0_copy = 0" in line and "old_copy = old" in line
    assert "Counted once: 2 run dir(s)" in (sweep / "report.md").read_text()


def test_runs_of_different_tasks_or_data_are_ranked_and_paired_separately(tmp_path: Path, capsys) -> None:
    for task, data in (("multiclass", "conjunction"), ("binary", "conjunction"), ("multiclass", "synergy")):
        for fusion in ("concat", "image_only"):
            for fold in (0, 1):
                run = write_run(tmp_path / f"{task}_{data}_{fusion}_{fold}", fusion=fusion, fold=fold)
                set_config(run, task={"name": task}, data={"root": None, "synthetic": {"interaction": data}})
    assert main([str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    titles = [line for line in md.splitlines() if line.startswith("## Ranking")]
    assert titles == [
        "## Ranking — data.synthetic.interaction=conjunction, task=binary",
        "## Ranking — data.synthetic.interaction=conjunction, task=multiclass",
        "## Ranking — data.synthetic.interaction=synergy, task=multiclass",
    ]
    assert "3 datasets or tasks, each ranked on its own" in md
    with (tmp_path / "report.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6  # two groups per dataset, none merged across datasets
    assert sorted((r["dataset"], r["rank"], r["n"]) for r in rows)[:2] == [
        ("data.synthetic.interaction=conjunction, task=binary", "1", "2"),
        ("data.synthetic.interaction=conjunction, task=binary", "2", "2"),
    ]  # ranked within its dataset, 2 runs per group (not 6)
    # each dataset's concat is paired with its own image_only: 2 pairs, never 6
    assert md.count("| 2 | +0.000 |") == 3


def test_across_names_missing_cells_on_the_terminal(tmp_path: Path, capsys) -> None:
    for dataset in ("a", "b"):
        for fusion in ("concat", "late", "image_only") if dataset == "a" else ("concat", "late"):
            write_run(tmp_path / dataset / fusion, fusion=fusion, fold=0)
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--across", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    expected = "Left out of the ranking over datasets (no completed run): fusion=image_only,split=kfold in b."
    assert f"mmexp.report: {expected}" in captured.err
    assert expected in captured.out  # report.md, printed to the terminal


def test_group_labels_follow_the_naming_rule() -> None:
    groups = [
        ("++trainer.max_epochs=2", "fusion=concat", "optimizer.lr=0.000123456789", "model.dropout=0.1"),
        ("++trainer.max_epochs=2", "fusion=attention", "optimizer.lr=0.02", "model.dropout=0.1"),
    ]
    assert group_labels(groups) == ["fusion=concat,lr=0.0001235", "fusion=attention,lr=0.02"]
    # a key is cut to the shortest dotted tail no other shown key has
    assert group_labels([("model.dropout=0.1", "fusion.dropout=0.2"), ("model.dropout=0.3",)]) == [
        "fusion.dropout=0.2,model.dropout=0.1",
        "model.dropout=0.3",
    ]
    assert group_labels([("+seed=1",)]) == ["seed=1"]  # a lone group keeps its overrides, without the +
    assert group_labels([("a=0.123456",), ("a=0.123457",)]) == ["a=0.123456", "a=0.123457"]  # rounding never merges
    assert group_labels([("a=1",), ()]) == ["a=1", "(default)"]


def test_tables_show_short_labels_and_figures_fit_an_800_px_page(tmp_path: Path) -> None:
    for fusion in ("concat", "attention"):
        for fold in (0, 1):
            write_run(tmp_path / f"{fusion}{fold}", fusion=fusion, fold=fold, extra=("++trainer.max_epochs=2",))
    assert main([str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text()
    assert '<td class="text">fusion=attention</td>' in html  # shared overrides left out of the label
    assert "Group labels leave out the overrides every group shares: split=kfold, trainer.max_epochs=2" in html
    assert '<span class="ci">[' in html  # intervals on their own line keep numeric columns narrow
    ranking = html.split("<h2>Ranking</h2>")[1].split("</table>")[0]
    assert ranking.count("<th>") <= 7
    widths = [png_width(png) for png in re.findall(r"base64,([^\"]+)", html)]
    assert len(widths) == 3 and max(widths) <= 780  # shown at full size, so 8-point text stays legible
    assert main([str(tmp_path), "--baseline", "fusion=concat"]) == 0  # a label names the baseline as well
    assert read_csv(tmp_path / "report.csv")["fusion=attention,split=kfold,trainer.max_epochs=2"]["baseline"] == (
        "fusion=concat,split=kfold,trainer.max_epochs=2"
    )


def png_width(encoded: str | None) -> int:
    assert encoded is not None
    return int(struct.unpack(">I", base64.b64decode(encoded)[16:20])[0])


@pytest.mark.parametrize("classes", [3, 12, 20])
def test_confusion_matrices_are_drawn_no_wider_than_the_page(tmp_path: Path, classes: int) -> None:
    labels = [f"class_{i}" for i in range(classes)]
    for fusion in ("concat", "late", "gated"):
        run = write_run(tmp_path / fusion, fusion=fusion, fold=0)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["labels"] = labels
        metrics["confusion_matrix"] = [[5 if i == j else 1 for j in range(classes)] for i in range(classes)]
        (run / "metrics.json").write_text(json.dumps(metrics))
    report = analyse([load_run(d) for d in find_run_dirs([tmp_path])], metric="f1_macro", baseline=None, ignore=())
    assert png_width(plots.confusion_matrices(report)) <= 760  # shown unscaled: 8-point cell values stay legible


def test_learning_curves_count_epochs_from_1_and_bands_stay_in_range() -> None:
    epochs, mean, low, high = curve_band({0: (0.9, 0.3), 1: (0.05, 0.2)})
    assert epochs == [1, 2] and mean == [0.9, 0.05]
    assert low == [pytest.approx(0.6), 0.0] and high == [1.0, pytest.approx(0.25)]


def test_small_test_folds_are_warned_about(tmp_path: Path, capsys) -> None:
    run = write_run(tmp_path / "tiny", fusion="concat", fold=0)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["confusion_matrix"] = [[2, 1], [3, 6]]  # class cat: 3 test rows
    (run / "metrics.json").write_text(json.dumps(metrics))
    write_run(tmp_path / "fine", fusion="late", fold=0)  # [[8, 2], [1, 9]]: 10 rows each
    assert main([str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "Warning: test sets too small" in err and "class 'cat' has only 3 test row(s) in tiny" in err
    assert "5-fold split" in err and "recall by 0.33" in err
    assert "Warning: test sets too small" in (tmp_path / "report.md").read_text()
    (run / "metrics.json").write_text(json.dumps({**metrics, "confusion_matrix": [[8, 2], [1, 9]]}))
    assert main([str(tmp_path)]) == 0
    assert "Warning" not in capsys.readouterr().err


def test_a_run_records_an_id_when_it_starts_and_keeps_it_when_resumed(tmp_path: Path) -> None:
    first, second = start_info(seed=0, overrides=[]), start_info(seed=0, overrides=[])
    assert re.fullmatch(r"[0-9a-f]{32}", first["run_id"]) and first["run_id"] != second["run_id"]
    cfg = OmegaConf.create({"seed": 0})
    recorder = RunRecorder(tmp_path, cfg, overrides=["fusion=concat"])
    run_id = json.loads((tmp_path / "run_info.json").read_text())["run_id"]
    assert recorder.info["run_id"] == run_id
    RunRecorder(tmp_path, cfg, overrides=["fusion=concat"], resumed=True)
    assert json.loads((tmp_path / "run_info.json").read_text())["run_id"] == run_id
