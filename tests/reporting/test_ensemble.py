"""`mmexp.report --ensemble`: greedy ensembles of a sweep's runs, chosen on val predictions, scored once on test.

The ensemble's numbers must be the runs' numbers: the numpy metrics equal torchmetrics (``TaskMetrics``) and the
tuned thresholds equal ``Objective``'s; an ensemble of one run reproduces that run's metrics.json.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mmexp.data.task import Task
from mmexp.reporting.cli import main as report_main
from mmexp.reporting.ensemble import build_ensembles, greedy_counts
from mmexp.reporting.ensemble_metrics import TaskSpec, decision_metrics, thresholds_for
from mmexp.reporting.groups import ReportError
from mmexp.reporting.runs import load_run
from mmexp.run.sweep_report import ReportSweep
from mmexp.train import train
from mmexp.training.metrics import TaskMetrics
from mmexp.training.objective import Objective
from tests.conftest import compose_cfg

CLASSES = ["a", "b", "c", "d"]


def torch_metrics(task: TaskSpec, probs: np.ndarray, target: np.ndarray, tune: bool) -> tuple[dict[str, float], list]:
    """What a run logs for these rows (TaskMetrics), with Objective's thresholds tuned on them (or 0.5)."""
    objective = Objective(Task(task.name, threshold="tune" if tune else 0.5), task.num_classes, task.positive)
    p, t = torch.from_numpy(probs), torch.from_numpy(target)
    thresholds = objective.tune(p, t) if tune and task.name != "multiclass" else None
    if thresholds is None and task.name != "multiclass":
        thresholds = objective.initial_thresholds()
    metrics = TaskMetrics(objective)
    metrics.update(p, t, thresholds)
    out = {k: float(v) for k, v in metrics.compute().items()}
    return out, [] if thresholds is None else thresholds.tolist()


@pytest.mark.parametrize("name", ["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("tune", [True, False])
def test_ensemble_metrics_and_thresholds_equal_the_runs_torchmetrics(name: str, tune: bool) -> None:
    rng = np.random.default_rng(0)
    k = 2 if name == "binary" else 5
    n = 157
    if name == "multilabel":
        probs = rng.random((n, k)).astype(np.float32)
        target = (rng.random((n, k)) < probs * 0.9).astype(np.float32)
        target[:, 4] = 0  # a class with no positive: 0.5 threshold, and macro counts it as 0 (torchmetrics)
    else:
        logits = rng.normal(size=(n, k)) * 2
        probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
        target = np.array([rng.choice(k, p=p / p.sum()) for p in probs.astype(np.float64)])
        if name == "multiclass":
            target[target == 4] = 3  # a class neither true nor (mostly) predicted: left out of macro averages
    task = TaskSpec(name, k, 1 if name == "binary" else None, "tune" if tune else 0.5)
    thresholds = thresholds_for(task, probs, target)
    expected, expected_thresholds = torch_metrics(task, probs, target, tune)
    assert ([] if thresholds is None else thresholds.tolist()) == expected_thresholds  # bit for bit
    ours = decision_metrics(task, probs, target, thresholds)
    assert set(ours) == set(expected)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key


def complementary(y: int, first: bool) -> list[float]:
    """Run A is sure of classes a/b and mildly wrong on c/d; run B (first=False) the reverse."""
    if (y < 2) == first:
        return [0.7 if j == y else 0.1 for j in range(4)]
    wrong = (y + 1) % 4
    return [0.25 if j == y else 0.31 if j == wrong else 0.22 for j in range(4)]


def useless(y: int) -> list[float]:
    return [0.9 if j == (y + 2) % 4 else 0.1 / 3 for j in range(4)]


def write_run(
    root: Path, name: str, fusion: str, fold: int, val: dict[str, list[float]], test: dict[str, list[float]]
) -> Path:
    """A completed run dir as mmexp writes it, with the given probabilities (row id -> p) for val and test rows."""
    path = root / name
    (path / "predictions").mkdir(parents=True)
    labels = {i: CLASSES[int(i.split("_")[1])] for i in [*val, *test]}
    metrics = {}
    for split, rows in (("val", val), ("test", test)):
        with (path / "predictions" / f"{split}.csv").open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["id", "label", "predicted", "confidence", "missing", *(f"p_{c}" for c in CLASSES)])
            for i, p in rows.items():
                w.writerow([i, labels[i], CLASSES[int(np.argmax(p))], max(p), "none", *p])
        probs = np.array(list(rows.values()), dtype=np.float32)
        target = np.array([CLASSES.index(labels[i]) for i in rows])
        scores = decision_metrics(TaskSpec("multiclass", 4), probs, target, None)
        metrics[split] = {f"{split}/{k}": v for k, v in scores.items()}
    overrides = ["experiment=pretrained", f"fusion={fusion}", f"split.fold={fold}"]
    (path / "run_info.json").write_text(json.dumps({"status": "completed", "run_id": name, "overrides": overrides}))
    config = f"seed: 0\nsplit:\n  fold: {fold}\n  seed: 0\n  k: 5\ntask:\n  name: multiclass\n"
    (path / "config.yaml").write_text(config)
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "labels.json").write_text(json.dumps(CLASSES))
    split = {"train": IDS[48:], "val": list(val), "test": list(test)}
    (path / "split.json").write_text(json.dumps(split))
    return path


IDS = [f"r{j}_{j % 4}" for j in range(88)]  # row ids end in their class; folds share train rows 48-87


def rows(split: str, fold: int) -> list[str]:
    """Fold 0 validates on rows 0-23 and tests on 24-47; fold 1 the other way round (one dataset, two folds)."""
    first = (split == "v") == (fold == 0)
    return IDS[:24] if first else IDS[24:48]


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Three fusions x two folds: two complementary runs and a confidently wrong one per fold."""
    root = tmp_path / "sweep"
    for fold in (0, 1):
        val, test = rows("v", fold), rows("t", fold)
        for fusion, make in (
            ("concat", lambda y: complementary(y, True)),
            ("gated", lambda y: complementary(y, False)),
            ("late", useless),
        ):
            probs = {split: {i: make(int(i.split("_")[1])) for i in ids} for split, ids in (("v", val), ("t", test))}
            write_run(root, f"{fusion}_{fold}", fusion, fold, probs["v"], probs["t"])
    return root


def test_greedy_selection_weighs_complementary_runs_and_drops_a_useless_one(sweep: Path) -> None:
    runs = [load_run(p) for p in sorted(sweep.iterdir())]
    ensembles, notes = build_ensembles(runs, metric="val/f1_macro", out=sweep)
    assert notes == [] and len(ensembles) == 2
    for e in ensembles:
        assert {Path(p).name.split("_")[0]: w for p, w in e.weights.items()} == {"concat": 0.5, "gated": 0.5}
        test = (e.run.metrics or {})["test"]
        assert test["test/f1_macro"] == 1.0 and test["test/acc"] == 1.0  # each member alone: half the classes
    singles = [(r.metrics or {})["test"]["test/acc"] for r in runs]
    assert max(singles) == 0.5
    members = json.loads((sweep / "ensembles" / "members.json").read_text())
    assert [len(e["weights"]) for e in members["ensembles"]] == [2, 2]
    written = (Path(ensembles[0].run.path) / "predictions" / "test.csv").read_text().splitlines()
    assert written[0] == "id,label,predicted,confidence,missing,p_a,p_b,p_c,p_d" and len(written) == 25
    assert "name: multiclass" in (Path(ensembles[0].run.path) / "config.yaml").read_text()  # the members' data


def test_a_metric_that_cannot_choose_falls_back_to_val_macro_f1(sweep: Path) -> None:
    runs = [load_run(p) for p in sorted(sweep.iterdir())]
    for metric, note in (("val/auroc", True), ("val/f1_pos", False)):  # f1_pos: binary only, not these runs
        ensembles, notes = build_ensembles(runs, metric=metric, out=sweep)
        assert {e.selected_on for e in ensembles} == {"val/f1_macro"}
        assert bool(notes) == note


def test_greedy_adds_with_replacement_and_stops_at_the_best_step() -> None:
    y = np.array([0, 0, 1])
    strong = np.array([[0.9, 0.1], [0.9, 0.1], [0.55, 0.45]], dtype=np.float32)  # 2 of 3 right
    fixer = np.array([[0.4, 0.6], [0.4, 0.6], [0.0, 1.0]], dtype=np.float32)  # 1 of 3, but fixes row 3 in a blend

    def acc(p: np.ndarray) -> float:
        return float((p.argmax(1) == y).mean())

    # strong alone: 2/3; strong + fixer: row 3 right but rows 1-2 at 0.65/0.35: all right -> weights 1:1
    assert greedy_counts([strong, fixer], acc) == [1, 1]
    assert greedy_counts([strong, strong * 0 + [[1, 0]]], acc) == [1, 0]  # nothing helps: the best single alone


def test_runs_of_one_replicate_with_different_rows_are_refused_in_one_line(sweep: Path) -> None:
    other = sweep / "gated_0" / "predictions" / "val.csv"
    lines = other.read_text().splitlines()
    other.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # one val row fewer
    runs = [load_run(p) for p in sorted(sweep.iterdir())]
    message = r"share seed, split\.fold and split\.seed but their predictions/val\.csv hold different rows"
    with pytest.raises(ReportError, match=message):
        build_ensembles(runs, metric="val/f1_macro", out=sweep)


def test_report_ensemble_adds_a_row_and_a_paired_test_against_the_best_single_group(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_main([str(sweep), "--ensemble", "--errors", "0"]) == 0
    md = (sweep / "report.md").read_text()
    ranking = md.split("## Ranking", 1)[1].split("##", 1)[0]
    assert "| ensemble=greedy |" in ranking
    section = md.split("## Ensemble of the sweep", 1)[1].split("\n## ", 1)[0]
    ensemble_row = next(line for line in section.splitlines() if line.startswith("| ensemble |"))
    assert "corrected resampled t (k-fold)" in ensemble_row and "| 2 | +0.583 |" in ensemble_row
    assert "| best single | fusion=concat |" in section  # ranked first on val among single groups (a tie)
    assert "| fusion=concat 0.50, fusion=gated 0.50 | 1.000 | 1.000 |" in section and "late" not in section
    assert "ensemble=greedy" in (sweep / "report.csv").read_text()


def test_the_best_single_group_is_chosen_on_val_even_when_the_report_ranks_on_test(sweep: Path) -> None:
    for name, part, value in (("gated", "val", 0.45), ("concat", "test", 0.5)):  # gated best on val, concat on test
        for fold in (0, 1):
            path = sweep / f"{name}_{fold}" / "metrics.json"
            metrics = json.loads(path.read_text())
            metrics[part][f"{part}/f1_macro"] = value
            path.write_text(json.dumps(metrics))
    assert report_main([str(sweep), "--ensemble", "--errors", "0", "--metric", "test/f1_macro"]) == 0
    md = (sweep / "report.md").read_text()
    assert md.split("## Ranking", 1)[1].index("fusion=concat") < md.split("## Ranking", 1)[1].index("fusion=gated")
    section = md.split("## Ensemble of the sweep", 1)[1]
    assert "| best single | fusion=gated | 0.417 ± 0.000 |" in section


def test_the_sweep_callback_reports_the_ensemble_when_asked(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    ReportSweep(ensemble=True).on_multirun_end(config)
    assert "## Ensemble of the sweep" in (sweep / "report.md").read_text()
    assert (sweep / "ensembles" / "members.json").is_file()
    assert "sweep report:" in capsys.readouterr().out


def test_report_without_ensemble_flag_has_no_ensemble(sweep: Path) -> None:
    assert report_main([str(sweep), "--errors", "0"]) == 0
    assert "ensemble" not in (sweep / "report.md").read_text() and not (sweep / "ensembles").exists()


SMALL = [
    "logger=none",
    "text_encoder=bow",
    "data.synthetic.n_samples=200",
    "data.batch_size=32",
    "trainer.max_epochs=2",
    "trainer.enable_model_summary=false",
]


@pytest.fixture(scope="module", params=["multiclass", "binary", pytest.param("multilabel", marks=pytest.mark.slow)])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    out = tmp_path_factory.mktemp(request.param)
    train(compose_cfg(out, cache_dir, f"task={request.param}", *SMALL))
    return out / "run"


def test_an_ensemble_of_one_run_reproduces_that_runs_metrics(trained: Path, tmp_path: Path) -> None:
    run = load_run(trained)
    (ensemble,), _ = build_ensembles([run], metric="val/f1_macro", out=tmp_path)
    assert list(ensemble.weights.values()) == [1.0]
    got, expected = ensemble.run.metrics or {}, run.metrics or {}
    assert got.get("thresholds") == expected.get("thresholds")  # the binary/multilabel cut, tuned on val again
    for split in ("val", "test"):
        shared = set(got[split]) & set(expected[split])
        assert {f"{split}/acc", f"{split}/f1_macro"} <= shared
        for key in shared:
            assert got[split][key] == pytest.approx(expected[split][key], abs=1e-6), key
    if trained.parent.name.startswith(("multiclass", "binary")):  # multilabel runs keep per-class counts instead
        assert got["confusion_matrix"] == expected["confusion_matrix"]
