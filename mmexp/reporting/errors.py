"""Error analysis: per group, the most confident mistakes, the least confident correct predictions and the
class pairs confused most often.

A group's runs are pooled: every run's ``predictions/test.csv`` is read (seeds repeat test rows, folds cover
different ones), and a row predicted by several runs is shown once, with its most confident mistake (or least
confident correct prediction) and how many of the runs that scored it got it wrong. Confused pairs come from
the runs' confusion matrices (metrics.json), summed. Each shown row gets its text excerpt and an inline JPEG
thumbnail from what the run recorded at training time (``test_inputs.jsonl``: each test row's text and the absolute
path of its image); the report reads no manifest. A row whose image or record cannot be found (a moved image, a run
from before the file was written) gets a placeholder and the reason, never an error. All thumbnails of one report
together stay under ``THUMBNAIL_BUDGET`` characters of base64 (smaller and coarser when there are many).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mmexp.reporting.groups import Group
from mmexp.reporting.runs import Run

DEFAULT_K = 8  # rows per gallery; --errors K
TOP_PAIRS = 5  # confused (true, predicted) pairs per group
THUMBNAIL_PX = 96  # longest side; smaller images are not enlarged (the page scales them up)
THUMBNAIL_BUDGET = 1_000_000  # base64 characters of all thumbnails in one report together
THUMBNAIL_MAX = 6_000  # base64 characters of one thumbnail, however few there are
# (longest side, JPEG quality), tried in order until the thumbnail fits its share of the budget
THUMBNAIL_STEPS = ((THUMBNAIL_PX, 70), (THUMBNAIL_PX, 50), (72, 45), (48, 40))
EXCERPT_CHARS = 160
PREDICTIONS = Path("predictions") / "test.csv"
TEST_INPUTS = "test_inputs.jsonl"  # written by mmexp/run/recorder.py
TITLE = "Error analysis"


NO_CLASS = "(none)"  # a multi-label set with no class, as the gallery shows it


@dataclass(frozen=True)
class Pick:
    """One test row chosen for a gallery: the run prediction shown, and how the group's runs did on the row."""

    id: str
    true: str
    predicted: str
    confidence: float
    run: Run
    seen: int = 1  # runs that scored the row
    wrong: int = 0  # of them, runs that got it wrong


@dataclass(frozen=True)
class ConfusedPair:
    """``count`` rows of class ``true`` predicted as ``predicted``; ``share``: of all rows of ``true``."""

    true: str
    predicted: str
    count: int
    share: float


@dataclass
class GroupErrors:
    """What one group's error analysis shows; ``skipped``: runs without readable predictions, with the reason."""

    group: str
    runs: int = 0
    rows: int = 0
    mistakes: list[Pick] = field(default_factory=list)
    unsure: list[Pick] = field(default_factory=list)
    pairs: list[ConfusedPair] = field(default_factory=list)
    skipped: list[tuple[Run, str]] = field(default_factory=list)
    multilabel: bool = False  # no confusion matrix: each class is its own yes/no decision


def read_predictions(run: Run) -> list[Pick]:
    """The labelled rows of a run's predictions/test.csv; ``ValueError`` naming the problem when unusable."""
    path = run.path / PREDICTIONS
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise ValueError(f"no {PREDICTIONS}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{PREDICTIONS} unreadable: {e}") from None
    out = []
    for row in rows:
        try:
            confidence = float(row["confidence"])
            rid, true, predicted = row["id"], row["label"], row["predicted"]
        except KeyError as e:
            raise ValueError(f"{PREDICTIONS} has no {e.args[0]!r} column") from None
        except (TypeError, ValueError):
            continue  # a short or damaged line
        if (true or predicted) and rid is not None and math.isfinite(confidence):  # multilabel: "" is no class
            out.append(Pick(rid, true or NO_CLASS, predicted or NO_CLASS, confidence, run))
    return out


def analyse_group(group: Group, k: int) -> GroupErrors:
    """Pool the group's predictions and pick the ``k`` most confident mistakes and least confident hits."""
    out = GroupErrors(group.name)
    by_id: dict[str, list[Pick]] = defaultdict(list)
    for run in group.runs:
        try:
            picks = read_predictions(run)
        except ValueError as e:
            out.skipped.append((run, str(e)))
            continue
        out.runs += 1
        out.rows += len(picks)
        for pick in picks:
            by_id[pick.id].append(pick)
    mistakes, unsure = [], []
    for rid, picks in by_id.items():
        wrong = [p for p in picks if p.predicted != p.true]
        right = [p for p in picks if p.predicted == p.true]
        counts = dict(seen=len(picks), wrong=len(wrong))
        if wrong:
            worst = max(wrong, key=lambda p: p.confidence)
            mistakes.append(Pick(rid, worst.true, worst.predicted, worst.confidence, worst.run, **counts))
        if right:
            least = min(right, key=lambda p: p.confidence)
            unsure.append(Pick(rid, least.true, least.predicted, least.confidence, least.run, **counts))
    out.mistakes = sorted(mistakes, key=lambda p: (-p.confidence, p.id))[:k]
    out.unsure = sorted(unsure, key=lambda p: (p.confidence, p.id))[:k]
    out.pairs = confused_pairs(group.runs)
    out.multilabel = any(is_multilabel(run) for run in group.runs)
    return out


def is_multilabel(run: Run) -> bool:
    """A multi-label run records decision thresholds but no confusion matrix (metrics.json)."""
    metrics = run.metrics or {}
    return bool(metrics.get("thresholds")) and metrics.get("confusion_matrix") is None


def confused_pairs(runs: list[Run], top: int = TOP_PAIRS) -> list[ConfusedPair]:
    """The most frequent off-diagonal cells of the runs' confusion matrices, summed (runs whose label list
    differs from the first run's are left out, as in the confusion-matrix figure)."""
    labels: list[str] | None = None
    total: list[list[float]] = []
    for run in runs:
        metrics = run.metrics or {}
        matrix, names = metrics.get("confusion_matrix"), metrics.get("labels")
        if not isinstance(matrix, list) or not isinstance(names, list) or len(matrix) != len(names):
            continue
        if any(not isinstance(r, list) or len(r) != len(names) for r in matrix):
            continue
        if labels is None:
            labels, total = [str(n) for n in names], [[0.0] * len(names) for _ in names]
        if [str(n) for n in names] != labels:
            continue
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                total[i][j] += float(value) if isinstance(value, (int, float)) else 0.0
    if labels is None:
        return []
    pairs = [
        ConfusedPair(labels[i], labels[j], int(total[i][j]), total[i][j] / sum(total[i]))
        for i in range(len(labels))
        for j in range(len(labels))
        if i != j and total[i][j] > 0
    ]
    return sorted(pairs, key=lambda p: (-p.count, -p.share, p.true, p.predicted))[:top]
