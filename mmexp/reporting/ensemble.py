"""``mmexp.report --ensemble``: a greedy weighted ensemble of a sweep's runs, chosen on val, scored once on test.

Caruana et al. (2004), "Ensemble selection from libraries of models", with replacement: start empty; at each of
``STEPS`` steps add the run (possibly again) whose addition gives the best validation score of the averaged
probabilities; keep the step with the best score (the earliest on ties). A run's weight is how often it was
added over the number of additions. Only ``predictions/val.csv`` chooses; ``predictions/test.csv`` is then
averaged with those weights and scored once, with the runs' own decision rule and metric formulas
(``ensemble_metrics``).

One ensemble per replicate: the runs that share seed, split.fold, split.seed and dataset (so they scored the
same val and test rows; checked row by row, mixed rows are refused). Each ensemble becomes a ``Run`` of the
group ``ensemble=greedy``, paired with the single runs of its replicate like any run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmexp.core.io import write_json_atomic, write_text_atomic
from mmexp.reporting.ensemble_metrics import (
    SELECTABLE,
    TaskSpec,
    confusion_matrix,
    decide,
    decision_metrics,
    thresholds_for,
    val_scorer,
)
from mmexp.reporting.groups import ReportError
from mmexp.reporting.metric_specs import MetricSpecs
from mmexp.reporting.runs import Run, _read_yaml

STEPS = 25  # additions tried; AutoGluon's default ensemble_size was 25 for years
OVERRIDE = "ensemble=greedy"  # the ensembles' group
OUT_DIR = "ensembles"  # under the report's output dir: one dir per ensemble (predictions/) and members.json
FALLBACK_METRIC = "f1_macro"
PROBABILITY = "p_"


@dataclass(frozen=True)
class Predictions:
    """A prediction file's rows: ids in file order, true labels as read, class names, probabilities (N, C)."""

    ids: list[str]
    labels: list[str]
    classes: list[str]
    probs: np.ndarray

    def aligned(self, ids: list[str]) -> np.ndarray:
        """The probabilities in the order of ``ids`` (the same set of ids, checked by the caller)."""
        where = {i: n for n, i in enumerate(self.ids)}
        return self.probs[[where[i] for i in ids]]


def read_predictions(path: Path) -> Predictions:
    """A run's ``predictions/<split>.csv``; ValueError naming the file when it cannot be used."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise ValueError(f"{path} unreadable: {e}") from None
    classes = [c.removeprefix(PROBABILITY) for c in header if c.startswith(PROBABILITY)]
    if not rows or not classes or "id" not in header:
        raise ValueError(f"{path} has no rows or no p_<class> columns")
    try:
        probs = np.array([[float(r[PROBABILITY + c]) for c in classes] for r in rows], dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: a probability is not a number ({e})") from None
    return Predictions([r["id"] for r in rows], [r.get("label") or "" for r in rows], classes, probs)


@dataclass(frozen=True)
class Member:
    """One run of a replicate with its val and test predictions."""

    run: Run
    val: Predictions
    test: Predictions


def task_spec(members: list[Member]) -> tuple[TaskSpec, str]:
    """The members' task as their config.yaml and metrics.json say (binary: the positive class is the one
    metrics.json's thresholds name); and multilabel's label separator."""
    config = _read_yaml(members[0].run.path / "config.yaml")
    task = config.get("task") if isinstance(config.get("task"), dict) else {}
    name, classes = str(task.get("name", "multiclass")), members[0].val.classes
    settings = set()
    for m in members:
        own = _read_yaml(m.run.path / "config.yaml").get("task")
        settings.add(str(own.get("threshold", "tune")) if isinstance(own, dict) else "tune")
    threshold: str | float = "tune" if len(settings) != 1 or "tune" in settings else float(settings.pop())
    positive = None
    if name == "binary":
        named = (members[0].run.metrics or {}).get("thresholds")
        key = next(iter(named), None) if isinstance(named, dict) and len(named) == 1 else None
        positive = classes.index(key) if key in classes else len(classes) - 1
    return TaskSpec(name, len(classes), positive, threshold), str(task.get("label_sep", "|"))


def targets(task: TaskSpec, labels: list[str], classes: list[str], sep: str) -> np.ndarray:
    """The true labels as class indices (N,), or multi-hot rows (N, K) for multilabel."""
    index = {c: k for k, c in enumerate(classes)}
    if task.name != "multilabel":
        return np.array([index[label] for label in labels], dtype=np.int64)
    out = np.zeros((len(labels), len(classes)), dtype=np.float32)
    for n, label in enumerate(labels):
        for name in filter(None, label.split(sep)):
            out[n, index[name]] = 1.0
    return out


def greedy_counts(val: list[np.ndarray], score: Callable[[np.ndarray], float], steps: int = STEPS) -> list[int]:
    """How often each candidate was added by greedy forward selection with replacement (higher score is better),
    cut at the step with the best score; the earliest candidate wins ties (list candidates best first)."""
    counts, total = [0] * len(val), np.zeros(val[0].shape, dtype=np.float64)
    best, best_counts = -math.inf, counts
    for step in range(1, steps + 1):
        scores = [score(((total + p) / step).astype(np.float32)) for p in val]
        j = int(np.argmax(scores))
        counts = [c + (i == j) for i, c in enumerate(counts)]
        total += val[j]
        if scores[j] > best:
            best, best_counts = scores[j], counts
    return best_counts


def average(probs: list[np.ndarray], counts: list[int]) -> np.ndarray:
    """The weighted mean of the members' probabilities (weights = counts / their sum), as float32."""
    total = sum(c * p.astype(np.float64) for c, p in zip(counts, probs, strict=True) if c)
    return np.asarray(total / sum(counts), dtype=np.float32)


def replicates(runs: list[Run]) -> tuple[dict[tuple[Any, ...], list[Member]], list[str]]:
    """The completed training runs with val and test predictions, by (dataset, seed, fold, split seed); and one
    line per run left out (no prediction files: a run made before runs wrote predictions/val.csv)."""
    pools: dict[tuple[Any, ...], list[Member]] = defaultdict(list)
    skipped = []
    for run in runs:
        if not (run.ok and run.kind == "train"):
            continue
        try:
            val = read_predictions(run.path / "predictions" / "val.csv")
            test = read_predictions(run.path / "predictions" / "test.csv")
        except ValueError as e:
            skipped.append(str(e))
            continue
        pools[(run.dataset, run.pair_key)].append(Member(run, val, test))
    return pools, skipped


def check_rows(members: list[Member]) -> None:
    """Refuse to mix runs that scored different rows or classes (one ReportError line naming two runs)."""
    first = members[0]
    for m in members[1:]:
        for split in ("val", "test"):
            a, b = getattr(first, split), getattr(m, split)
            if sorted(a.ids) != sorted(b.ids) or a.classes != b.classes:
                raise ReportError(
                    f"--ensemble: {first.run.path} and {m.run.path} share seed, split.fold and split.seed but their "
                    f"predictions/{split}.csv hold different rows or classes (another split.k or split.val?); report "
                    "them separately"
                )


@dataclass(frozen=True)
class Ensemble:
    """One replicate's ensemble: its members' weights, the selection metric's val score, and the ensemble run."""

    run: Run
    weights: dict[str, float]
    selected_on: str


def build_ensembles(runs: list[Run], *, metric: str, out: Path) -> tuple[list[Ensemble], list[str]]:
    """One ensemble per replicate of ``runs`` (chosen on the val twin of ``metric``), written under
    ``out/ensembles/``; and notes (runs without predictions, a metric that cannot choose)."""
    pools, skipped = replicates(runs)
    notes = [f"--ensemble left out {len(skipped)} run(s) without prediction files: {skipped[0]}"] if skipped else []
    name = metric.split("/", 1)[-1]
    if name not in SELECTABLE:
        notes.append(f"--ensemble chooses on val/{FALLBACK_METRIC}: {metric} is not a decision metric")
        name = FALLBACK_METRIC
    ensembles = []
    for key in sorted(pools, key=repr):
        members = sorted(pools[key], key=lambda m: str(m.run.path))
        check_rows(members)
        ensembles.append(_ensemble(members, name, out / OUT_DIR))
    if ensembles:
        write_members(out / OUT_DIR / "members.json", ensembles)
    return ensembles, notes


def _ensemble(members: list[Member], name: str, out: Path) -> Ensemble:
    """Choose on val, score on test, write the ensemble's predictions; the ensemble as a ``Run``."""
    task, sep = task_spec(members)
    classes = members[0].val.classes
    ids = {split: getattr(members[0], split).ids for split in ("val", "test")}
    probs = {split: [getattr(m, split).aligned(ids[split]) for m in members] for split in ("val", "test")}
    truth = {split: targets(task, getattr(members[0], split).labels, classes, sep) for split in ("val", "test")}
    if name not in decision_metrics(task, probs["val"][0], truth["val"], None):  # e.g. f1_pos of a multiclass run
        name = FALLBACK_METRIC
    score = val_scorer(task, truth["val"], name)
    sign = -1.0 if MetricSpecs.of(m.run for m in members).lower_is_better(name) else 1.0
    singles = [sign * score(p) for p in probs["val"]]
    order = sorted(range(len(members)), key=lambda i: -singles[i])  # best single run first: it wins ties
    counts_in_order = greedy_counts([probs["val"][i] for i in order], lambda p: sign * score(p))
    counts = [0] * len(members)
    for i, c in zip(order, counts_in_order, strict=True):
        counts[i] = c
    val, test = average(probs["val"], counts), average(probs["test"], counts)
    thresholds = thresholds_for(task, val, truth["val"])
    metrics = {
        "val": {f"val/{k}": v for k, v in decision_metrics(task, val, truth["val"], thresholds).items()},
        "test": {f"test/{k}": v for k, v in decision_metrics(task, test, truth["test"], thresholds).items()},
        "labels": classes,
        "metric_specs": (members[0].run.metrics or {}).get("metric_specs"),  # as the members recorded them
    }
    if task.name != "multilabel":
        decided = decide(task, test, thresholds)
        metrics["confusion_matrix"] = confusion_matrix(truth["test"], decided, len(classes)).tolist()
    if thresholds is not None:
        named = classes if task.positive is None else [classes[task.positive]]
        metrics["thresholds"] = dict(zip(named, map(float, thresholds), strict=True))
    weights = {str(m.run.path): c / sum(counts) for m, c in zip(members, counts, strict=True) if c}
    metrics["ensemble"] = {"selected_on": f"val/{name}", "steps": sum(counts), "weights": weights}
    first = members[0].run
    digest = hashlib.blake2b("\x1f".join(sorted(weights)).encode(), digest_size=6).hexdigest()
    path = out / f"seed={first.seed}_fold={first.fold}_split.seed={first.split_seed}_{digest}"
    config = (first.path / "config.yaml").read_text(encoding="utf-8") if (first.path / "config.yaml").is_file() else ""
    header = f"# the data and task of this ensemble's members, copied from {first.path}; weights: ../members.json\n"
    write_text_atomic(path / "config.yaml", header + config)  # the error analysis finds the rows' images by it
    for split, p in (("val", val), ("test", test)):
        labels = getattr(members[0], split).labels
        write_predictions(path / "predictions" / f"{split}.csv", task, ids[split], labels, classes, p, thresholds, sep)
    run = replace(
        first,
        path=path,
        overrides=(*common_overrides([m.run for m in members]), OVERRIDE),
        metrics=metrics,
        curves={},
        run_id=f"ensemble-{digest}",
        start_time=None,
    )
    return Ensemble(run, weights, f"val/{name}")


def common_overrides(runs: list[Run]) -> tuple[str, ...]:
    """The overrides every run has (in the first run's order): what the ensemble shares with its members."""
    shared = set.intersection(*(set(r.overrides) for r in runs))
    return tuple(o for o in runs[0].overrides if o in shared)


def write_predictions(
    path: Path,
    task: TaskSpec,
    ids: list[str],
    labels: list[str],
    classes: list[str],
    probs: np.ndarray,
    thresholds: np.ndarray | None,
    sep: str,
) -> None:
    """The ensemble's rows in the runs' prediction format (evaluation/predictions.py), so the report's error
    analysis reads them like a run's."""
    decided = decide(task, probs, thresholds)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "label", "predicted", "confidence", "missing", *(PROBABILITY + c for c in classes)])
    for n, row in enumerate(probs):
        if task.name == "multilabel":
            chosen = decided[n].astype(bool)
            predicted = sep.join(c for c, on in zip(classes, chosen, strict=True) if on)
            confidence = float(np.where(chosen, row, 1 - row).prod())
        else:
            predicted, confidence = classes[int(decided[n])], float(row[int(decided[n])])
        writer.writerow([ids[n], labels[n], predicted, f"{confidence:.9g}", "none", *(f"{float(p):.9g}" for p in row)])
    write_text_atomic(path, text.getvalue())


def write_members(path: Path, ensembles: list[Ensemble]) -> None:
    """members.json: per ensemble, its replicate, the runs it averages with their weights, and its scores."""
    listed = [
        {
            "ensemble": str(e.run.path),
            "seed": e.run.seed,
            "fold": e.run.fold,
            "split_seed": e.run.split_seed,
            "selected_on": e.selected_on,
            "weights": e.weights,
            "val": (e.run.metrics or {}).get("val"),
            "test": (e.run.metrics or {}).get("test"),
            "thresholds": (e.run.metrics or {}).get("thresholds"),
        }
        for e in ensembles
    ]
    method = "greedy forward selection with replacement on val (Caruana et al. 2004)"
    write_json_atomic(path, {"method": method, "steps": STEPS, "ensembles": listed})
