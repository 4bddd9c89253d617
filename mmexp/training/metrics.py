"""torchmetrics for each task: scalar metrics every epoch, ranking and per-class metrics at test time.

Metric names are shared by all tasks where the meaning carries over (``acc``, ``f1_macro``, ``f1_micro``,
``auroc``, ``ece``), so checkpoint monitors, sweeps and reports work unchanged; each task adds its own
(binary: ``f1_pos``, ``f1_pos_05``, ``pr_auc``; multilabel: ``exact_match``, ``*_weighted``, ``f1_samples``,
``map``). docs/tasks.md defines every one.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryCalibrationError,
    BinaryF1Score,
    BinaryStatScores,
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MultilabelAccuracy,
    MultilabelAUROC,
    MultilabelAveragePrecision,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
    MultilabelStatScores,
)

from mmexp.training.objective import Objective

PRF = ("precision", "recall", "f1")


class SamplesF1(Metric):
    """Multi-label F1 per row, averaged over rows (sklearn's ``average="samples"``, ``zero_division=1``: a row
    with no true and no predicted label is right)."""

    full_state_update = False
    total: torch.Tensor
    count: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        preds, target = preds.bool(), target.bool()
        both = (preds & target).sum(1).double()
        size = (preds.sum(1) + target.sum(1)).double()
        self.total += torch.where(size > 0, 2 * both / size.clamp(min=1), 1.0).sum()
        self.count += len(preds)

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp(min=1)).float()


def _precision_recall_f1(objective: Objective, averages: tuple[str | None, ...]) -> dict[str, Metric]:
    """Precision, recall and F1 of the task's kind (multiclass or multilabel) for each average (None: per class);
    named ``<metric>_<average>``, or ``<metric>`` per class."""
    k = objective.num_classes
    kinds: tuple[type[Metric], ...] = (
        (MultilabelPrecision, MultilabelRecall, MultilabelF1Score)
        if objective.task.multilabel
        else (MulticlassPrecision, MulticlassRecall, MulticlassF1Score)
    )
    return {
        name + (f"_{average}" if average else ""): cls(k, average=average)  # type: ignore[call-arg]
        for name, cls in zip(PRF, kinds, strict=True)
        for average in averages
    }


def _decision_metrics(objective: Objective) -> dict[str, Metric]:
    """Metrics of the decisions (arg-max, or thresholded probabilities)."""
    k = objective.num_classes
    if objective.task.multilabel:
        first: dict[str, Metric] = {
            "acc": MultilabelAccuracy(k, average="micro"),
            "exact_match": MultilabelExactMatch(k),
            "f1_samples": SamplesF1(),
        }
        return first | _precision_recall_f1(objective, ("macro", "micro", "weighted"))
    return {"acc": MulticlassAccuracy(k, average="micro")} | _precision_recall_f1(objective, ("macro", "micro"))


def _ranking_metrics(objective: Objective) -> dict[str, Metric]:
    """Metrics of the probabilities (they keep every prediction: test time only)."""
    k = objective.num_classes
    if objective.task.multilabel:  # macro over the classes these rows can score (see TaskMetrics.compute)
        return {
            "auroc": MultilabelAUROC(k, average=None),
            "map": MultilabelAveragePrecision(k, average=None),
            "support": MultilabelStatScores(k, average=None),
            "ece": BinaryCalibrationError(n_bins=15),  # every (row, class) probability: is p honest?
        }
    if objective.task.binary:
        return {
            "auroc": BinaryAUROC(),
            "pr_auc": BinaryAveragePrecision(),
            "ece": BinaryCalibrationError(n_bins=15),
            "support": BinaryStatScores(),  # AUROC and PR-AUC need both classes among the rows
        }
    return {"auroc": MulticlassAUROC(k, average="macro"), "ece": MulticlassCalibrationError(k, n_bins=15, norm="l1")}


def _per_class_metrics(objective: Objective) -> dict[str, Metric]:
    """Precision/recall/F1 per class; the confusion matrix (multiclass, binary) or per-class counts."""
    k = objective.num_classes
    counts: Metric = (
        MultilabelStatScores(k, average=None) if objective.task.multilabel else MulticlassConfusionMatrix(k)
    )
    return _precision_recall_f1(objective, (None,)) | {
        "counts" if objective.task.multilabel else "confusion_matrix": counts
    }


class TaskMetrics(nn.Module):
    """The metrics of one stage for one task, fed probabilities, targets and the decision thresholds.

    ``kind``: ``scalar`` (decisions; every epoch), ``test`` (decisions + ranking), ``per_class``.
    """

    def __init__(self, objective: Objective, prefix: str = "", *, kind: str = "scalar") -> None:
        super().__init__()
        self.objective, self.prefix = objective, prefix
        decided = _per_class_metrics(objective) if kind == "per_class" else _decision_metrics(objective)
        if objective.task.binary and kind != "per_class":
            decided |= {"f1_pos": BinaryF1Score(), "f1_pos_05": BinaryF1Score()}
        self.decided = MetricCollection(dict(decided))
        self.ranked = MetricCollection(dict(_ranking_metrics(objective))) if kind == "test" else None

    def update(self, probs: torch.Tensor, target: torch.Tensor, thresholds: torch.Tensor | None) -> None:
        decisions = self.objective.decide(probs, thresholds)
        positive = self.objective.positive
        is_positive = target.long() if positive is None else torch.eq(target, positive).long()
        for name, metric in self.decided.items(keep_base=True):
            if positive is not None and name == "f1_pos":
                metric.update(torch.eq(decisions, positive).long(), is_positive)
            elif positive is not None and name == "f1_pos_05":
                metric.update((probs[:, positive] >= 0.5).long(), is_positive)
            else:
                metric.update(decisions, target.long())
        if self.ranked is not None:
            self.ranked.update(self.objective.scores(probs), is_positive)

    def compute(self) -> dict[str, torch.Tensor]:
        values = dict(self.decided.compute())
        if self.ranked is not None:
            values |= self.ranked.compute()
        if "support" in values:  # ranking metrics over the classes these rows can score; NaN when none can
            stats = values.pop("support").reshape(-1, 5)  # tp, fp, tn, fn, support (= positives) per class
            positives, rows = stats[:, 4], stats[:, :4].sum(1)
            scorable = {"auroc": (positives > 0) & (positives < rows), "map": positives > 0, "pr_auc": positives > 0}
            for name, usable in scorable.items():
                if name in values:
                    value = values[name].reshape(-1)[usable]
                    values[name] = value.mean() if len(value) else torch.tensor(float("nan"))
        if "counts" in values:  # per class: support = positive rows of each class
            values["support"] = values.pop("counts")[:, 4]
        return {f"{self.prefix}{name}": value for name, value in values.items()}

    def reset(self) -> None:
        self.decided.reset()
        if self.ranked is not None:
            self.ranked.reset()


class EpochPredictions:
    """One epoch's probabilities and targets, kept on the device and fed to the metrics once at epoch end.

    Why: a torchmetrics update per step launches a dozen small kernels and, for macro averages, syncs the
    host (``bincount`` sizes its output from the data), which stalls a small model on a GPU every step.
    The decision metrics are sums over rows, so one update at epoch end gives exactly the values of per-step
    updates; the validation probabilities also tune the decision thresholds.
    """

    def __init__(self) -> None:
        self.probs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def add(self, probs: torch.Tensor, targets: torch.Tensor) -> None:
        self.probs.append(probs.detach())
        self.targets.append(targets)

    def flush(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Everything added since the last flush (None when nothing was), and forget it."""
        if not self.probs:
            return None
        out = torch.cat(self.probs), torch.cat(self.targets)
        self.probs, self.targets = [], []
        return out
