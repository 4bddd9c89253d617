"""Warnings a reader must see before the numbers: test sets too small to tell groups apart."""

from __future__ import annotations

import math
from typing import Any

from mmexp.reporting.runs import Run

MIN_CLASS_ROWS = 5  # below this, one row moves a class's recall (and so macro-F1) by more than 0.2 / n_classes
MIN_TEST_ROWS = 20


def small_test_sets(runs: list[Run]) -> str | None:
    """One line when some run's test set holds fewer than ``MIN_TEST_ROWS`` rows or fewer than ``MIN_CLASS_ROWS``
    rows of a class (e.g. k-fold with k close to a class's row count); None otherwise."""
    worst: tuple[float, str, Run] | None = None
    small_sets = 0
    for run in runs:
        for label, rows in _support(run.metrics or {}).items():
            if rows < MIN_CLASS_ROWS and (worst is None or rows < worst[0]):
                worst = (rows, label, run)
        if run.n_test is not None and run.n_test < MIN_TEST_ROWS:
            small_sets += 1
    if worst is None and not small_sets:
        return None
    parts = []
    if worst is not None:
        rows, label, run = worst
        k = run.split.get("k")
        folds = f" ({k}-fold split: each test fold holds about 1/{k} of a class's rows)" if isinstance(k, int) else ""
        step = f"one row moves its recall by {1 / rows:.2f}" if rows else "its scores are undefined"
        parts.append(f"class {label!r} has only {rows:g} test row(s) in {run.path.name}{folds}: {step}")
    if small_sets:
        parts.append(f"{small_sets} run(s) have fewer than {MIN_TEST_ROWS} test rows")
    return (
        "Warning: test sets too small to say much: "
        + "; ".join(parts)
        + ". Differences of that size are noise: use fewer folds (split.k), more data, or repeat with split.seed."
    )


def _support(metrics: dict[str, Any]) -> dict[str, float]:
    """Test rows per class: metrics.json's support, else the confusion matrix's row sums."""
    support = (metrics.get("test_per_class") or {}).get("support")
    if isinstance(support, dict):
        return {str(k): float(v) for k, v in support.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    matrix, names = metrics.get("confusion_matrix"), metrics.get("labels")
    if not isinstance(matrix, list) or not isinstance(names, list) or len(matrix) != len(names):
        return {}
    return {str(n): float(sum(row)) for n, row in zip(names, matrix, strict=True) if isinstance(row, list)}
