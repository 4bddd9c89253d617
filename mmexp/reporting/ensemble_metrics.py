"""The runs' decision metrics in numpy, for scoring ensembles of runs from their prediction files.

``mmexp.report`` never imports torch, so the formulas of ``mmexp.training.metrics`` (torchmetrics) and of
``mmexp.training.objective`` (decisions, the val-tuned thresholds) are written here once more, exactly:
``tests/reporting/test_ensemble.py`` checks them against torchmetrics and against a run's own metrics.json. Ranking
metrics (AUROC, PR-AUC, mAP, ECE) and the loss are not computed: an ensemble's row shows none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.5
PRF = ("precision", "recall", "f1")


@dataclass(frozen=True)
class TaskSpec:
    """What a run's probabilities mean: ``name`` (multiclass, binary, multilabel), ``positive`` (binary: the
    positive class's index) and ``threshold`` (``"tune"`` or a number; binary and multilabel)."""

    name: str
    num_classes: int
    positive: int | None = None
    threshold: str | float = "tune"

    @property
    def n_thresholds(self) -> int:
        return {"multiclass": 0, "binary": 1, "multilabel": self.num_classes}[self.name]


def thresholds_for(task: TaskSpec, probs: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """The decision thresholds a run would carry for these (validation) rows: tuned for F1 or the fixed number."""
    if task.name == "multiclass":
        return None
    if task.threshold != "tune":
        return np.full(task.n_thresholds, float(task.threshold), dtype=np.float32)
    if task.name == "multilabel":
        return np.array([best_f1_threshold(probs[:, k], target[:, k] > 0.5) for k in range(task.num_classes)])
    assert task.positive is not None
    return np.array([best_f1_threshold(probs[:, task.positive], target == task.positive)], dtype=np.float32)


def best_f1_threshold(scores: np.ndarray, positive: np.ndarray) -> np.float32:
    """``objective.best_f1_threshold`` in float32: the cut maximizing F1 of "score >= t", midway between the
    chosen score and the next lower one; 0.5 without a positive."""
    scores, positive = np.asarray(scores, dtype=np.float32), np.asarray(positive, dtype=bool)
    finite = np.isfinite(scores)
    scores, positive = scores[finite], positive[finite]
    n_pos = int(positive.sum())
    if n_pos == 0 or len(scores) == 0:
        return np.float32(DEFAULT_THRESHOLD)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, hits = scores[order], positive[order].astype(np.float32)
    tp = np.cumsum(hits, dtype=np.float32)
    predicted = np.arange(1, len(scores) + 1, dtype=np.float32)
    f1 = np.float32(2) * tp / (predicted + np.float32(n_pos))
    distinct = np.ones(len(scores), dtype=bool)
    distinct[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    f1[~distinct] = -1.0
    best = int(np.argmax(f1))
    upper = sorted_scores[best]
    lower = sorted_scores[best + 1] if best + 1 < len(scores) else np.float32(min(0.0, float(upper) / 2))
    cut = np.float32((upper + lower) / np.float32(2))
    return cut if cut > lower else np.nextafter(lower, upper)


def decide(task: TaskSpec, probs: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
    """``Objective.decide``: class indices (N,), or a 0/1 matrix (N, K) for multilabel."""
    if task.name == "multilabel":
        cut = thresholds if thresholds is not None else np.full(probs.shape[1], DEFAULT_THRESHOLD, np.float32)
        return (probs >= cut.astype(np.float32)).astype(np.int64)
    if task.positive is None:
        return np.argmax(probs, axis=1)
    cut = np.float32(DEFAULT_THRESHOLD if thresholds is None else thresholds[0])
    return np.where(probs[:, task.positive] >= cut, task.positive, 1 - task.positive)


def confusion_matrix(true: np.ndarray, decided: np.ndarray, k: int) -> np.ndarray:
    """Counts (K, K), rows = true class (torchmetrics' MulticlassConfusionMatrix)."""
    return np.bincount(true * k + decided, minlength=k * k).reshape(k, k)


def _divide(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    return {"precision": _divide(tp, tp + fp), "recall": _divide(tp, tp + fn), "f1": _divide(2 * tp, 2 * tp + fp + fn)}


def _single_label(task: TaskSpec, true: np.ndarray, decided: np.ndarray) -> dict[str, float]:
    """Accuracy, macro (over classes seen in labels or decisions, as torchmetrics) and micro precision/recall/F1."""
    m = confusion_matrix(true, decided, task.num_classes)
    tp = np.diag(m).astype(np.float64)
    fp, fn = m.sum(0) - tp, m.sum(1) - tp
    seen = (tp + fp + fn) > 0
    out = {"acc": float(tp.sum() / max(m.sum(), 1))}
    per_class, micro = _prf(tp, fp, fn), _prf(tp.sum(), fp.sum(), fn.sum())
    for name in PRF:
        out[f"{name}_macro"] = float((per_class[name] * seen).sum() / max(seen.sum(), 1))
        out[f"{name}_micro"] = float(micro[name])
    return out


def _binary_f1(decided_positive: np.ndarray, is_positive: np.ndarray) -> float:
    tp = float((decided_positive & is_positive).sum())
    fp, fn = float((decided_positive & ~is_positive).sum()), float((~decided_positive & is_positive).sum())
    return float(_divide(2 * tp, 2 * tp + fp + fn))


def _multilabel(true: np.ndarray, decided: np.ndarray) -> dict[str, float]:
    """torchmetrics' multilabel metrics: macro is a plain mean over every class, weighted by support."""
    t, d = true > 0.5, decided > 0
    tp, fp, fn = (t & d).sum(0).astype(np.float64), (~t & d).sum(0).astype(np.float64), (t & ~d).sum(0)
    tn = (~t & ~d).sum(0)
    out = {"acc": float((tp.sum() + tn.sum()) / max(t.size, 1)), "exact_match": float((t == d).all(1).mean())}
    both, size = (t & d).sum(1), t.sum(1) + d.sum(1)
    out["f1_samples"] = float(np.where(size > 0, _divide(2 * both, size), 1.0).mean())
    per_class, micro, support = _prf(tp, fp, fn), _prf(tp.sum(), fp.sum(), fn.sum()), tp + fn
    for name in PRF:
        out[f"{name}_macro"] = float(per_class[name].mean())
        out[f"{name}_micro"] = float(micro[name])
        out[f"{name}_weighted"] = float(_divide((per_class[name] * support).sum(), support.sum()))
    return out


def decision_metrics(
    task: TaskSpec, probs: np.ndarray, target: np.ndarray, thresholds: np.ndarray | None
) -> dict[str, float]:
    """Every decision metric a run logs (names without the ``val/``/``test/`` prefix) for these rows."""
    probs = np.asarray(probs, dtype=np.float32)
    decided = decide(task, probs, thresholds)
    if task.name == "multilabel":
        return _multilabel(target, decided)
    out = _single_label(task, target, decided)
    if task.positive is not None:
        is_positive = target == task.positive
        out["f1_pos"] = _binary_f1(decided == task.positive, is_positive)
        out["f1_pos_05"] = _binary_f1(probs[:, task.positive] >= np.float32(DEFAULT_THRESHOLD), is_positive)
    return out


SELECTABLE = (
    *("acc", "f1_macro", "f1_micro", "precision_macro", "precision_micro", "recall_macro", "recall_micro"),
    *("f1_pos", "f1_pos_05", "exact_match", "f1_samples", "f1_weighted", "precision_weighted", "recall_weighted"),
)


def val_scorer(task: TaskSpec, target: np.ndarray, name: str) -> Callable[[np.ndarray], float]:
    """``name`` (e.g. ``f1_macro``) of candidate probabilities on the validation rows ``target``, decided as a run
    would decide them: with thresholds tuned on these same rows (``task.threshold=tune``) or fixed."""

    def score(probs: np.ndarray) -> float:
        return decision_metrics(task, probs, target, thresholds_for(task, probs, target))[name]

    return score
