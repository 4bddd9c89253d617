"""Group runs by their overrides, rank the groups, and compare each with a baseline on paired runs.

A group is every completed run with the same command-line overrides once replicate axes (seed, fold,
split seed) and bookkeeping (paths, hydra, logger, ckpt_path, debug) are left out; its name is what
remains, sorted and joined by "," (Hydra's ``+``/``++`` prefixes left out). Runs pair up across groups when
their (seed, split.fold, split.seed) from config.yaml agree, so a fold is only ever compared with the same fold.
Which test compares the pairs is chosen in ``pair_test`` (docs/statistics.md).

Groups are ranked by a validation metric by default (``val/f1_macro``): the test values are shown beside it and
compared with the baseline, but never rank or choose anything. Runs of different datasets or tasks are never
grouped, ranked or paired together: ``analyse_datasets`` gives each dataset its own report.
"""

from __future__ import annotations

import fnmatch
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmexp.reporting.evals import EvalGroup, eval_groups
from mmexp.reporting.labels import NO_OVERRIDES, group_labels, shared_overrides
from mmexp.reporting.metric_specs import MetricSpecs
from mmexp.reporting.runs import Run
from mmexp.reporting.stats import (
    CORRECTED_T,
    CORRECTED_T_SPLITS,
    PairedTest,
    Summary,
    confusion_bootstrap,
    holm,
    paired_test,
    summarize,
)

if TYPE_CHECKING:
    from mmexp.reporting.across import Across

DEFAULT_IGNORE = (
    "seed",
    "split.fold",
    "split.seed",
    "paths.*",
    "hydra.*",
    "hydra/*",
    "logger",
    "logger.*",
    "ckpt_path",
    "debug",
    "num_threads",  # how fast, not what: the settings below change no result
    "trainer.enable_model_summary",
    "trainer.enable_progress_bar",
)
DEFAULT_METRIC = "val/f1_macro"  # rank and choose on validation; test is shown beside, never used to choose
# the table's columns, those any group has: every task's headline metrics (docs/tasks.md)
MAIN_METRICS = (
    *("test/acc", "test/f1_macro", "test/f1_micro", "test/f1_samples", "test/exact_match", "test/f1_pos"),
    *("test/f1_pos_05", "test/auroc", "test/pr_auc", "test/map", "test/ece", "test/loss"),
)
UNIMODAL = ("fusion=image_only", "fusion=text_only")


class ReportError(ValueError):
    """A mistake the user can fix (unknown metric or baseline); reported as one line."""


@dataclass
class Group:
    """Completed runs sharing overrides; ``stats`` maps each test metric to its summary."""

    name: str
    overrides: tuple[str, ...]
    runs: list[Run]
    stats: dict[str, Summary] = field(default_factory=dict)
    rank: int | None = None


@dataclass(frozen=True)
class Comparison:
    """``group`` minus ``baseline`` on ``metric`` (a test metric), over runs paired by (seed, fold, split seed)."""

    group: str
    baseline: str
    metric: str
    test: PairedTest


def metric_value(run: Run, metric: str) -> float | None:
    """``val/x`` from metrics.json's ``val`` part, ``test/x`` from its ``test`` part; None when missing."""
    part = metric.split("/", 1)[0]
    values = _metrics(run).get(part) if part in ("val", "test") else None
    return _value(values.get(metric)) if isinstance(values, dict) else None


def test_twin(metric: str) -> str:
    """The test metric that goes with a ranking metric: ``val/f1_macro`` -> ``test/f1_macro``."""
    return "test/" + metric.split("/", 1)[1] if metric.startswith("val/") else metric


def override_key(override: str) -> str:
    """``+a.b=1`` / ``++a.b=1`` / ``~a.b`` -> ``a.b``."""
    return override.split("=", 1)[0].lstrip("+~")


def group_overrides(overrides: tuple[str, ...], ignore: tuple[str, ...]) -> tuple[str, ...]:
    """The overrides that define a group: sorted, without ``+``/``++`` (``+a=1`` is ``a=1``), without those
    whose key matches an ignore pattern."""
    kept = (o.lstrip("+") for o in overrides if not any(fnmatch.fnmatchcase(override_key(o), p) for p in ignore))
    return tuple(sorted(kept))


def eval_group_name(train: tuple[str, ...], own: tuple[str, ...], *, ignore: tuple[str, ...]) -> str:
    """The evaluated run's group name, plus the eval's own overrides (e.g. other data) in brackets.

    Baseline paths (``robustness.baselines.*``) are references, not conditions, so they never split a group.
    """
    name = ",".join(group_overrides(train, ignore)) or NO_OVERRIDES
    extra = group_overrides(own, (*ignore, "robustness.baselines.*"))
    return f"{name} [eval: {','.join(extra)}]" if extra else name


def build_groups(runs: list[Run], *, metric: str, ignore: tuple[str, ...]) -> list[Group]:
    """Group the completed runs and rank the groups by ``metric``; unranked groups (no value) go last."""
    by_key: dict[tuple[str, ...], list[Run]] = defaultdict(list)
    for run in runs:
        if run.ok:
            by_key[group_overrides(run.overrides, ignore)].append(run)
    groups = [Group(",".join(key) or NO_OVERRIDES, key, members) for key, members in by_key.items()]
    for group in groups:
        names = sorted({k for run in group.runs for part in ("val", "test") for k in _metrics(run).get(part, {})})
        group.stats = {k: s for k in names if (s := summarize_metric(group.runs, k))}
    sign = 1.0 if MetricSpecs.of(runs).lower_is_better(metric) else -1.0
    ranked = sorted((g for g in groups if metric in g.stats), key=lambda g: (sign * g.stats[metric].mean, g.name))
    for i, group in enumerate(ranked, start=1):
        group.rank = i
    return ranked + sorted((g for g in groups if metric not in g.stats), key=lambda g: g.name)


def summarize_metric(runs: list[Run], metric: str) -> Summary | None:
    """Mean, std and interval of ``metric`` over ``runs``: t (cut to [0, 1] for fractions), or for one run
    a bootstrap over its test rows from its (test) confusion matrix, for test metrics only."""
    values = [v for run in runs if (v := metric_value(run, metric)) is not None]

    def single() -> tuple[float, float] | None:
        [run] = [run for run in runs if metric_value(run, metric) is not None]
        matrix = _metrics(run).get("confusion_matrix")
        if not isinstance(matrix, list) or not metric.startswith("test/"):
            return None
        return confusion_bootstrap(matrix, metric, values[0])

    return summarize(values, bounds=MetricSpecs.of(runs).bounds(metric), single=single)


def _metrics(run: Run) -> dict[str, Any]:
    """A completed training run's metrics.json (loading one without it sets ``problem``, so it is never grouped)."""
    return run.metrics or {}


def _value(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def choose_baseline(groups: list[Group], requested: str | None) -> Group | None:
    """``requested`` by name or label; else the best unimodal group (fusion=image_only/text_only); else the worst."""
    if not groups:
        return None
    if requested is not None:
        labels = group_labels([g.overrides for g in groups])
        for group, label in zip(groups, labels, strict=True):
            if requested in (group.name, label):
                return group
        names = ", ".join(repr(g.name) for g in groups)
        raise ReportError(f"--baseline {requested!r} is not a group; the groups are: {names}")
    for group in groups:
        if any(o in UNIMODAL for o in group.overrides):
            return group
    ranked = [g for g in groups if g.rank is not None]
    return ranked[-1] if ranked else groups[-1]


def compare(groups: list[Group], baseline: Group | None, metric: str, *, within: str | None = None) -> list[Comparison]:
    """Test every other group against ``baseline`` on paired runs (duplicate pair keys are averaged), then
    Holm-adjust the p-values of all comparisons together.

    ``within``: an override key that names the dataset (``--across``); each group is then compared with the
    baseline's group of its own dataset (the baseline's overrides with this key's value swapped).
    """
    if baseline is None:
        return []
    by_overrides = {g.overrides: g for g in groups}
    out = []
    for group in groups:
        base = baseline if within is None else by_overrides.get(_swap(baseline.overrides, group.overrides, within))
        if base is None or group is base:
            continue
        mine, theirs = _paired_values(group, metric), _paired_values(base, metric)
        keys = sorted(set(mine) & set(theirs), key=repr)
        test = pair_test([mine[k] for k in keys], [theirs[k] for k in keys], keys, [*group.runs, *base.runs])
        out.append(Comparison(group.name, base.name, metric, test))
    adjusted = holm([c.test.p for c in out])
    return [replace(c, test=replace(c.test, p_holm=p)) for c, p in zip(out, adjusted, strict=True)]


def _swap(overrides: tuple[str, ...], other: tuple[str, ...], key: str) -> tuple[str, ...]:
    """``overrides`` with its ``key=...`` item replaced by ``other``'s (or dropped when ``other`` has none)."""
    mine = [o for o in overrides if override_key(o) != key]
    return tuple(sorted(mine + [o for o in other if override_key(o) == key]))


def pair_test(a: list[float], b: list[float], keys: list[tuple[Any, ...]], runs: list[Run]) -> PairedTest:
    """The paired t-test when every pair shares its split (the pairs differ by seed only); the corrected
    resampled t-test when the pairs differ by split.fold or split.seed, i.e. are resamplings of the data whose
    training sets overlap (Nadeau & Bengio 2003), with n_test / n_train from the runs' splits."""
    folds, split_seeds = {k[1] for k in keys}, {k[2] for k in keys}
    if len(folds) < 2 and len(split_seeds) < 2:
        return paired_test(a, b)
    kind = CORRECTED_T if len(folds) > 1 else CORRECTED_T_SPLITS
    paired = set(keys)
    return paired_test(a, b, test_ratio=split_ratio([r for r in runs if r.pair_key in paired]), kind=kind)


def split_ratio(runs: list[Run]) -> float:
    """Mean n_test / n_train of the runs: split.json's sizes, else the config's split (k and val for k-fold,
    test and train fractions otherwise); 1 / (k - 1) with k = 5 when neither is there."""
    ratios = [r.n_test / r.n_train for r in runs if r.n_test and r.n_train]
    if not ratios:
        for run in runs:
            split = run.split
            if isinstance(k := split.get("k"), int) and k >= 2:
                val = split.get("val", 0.0)
                val = float(val) if isinstance(val, (int, float)) and 0 <= val < 1 else 0.0
                ratios.append((1 / k) / ((1 - 1 / k) * (1 - val)))
            elif all(isinstance(split.get(f), (int, float)) and split[f] > 0 for f in ("train", "test")):
                ratios.append(float(split["test"]) / float(split["train"]))
    return math.fsum(ratios) / len(ratios) if ratios else 0.25


def _paired_values(group: Group, metric: str) -> dict[tuple[Any, ...], float]:
    values: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for run in group.runs:
        value = metric_value(run, metric)
        if value is not None:
            values[run.pair_key].append(value)
    return {k: math.fsum(v) / len(v) for k, v in values.items()}


def per_class_mean(group: Group, kind: str = "f1") -> dict[str, float]:
    """Mean over the group's runs of one per-class value: ``f1``, ``precision``, ``recall``, or ``support`` (the
    class's test rows; from the confusion matrix for a metrics.json written before it held support)."""
    values: dict[str, list[float]] = defaultdict(list)
    for run in group.runs:
        metrics = _metrics(run)
        per_class = metrics.get("test_per_class", {}).get(kind) or (_support(metrics) if kind == "support" else {})
        for label, value in per_class.items():
            if (v := _value(value)) is not None:
                values[label].append(v)
    return {label: math.fsum(v) / len(v) for label, v in values.items()}


def _support(metrics: dict[str, Any]) -> dict[str, float]:
    """Test rows of each class: the confusion matrix's row sums (rows = true class), by label."""
    matrix, names = metrics.get("confusion_matrix"), metrics.get("labels")
    if not matrix or not names or len(matrix) != len(names):
        return {}
    return {name: math.fsum(row) for name, row in zip(names, matrix, strict=True)}


def confusion(group: Group) -> tuple[list[str], list[list[float]], int] | None:
    """Confusion matrix summed over the group's runs, rows normalized; (labels, rows, runs summed).

    Runs whose label list differs from the first run's are left out rather than mis-added.
    """
    labels: list[str] | None = None
    total: list[list[float]] = []
    used = 0
    for run in group.runs:
        matrix, names = _metrics(run).get("confusion_matrix"), _metrics(run).get("labels")
        if not matrix or not names or len(matrix) != len(names) or any(len(r) != len(names) for r in matrix):
            continue
        if labels is None:
            labels, total = list(names), [[0.0] * len(names) for _ in names]
        if list(names) != labels:
            continue
        total = [
            [a + float(b) for a, b in zip(row_t, row_m, strict=True)]
            for row_t, row_m in zip(total, matrix, strict=True)
        ]
        used += 1
    if labels is None:
        return None
    rows = [[v / s if (s := sum(row)) else 0.0 for v in row] for row in total]
    return labels, rows, used


def mean_curve(group: Group, key: str) -> dict[int, tuple[float, float]]:
    """Per epoch: (mean, std) of ``key`` over the runs that reached that epoch (std 0 for one run)."""
    by_epoch: dict[int, list[float]] = defaultdict(list)
    for run in group.runs:
        for epoch, value in run.curves.get(key, {}).items():
            by_epoch[epoch].append(value)
    out = {}
    for epoch in sorted(by_epoch):
        s = summarize(by_epoch[epoch])  # a t interval, unused here
        assert s is not None  # read_curves keeps finite values only, and every epoch listed has one
        out[epoch] = (s.mean, s.std or 0.0)
    return out


@dataclass(frozen=True)
class Report:
    """Everything the renderers need: ranked groups, the baseline comparison and the runs left out."""

    metric: str
    groups: list[Group]
    baseline: Group | None
    comparisons: list[Comparison]
    failed: list[Run]
    ignore: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    base_dir: Path | None = None
    evals: list[EvalGroup] = field(default_factory=list)
    across: Across | None = None
    dataset: str = ""  # what sets this report's runs apart from the other datasets' (empty with one dataset)
    notes: tuple[str, ...] = ()  # one-line findings a reader must see first (copies counted once, small tests)
    specs: MetricSpecs = field(default_factory=MetricSpecs)  # each metric's direction and range, as recorded

    @property
    def compared(self) -> str:
        """The metric the paired comparisons use: the test twin of the ranking metric."""
        return self.comparisons[0].metric if self.comparisons else test_twin(self.metric)

    def shown_path(self, run: Run) -> str:
        """A run's path relative to ``base_dir`` (the output dir) when below it, else absolute."""
        if self.base_dir is not None and run.path.is_relative_to(self.base_dir.resolve()):
            return str(run.path.relative_to(self.base_dir.resolve())) or "."
        return str(run.path)

    def short_names(self) -> dict[str, str]:
        """Each group's label in tables and figures (labels.py: the overrides that vary, written short)."""
        labels = group_labels([g.overrides for g in self.groups])
        return {g.name: label for g, label in zip(self.groups, labels, strict=True)}

    def common_overrides(self) -> list[str]:
        """Overrides present in every group, when there are at least two groups."""
        return shared_overrides([g.overrides for g in self.groups])

    def ranking_metrics(self) -> list[str]:
        """The ranking metric and its test twin (when any group has it)."""
        present = {k for g in self.groups for k in g.stats}
        twin = test_twin(self.metric)
        return [self.metric] + ([twin] if twin != self.metric and twin in present else [])

    def main_metrics(self) -> list[str]:
        """The headline test metrics that any group has (docs/tasks.md)."""
        present = {k for g in self.groups for k in g.stats}
        if "test/exact_match" not in present:  # one label per row: micro-F1 is accuracy, shown once
            present.discard("test/f1_micro")
        return [m for m in MAIN_METRICS if m in present]

    def all_metrics(self) -> list[str]:
        """Every metric any group has, test metrics first."""
        return sorted({k for g in self.groups for k in g.stats}, key=lambda k: (not k.startswith("test/"), k))


def analyse(
    runs: list[Run],
    *,
    metric: str,
    baseline: str | None,
    ignore: tuple[str, ...],
    inputs: tuple[str, ...] = (),
    base_dir: Path | None = None,
    across: str | None = None,
) -> Report:
    """Group, rank and compare training runs; group eval dirs; ``metric`` may omit its ``val/`` prefix.

    Groups rank by ``metric``; the paired comparisons use its test twin (``val/f1_macro`` -> ``test/f1_macro``).
    ``across``: the override key that names the dataset; methods are then also ranked over the datasets
    (across.py), and each group is compared with the baseline of its own dataset.
    """
    from mmexp.reporting.across import across as across_datasets

    metric = metric if "/" in metric else f"val/{metric}"
    trained = [run for run in runs if run.kind == "train"]
    parts = ("val", "test")
    available = sorted({k for run in trained if run.ok for p in parts for k in _metrics(run).get(p, {})})
    if available and metric not in available:
        raise ReportError(f"--metric {metric} is not in any metrics.json; available: {', '.join(available)}")
    groups = build_groups(trained, metric=metric, ignore=ignore)
    base = choose_baseline(groups, baseline)
    compared = test_twin(metric) if test_twin(metric) in available else metric
    return Report(
        metric=metric,
        groups=groups,
        baseline=base,
        comparisons=compare(groups, base, compared, within=across),
        failed=[run for run in runs if not run.ok],
        ignore=ignore,
        inputs=inputs,
        base_dir=base_dir,
        evals=eval_groups(runs, key=partial(eval_group_name, ignore=ignore)),
        across=None if across is None else across_datasets(trained, key=across, metric=metric, ignore=ignore),
        specs=MetricSpecs.of(trained),
    )
