"""task=binary and task=multilabel end to end: labels, loss, thresholds, metrics, predictions, eval, predict, report.

Every check here would fail if a task silently ran as multiclass: the label maps, the task's own metric names,
sigmoid probabilities that do not sum to 1, thresholds in the checkpoint, and metric values recomputed from
``predictions/test.csv`` with scikit-learn.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmexp.app.evaluate import evaluate
from mmexp.core.errors import ConfigError
from mmexp.data.labels import InvalidLabel
from mmexp.data.manifest import read_rows
from mmexp.data.records import Columns, parse_records
from mmexp.data.synthetic import SyntheticSpec, synthetic_root
from mmexp.data.task import Task
from mmexp.evaluation.evaluate import load_checkpoint
from mmexp.evaluation.predictions import PredictionWriter
from mmexp.predict import predict
from mmexp.reporting.errors import read_predictions
from mmexp.reporting.runs import Run
from mmexp.train import train
from mmexp.training.metrics import TaskMetrics
from mmexp.training.objective import Objective, best_f1_threshold
from tests.conftest import compose_cfg, compose_command, run_cli
from tests.data_factory import clean_rows, write_manifest

PAIRS = [f"{s}-{w}" for s in ("circle", "square", "triangle") for w in ("calm", "stormy")]
ONLY = {  # metric names that exist for one task only
    "binary": {"test/pr_auc", "test/f1_pos", "test/f1_pos_05"},
    "multilabel": {"test/map", "test/exact_match", "test/f1_samples", "test/f1_weighted"},
}
SMALL = [
    "logger=csv",
    "text_encoder=bow",
    "data.synthetic.n_samples=400",
    "data.batch_size=32",
    "trainer.max_epochs=3",
    "trainer.enable_model_summary=false",
]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module", params=["binary", "multilabel"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> tuple[str, Path]:
    """One small run per task on the built-in data, shared by this module's tests (read only)."""
    task = request.param
    out = tmp_path_factory.mktemp(task)
    train(compose_cfg(out, cache_dir, f"task={task}", *SMALL))
    return task, out / "run"


def test_each_task_records_its_own_labels_metrics_and_thresholds(run: tuple[str, Path]) -> None:
    task, path = run
    metrics = json.loads((path / "metrics.json").read_text())
    labels = json.loads((path / "labels.json").read_text())
    other = "multilabel" if task == "binary" else "binary"
    assert ONLY[task] <= metrics["test"].keys() and not ONLY[other] & metrics["test"].keys()
    assert {"test/acc", "test/f1_macro", "test/auroc", "test/ece"} <= metrics["test"].keys()
    assert labels == (["no", "yes"] if task == "binary" else PAIRS)
    assert list(metrics["thresholds"]) == (["yes"] if task == "binary" else PAIRS)  # binary: the positive class
    state = load_checkpoint(path / "checkpoints" / "best.ckpt", trust=False)["state_dict"]
    assert state["thresholds"].tolist() == pytest.approx(list(metrics["thresholds"].values()))
    assert all(0.0 < t < 1.0 for t in metrics["thresholds"].values())
    assert metrics["confusion_matrix"] is None if task == "multilabel" else len(metrics["confusion_matrix"]) == 2
    support = metrics["test_per_class"]["support"]
    rows = read_csv(path / "predictions" / "test.csv")
    if task == "multilabel":  # positives per class
        assert support == {name: sum(name in r["label"].split("|") for r in rows) for name in PAIRS}
    else:
        assert sum(support.values()) == len(rows)


def test_test_metrics_match_sklearn_on_the_written_predictions(run: tuple[str, Path]) -> None:
    """predictions/test.csv holds every test row with the checkpoint's decisions; the logged test metrics are
    what scikit-learn computes from it."""
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    task, path = run
    metrics = json.loads((path / "metrics.json").read_text())
    test, thresholds = metrics["test"], metrics["thresholds"]
    rows = read_csv(path / "predictions" / "test.csv")
    assert sorted(r["id"] for r in rows) == sorted(json.loads((path / "split.json").read_text())["test"])
    names = json.loads((path / "labels.json").read_text())
    probs = np.array([[float(r[f"p_{n}"]) for n in names] for r in rows])
    if task == "binary":
        truth = np.array([r["label"] == "yes" for r in rows])
        decided = probs[:, 1] >= thresholds["yes"]
        assert [r["predicted"] for r in rows] == ["yes" if d else "no" for d in decided]
        assert np.allclose(probs.sum(1), 1.0, atol=1e-6)
        assert test["test/auroc"] == pytest.approx(roc_auc_score(truth, probs[:, 1]), abs=1e-5)
        assert test["test/pr_auc"] == pytest.approx(average_precision_score(truth, probs[:, 1]), abs=1e-5)
        assert test["test/f1_pos"] == pytest.approx(f1_score(truth, decided, zero_division=0), abs=1e-5)
        assert test["test/f1_pos_05"] == pytest.approx(f1_score(truth, probs[:, 1] >= 0.5, zero_division=0), abs=1e-5)
        return
    truth = np.array([[n in r["label"].split("|") for n in names] for r in rows])
    decided = probs >= np.array([thresholds[n] for n in names])
    assert [r["predicted"] for r in rows] == [
        "|".join(n for n, d in zip(names, row, strict=True) if d) for row in decided
    ]
    assert not np.allclose(probs.sum(1), 1.0)  # one sigmoid per class, not a softmax
    assert test["test/exact_match"] == pytest.approx((truth == decided).all(1).mean(), abs=1e-5)
    assert test["test/acc"] == pytest.approx((truth == decided).mean(), abs=1e-5)
    for average in ("micro", "macro", "weighted"):
        expected = f1_score(truth, decided, average=average, zero_division=0)
        assert test[f"test/f1_{average}"] == pytest.approx(expected, abs=1e-5), average
    assert test["test/f1_samples"] == pytest.approx(
        f1_score(truth, decided, average="samples", zero_division=1), abs=1e-5
    )
    scored = [k for k in range(len(names)) if 0 < truth[:, k].sum() < len(truth)]
    expected_map = np.mean([average_precision_score(truth[:, k], probs[:, k]) for k in scored])
    assert test["test/map"] == pytest.approx(expected_map, abs=1e-5)


def test_eval_reproduces_the_run_and_removes_modalities_for_each_task(
    run: tuple[str, Path], tmp_path: Path, cache_dir: Path
) -> None:
    task, path = run
    ckpt = f"ckpt_path={path / 'checkpoints' / 'best.ckpt'}"
    others = ("blur", "occlusion", "brightness", "contrast", "word_swap", "char_typos", "unknown_words")
    drop = [f"~robustness.corruptions.{name}" for name in others]  # one image and one text corruption stay
    result = evaluate(compose_command("eval", tmp_path, cache_dir, ckpt, *drop, run_dir=tmp_path / "e"))
    at_training = json.loads((path / "metrics.json").read_text())["test"]
    for key in ONLY[task] | {"test/acc", "test/f1_macro", "test/auroc", "test/ece"}:
        assert result["test"][key] == pytest.approx(at_training[key], abs=1e-6), key
    assert set(result["missing_modality"]) == {"both", "no_image", "no_text"}
    assert result["reliability"]["ece"] == pytest.approx(at_training["test/ece"], abs=1e-5)
    curves = json.loads((tmp_path / "e" / "robustness.json").read_text())["corruptions"]
    assert set(curves) == {"gaussian_noise", "word_dropout"}
    for curve in curves.values():  # severity 0 is the clean test set, scored with the task's own decisions
        assert curve["acc"][0] == pytest.approx(result["test"]["test/acc"], abs=1e-6) and len(curve["acc"]) == 6


def test_predict_scores_unlabeled_rows_and_rows_missing_a_modality(
    run: tuple[str, Path], tmp_path: Path, cache_dir: Path
) -> None:
    task, path = run
    root = synthetic_root(SyntheticSpec(n_samples=400, task=task), cache_dir)
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()[:10]]
    for i, row in enumerate(rows):
        del row["label"]
        if i < 3:
            row["text"] = ""
        elif i < 6:
            row["image"] = None
    (tmp_path / "new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = predict(
        compose_command(
            "predict",
            tmp_path,
            cache_dir,
            f"ckpt_path={path / 'checkpoints' / 'best.ckpt'}",
            "data=folder",
            f"data.root={root}",
            f"data.manifest={tmp_path / 'new.jsonl'}",
            run_dir=tmp_path / "p",
        )
    )
    assert result["rows"] == 10 and result["missing"] == {"none": 4, "image": 3, "text": 3}
    written = read_csv(tmp_path / "p" / "predictions.csv")
    assert [r["missing"] for r in written] == ["text"] * 3 + ["image"] * 3 + ["none"] * 4
    assert all(r["label"] == "" for r in written)
    names = json.loads((path / "labels.json").read_text())
    if task == "multilabel":
        assert all(set(filter(None, r["predicted"].split("|"))) <= set(names) for r in written)
    else:
        assert {r["predicted"] for r in written} <= {"no", "yes"}


def test_report_reads_each_task(run: tuple[str, Path], tmp_path: Path) -> None:
    task, path = run
    report = run_cli("mmexp.report", str(path), "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    md = (tmp_path / "report" / "report.md").read_text()
    shown = ONLY[task] - {"test/f1_weighted"}  # in metrics.json and report.csv; the table shows the headline ones
    assert all(f"test/{name.removeprefix('test/')} " in md for name in shown), md[:2000]
    assert ("Confused pairs do not apply to multi-label runs" in md) == (task == "multilabel")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=multilabel", "model.class_weights=balanced"], "for task=multilabel use model.pos_weight"),
        (["model.pos_weight=2.0"], "applies to task=binary and task=multilabel"),
        (["task=multilabel", "data.sampler=balanced"], "model.pos_weight=balanced instead"),
        (["task=binary", "data.synthetic.task=multiclass"], "task=binary needs exactly two classes"),
        (["task=binary", "task.positive=maybe"], "task.positive='maybe' is not one of the two classes"),
        (["task=binary", "task.threshold=1.5"], "task.threshold must be tune or a number in"),
        (["task=multiclass", "+task.label_sepp=x"], "task.label_sepp is not an option"),
    ],
)
def test_task_options_that_cannot_apply_fail_in_one_line(
    overrides: list[str], message: str, tmp_path: Path, cache_dir: Path
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        train(compose_cfg(tmp_path, cache_dir, *SMALL, "trainer.max_epochs=1", *overrides))


def test_pos_weight_balanced_is_negatives_over_positives_per_class(tmp_path: Path, cache_dir: Path) -> None:
    from mmexp.training.build import build_datamodule, build_model

    cfg = compose_cfg(tmp_path, cache_dir, *SMALL, "task=multilabel", "model.pos_weight=balanced")
    datamodule = build_datamodule(cfg.data, cfg.text_encoder, task=cfg.task)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build_model(cfg, num_classes=datamodule.num_classes, **datamodule.tokenizer.encoder_kwargs())
    model.trainer = type("T", (), {"datamodule": datamodule})()  # setup() only reads trainer.datamodule
    model.setup("fit")
    targets = datamodule.train_labels()
    positives = targets.sum(0)
    assert model.pos_weight is not None
    assert torch.allclose(model.pos_weight, (len(targets) - positives) / positives)
    assert "class_weight" not in model.state_dict() and "pos_weight" in model.state_dict()


def test_labels_are_read_the_way_the_task_defines_them() -> None:
    multilabel, multiclass = Task(name="multilabel", label_sep="|"), Task()
    assert multilabel.parse_label(["b", "a", "a"]) == ("a", "b")  # a set: sorted, no duplicates
    assert multilabel.parse_label("drama|comedy") == ("comedy", "drama")  # a CSV cell
    assert multilabel.parse_label([]) == () and multilabel.parse_label([1, "1.0"]) == ("1",)
    assert multilabel.parse_label(None) is None and multilabel.parse_label("  ") is None  # missing: a bad row
    with pytest.raises(InvalidLabel, match="empty or missing entry"):
        multilabel.parse_label(["a", None])
    with pytest.raises(InvalidLabel, match="task=multilabel"):
        multiclass.parse_label(["a", "b"])
    assert Task(name="binary").positive_index(["no", "yes"]) == 1
    assert Task(name="binary", positive="no").positive_index(["no", "yes"]) == 0
    assert Task(name="binary", positive=1).positive_index(["0", "1"]) == 1  # 1 and "1" are one class


def test_a_multilabel_csv_manifest_gives_multi_hot_targets(tmp_path: Path) -> None:
    write_manifest(tmp_path, clean_rows(tmp_path, n=6), fmt="csv")
    rows = read_rows(tmp_path / "manifest.csv")
    for i, (_, row) in enumerate(rows):
        row["label"] = ["red;round", "red", "", "round;red", "NA", "blue"][i]
    task = Task(name="multilabel", label_sep=";")
    records, bad = parse_records(rows, tmp_path, Columns(), task)
    assert [b.line for b in bad] == [4, 6] and all("missing 'label'" in b.reason for b in bad)  # header is line 1
    names = task.label_names([r.label for r in records])
    assert names == ["blue", "red", "round"]
    assert task.encode([r.label for r in records], names).tolist() == [[0, 1, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0]]


def test_the_tuned_threshold_maximizes_f1_over_every_cut() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(2, 40))
        scores = torch.tensor(rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], n) if rng.random() < 0.5 else rng.random(n))
        positive = torch.tensor(rng.random(n) < 0.3)
        cut = float(best_f1_threshold(scores, positive))
        best = max(f1_score(positive, scores >= t, zero_division=0) for t in [*scores.tolist(), 1.1])
        assert f1_score(positive, scores >= cut, zero_division=0) == pytest.approx(best)
        if positive.any():
            assert (scores >= cut).any()  # ties at the cut are decided together, never split
    assert float(best_f1_threshold(torch.rand(5), torch.zeros(5, dtype=torch.bool))) == 0.5  # no positive: 0.5


def test_hostile_multilabel_cells_and_binary_class_names() -> None:
    multilabel = Task(name="multilabel")
    assert multilabel.parse_label("[]") == ()  # a CSV cell can say "no class"
    assert multilabel.parse_label('["b", "a"]') == ("a", "b") == multilabel.parse_label("['a', 'b']")  # JSON, pandas
    assert multilabel.parse_label("[a]") == ("[a]",)  # not a list: a class name
    with pytest.raises(InvalidLabel, match=r"contains task\.label_sep"):
        multilabel.parse_label(["a|b", "c"])  # could not be written and read back
    with pytest.raises(ConfigError, match="at least two classes"):
        multilabel.label_names([("a",), ("a",), ()])
    with pytest.raises(ConfigError, match=r"task\.positive must be the name of a class"):
        Task(name="binary", positive=[1])  # type: ignore[arg-type]
    for pair, positive in [
        (["hateful", "not_hateful"], "hateful"),
        (["0", "1"], "1"),
        (["no", "yes"], "yes"),
        (["benign", "malignant"], "malignant"),
        (["cat", "dog"], "dog"),  # nothing looks negative: the second
    ]:
        assert Task(name="binary").positive_index(pair) == pair.index(positive), pair
    assert Task(name="binary", positive=True).positive_index(["false", "true"]) == 1  # YAML true is class "true"


def test_ranking_metrics_only_score_classes_the_rows_can_rank() -> None:
    """Binary AUROC/PR-AUC of one-class rows are NaN, not 0; multilabel mAP counts a class positive in every row."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    binary = TaskMetrics(Objective(Task(name="binary"), 2), kind="test")
    binary.update(torch.rand(8, 2).softmax(1), torch.zeros(8, dtype=torch.long), None)
    values = binary.compute()
    assert values["auroc"].isnan() and values["pr_auc"].isnan()
    rng = np.random.default_rng(1)
    truth = rng.random((40, 4)) < 0.4
    truth[:, 3], truth[:, 2] = True, False  # class 3 positive everywhere, class 2 nowhere
    probs = rng.random((40, 4))
    multilabel = TaskMetrics(Objective(Task(name="multilabel"), 4), kind="test")
    multilabel.update(torch.tensor(probs, dtype=torch.float32), torch.tensor(truth).float(), None)
    values = multilabel.compute()
    assert values["map"] == pytest.approx(
        np.mean([average_precision_score(truth[:, k], probs[:, k]) for k in (0, 1, 3)])
    )
    assert values["auroc"] == pytest.approx(np.mean([roc_auc_score(truth[:, k], probs[:, k]) for k in (0, 1)]))


def test_thresholds_never_split_ties_and_ignore_non_finite_scores() -> None:
    upper = torch.tensor(0.7)
    lower = torch.nextafter(upper, torch.tensor(0.0))  # the next float32 below: their midpoint rounds onto it
    cut = best_f1_threshold(torch.stack([upper, lower]), torch.tensor([True, False]))
    assert upper >= cut > lower
    assert float(best_f1_threshold(torch.tensor([float("nan"), 0.2, 0.1]), torch.tensor([True, False, False]))) == 0.5


def test_written_sets_follow_the_label_map(tmp_path: Path) -> None:
    """A true set is written in the same (label-map) order as the predicted one, so equal sets are equal text."""
    task, names = Task(name="multilabel"), ["10", "2", "x"]  # numbers and words: the map sorts by string
    model = SimpleNamespace(objective=Objective(task, 3), thresholds=torch.full((3,), 0.5), task=task)
    with open(tmp_path / "p.csv", "wb") as f:
        writer = PredictionWriter(f, names, model)  # type: ignore[arg-type]
        writer.write(["r1"], [task.parse_label(["2", "10"])], torch.tensor([[0.9, 0.8, 0.1]]), ["none"])
    [row] = read_csv(tmp_path / "p.csv")
    assert row["label"] == row["predicted"] == "10|2"
    run = Run(path=tmp_path, status="completed", overrides=())
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "test.csv").write_text("id,label,predicted,confidence,missing\nr1,a|b,,0.9,none\n")
    [pick] = read_predictions(run)  # a set predicted empty is a mistake the gallery shows
    assert (pick.true, pick.predicted) == ("a|b", "(none)")


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_inspect_reads_labels_the_tasks_way_and_suggests_it(tmp_path: Path) -> None:
    """A multi-label CSV inspected with task=multilabel counts each class, and the suggested first run keeps the
    task (without it the same cells would be read as one class per combination)."""
    rows = clean_rows(tmp_path, n=40)
    for i, row in enumerate(rows):
        row["label"] = ["red|round", "red", "[]", "['round', 'red']"][i % 4]
    write_manifest(tmp_path, rows, "csv")
    overrides = ["data=folder", f"data.root={tmp_path}", "data.manifest=manifest.csv", f"paths.cache_dir={tmp_path}"]
    multilabel = run_cli("mmexp.inspect", "task=multilabel", *overrides, cwd=tmp_path)
    assert multilabel.returncode == 0, multilabel.stderr[-2000:]
    summary = multilabel.stdout
    assert "rows:         40 usable, 0 bad" in summary and "classes (2): red: 30, round: 20" in summary
    assert "python -m mmexp.train experiment=pretrained task=multilabel data=folder" in summary
    multiclass = run_cli("mmexp.inspect", *overrides, cwd=tmp_path).stdout  # a list is not one class: bad rows
    assert "rows:         20 usable, 20 bad" in multiclass and "classes (2)" in multiclass
    assert "is written as a list ('[]'); a multiclass row has one label (multi-label data: task=multilabel" in (
        multiclass
    )
    assert "task=" not in multiclass.split("first run:")[1]
