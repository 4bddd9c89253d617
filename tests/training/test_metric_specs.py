"""The metric registry: every metric a task logs has one entry, runs record the entries in metrics.json, and
the report ranks, bounds and labels metrics from what the runs recorded (a new metric is one entry)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmexp.data.task import TASKS, Task
from mmexp.report import main
from mmexp.reporting.formatting import header
from mmexp.reporting.groups import analyse
from mmexp.reporting.metric_specs import MetricSpecs, Spec
from mmexp.reporting.runs import load_run
from mmexp.training import metric_specs
from mmexp.training.metric_specs import MetricSpec, spec_of, specs_json
from mmexp.training.metrics import TaskMetrics
from mmexp.training.objective import Objective
from tests.reporting.test_report import write_run


@pytest.mark.parametrize("task", TASKS)
def test_every_metric_a_task_logs_has_a_spec(task: str) -> None:
    k = 2 if task == "binary" else 4
    objective = Objective(Task(name=task), k)
    metrics = TaskMetrics(objective, "test/", kind="test")
    target = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]] * 4) if task == "multilabel" else torch.arange(8) % k
    probs = torch.rand(8, k).softmax(-1)
    metrics.update(probs, target, None if task == "multiclass" else torch.full((objective.n_thresholds,), 0.5))
    names = [*metrics.compute(), "test/loss"]
    assert set(specs_json(names)) == {n.split("/")[1] for n in names}  # raises KeyError for a missing entry


def test_a_metric_without_an_entry_is_named_with_the_fix(caplog) -> None:
    with pytest.raises(KeyError, match=r"'test/brier' has no entry in mmexp\.training\.metric_specs\.SPECS"):
        spec_of("test/brier")
    assert specs_json(["test/brier", "test/acc"]) == {"acc": {"higher_is_better": True, "bounds": [0.0, 1.0]}}
    assert "brier has no entry" in caplog.text  # the run still writes its metrics.json


def test_a_diagnostic_has_no_arrow_and_no_direction() -> None:
    specs = MetricSpecs.of([])
    assert header("val/attn_entropy", specs) == "val/attn_entropy ↑"  # an old run's guess: higher
    recorded = MetricSpecs({"attn_entropy": Spec(higher_is_better=None, bounds=(0.0, 1.0))})
    assert header("val/attn_entropy", recorded) == "val/attn_entropy"
    assert not recorded.lower_is_better("val/attn_entropy") and recorded.bounds("val/attn_entropy") == (0.0, 1.0)
    assert specs_json(["val/attn_entropy"]) == {"attn_entropy": {"higher_is_better": None, "bounds": [0.0, 1.0]}}


def with_specs(run_dir: Path, names: list[str]) -> None:
    """Record the specs in a written run's metrics.json, as the recorder does."""
    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["metric_specs"] = specs_json(names)
    path.write_text(json.dumps(metrics))


def test_a_new_metric_is_one_entry_and_the_report_follows_it(tmp_path: Path, monkeypatch) -> None:
    """'brier' (lower is better, unbounded for this test) exists only as an entry in SPECS: ranked lower-first,
    its interval not cut to [0, 1], shown with ↓ — the report was not edited."""
    monkeypatch.setitem(metric_specs.SPECS, "brier", MetricSpec(higher_is_better=False, bounds=None))
    root = tmp_path / "sweep"
    for i, (fusion, brier) in enumerate([("concat", 0.9), ("concat", 0.7), ("late", 0.2), ("late", 0.1)]):
        run = write_run(root / f"{i}", fusion=fusion, fold=i % 2)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["val"]["val/brier"] = metrics["test"]["test/brier"] = brier
        (run / "metrics.json").write_text(json.dumps(metrics))
        with_specs(run, [*metrics["val"], *metrics["test"]])
    runs = [load_run(p) for p in sorted(root.iterdir())]
    report = analyse(runs, metric="val/brier", baseline=None, ignore=("split", "seed", "split.fold"))
    assert [g.name for g in report.groups] == ["fusion=late", "fusion=concat"]
    concat = report.groups[1].stats["test/brier"]
    assert concat.ci_method == "t" and concat.ci_high is not None and concat.ci_high > 1.0  # not cut to [0, 1]
    assert main([str(root), "--metric", "val/brier"]) == 0
    assert "Ranked and chosen by val/brier, on the validation set (lower is better)" in (root / "report.md").read_text()
    assert "test/brier ↓" in (root / "report.md").read_text()


def test_recorded_specs_override_the_legacy_guess_and_old_runs_keep_it(tmp_path: Path) -> None:
    old = load_run(write_run(tmp_path / "old", fusion="concat", fold=0))
    assert MetricSpecs.of([old]).lower_is_better("test/loss") and MetricSpecs.of([old]).bounds("test/acc") == (0, 1)
    new = write_run(tmp_path / "new", fusion="concat", fold=0)
    metrics = json.loads((new / "metrics.json").read_text())
    metrics["metric_specs"] = {"acc": {"higher_is_better": False, "bounds": None}}
    (new / "metrics.json").write_text(json.dumps(metrics))
    specs = MetricSpecs.of([load_run(new)])
    assert specs.lower_is_better("val/acc") and specs.bounds("test/acc") is None
