"""Methods compared over several datasets (``--across``): average ranks, Friedman, Nemenyi (Demšar 2006).

A dataset is one input path (``--across`` alone: the CLI tags each run with ``sweep=<path>``) or one value
of an override key (``--across data.synthetic.interaction``). A method is a group name without that key and
without ``data``/``data.*`` overrides, so the same fusion on two datasets is one method. Each (dataset,
method) cell is the mean of the metric over the cell's runs (seeds, folds). Only methods with a cell in every
dataset are ranked (Friedman's test needs complete blocks); the others are listed as left out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from mmexp.reporting.groups import group_overrides, metric_value, override_key
from mmexp.reporting.labels import NO_OVERRIDES
from mmexp.reporting.metric_specs import MetricSpecs
from mmexp.reporting.runs import Run
from mmexp.reporting.stats import ALPHA, Friedman, average_ranks, friedman, nemenyi_cd

SWEEP_KEY = "sweep"  # the override the CLI adds to each run when every input path is a dataset
DATA_KEYS = ("data", "data.*", "data/*")
NO_DATASET = "(none)"


@dataclass(frozen=True)
class Across:
    """Scores (datasets x methods, mean over runs), ranks (1 = best, ties averaged) and the tests."""

    key: str
    metric: str
    datasets: list[str]
    methods: list[str]
    scores: list[list[float]]
    runs: list[list[int]]
    ranks: list[list[float]]
    average_ranks: list[float]
    friedman: Friedman | None
    cd: float | None
    left_out: list[str]
    alpha: float = ALPHA
    missing: list[tuple[str, str]] = field(default_factory=list)  # (dataset, method) cells with no run

    def missing_line(self) -> str | None:
        """One line naming every missing cell (the methods left out of the ranking over datasets)."""
        if not self.missing:
            return None
        by_method: dict[str, list[str]] = defaultdict(list)
        for dataset, method in self.missing:
            by_method[method].append(dataset)
        cells = "; ".join(f"{m} in {', '.join(ds)}" for m, ds in by_method.items())
        return f"Left out of the ranking over datasets (no completed run): {cells}."

    def not_different(self) -> list[tuple[int, int]]:
        """Pairs of method indexes (in rank order) whose average ranks differ by less than the CD."""
        order = sorted(range(len(self.methods)), key=lambda i: self.average_ranks[i])
        if self.cd is None:
            return []
        return [
            (a, b)
            for i, a in enumerate(order)
            for b in order[i + 1 :]
            if abs(self.average_ranks[a] - self.average_ranks[b]) < self.cd
        ]


def method_name(run: Run, key: str, ignore: tuple[str, ...]) -> str:
    return ",".join(group_overrides(run.overrides, (*ignore, key, *DATA_KEYS))) or NO_OVERRIDES


def dataset_name(run: Run, key: str) -> str:
    values = [o.split("=", 1)[1] for o in run.overrides if override_key(o) == key and "=" in o]
    return values[-1] if values else NO_DATASET


def across(runs: list[Run], *, key: str, metric: str, ignore: tuple[str, ...]) -> Across:
    """Tabulate the completed training runs by (dataset, method) and rank the methods within each dataset."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run in runs:
        value = metric_value(run, metric) if run.ok and run.kind == "train" else None
        if value is not None:
            cells[dataset_name(run, key), method_name(run, key, ignore)].append(value)
    datasets = sorted({d for d, _ in cells})
    every = sorted({m for _, m in cells})
    methods = [m for m in every if all((d, m) in cells for d in datasets)]
    scores = [[math.fsum(cells[d, m]) / len(cells[d, m]) for m in methods] for d in datasets]
    counts = [[len(cells[d, m]) for m in methods] for d in datasets]
    lower = MetricSpecs.of(runs).lower_is_better(metric)
    if methods and datasets:
        table = np.asarray(scores)
        per_dataset = [average_ranks(table[i : i + 1], lower_is_better=lower).tolist() for i in range(len(datasets))]
        ranks = average_ranks(table, lower_is_better=lower)
        test = friedman(table)
        cd = nemenyi_cd(len(methods), len(datasets)) if len(methods) >= 2 and len(datasets) >= 2 else None
    else:
        per_dataset, ranks, test, cd = [], np.zeros(0), None, None
    return Across(
        key=key,
        metric=metric,
        datasets=datasets,
        methods=methods,
        scores=scores,
        runs=counts,
        ranks=per_dataset,
        average_ranks=[float(r) for r in ranks],
        friedman=test,
        cd=cd,
        left_out=[m for m in every if m not in methods],
        missing=[(d, m) for m in every if m not in methods for d in datasets if (d, m) not in cells],
    )
