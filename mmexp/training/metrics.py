"""torchmetrics collections: scalar metrics logged every epoch, per-class details at test time."""

from __future__ import annotations

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)


def scalar_metrics(num_classes: int, prefix: str, *, ranking: bool = False) -> MetricCollection:
    """Accuracy, precision, recall, F1 (macro + micro); AUROC and ECE when ``ranking``.

    Binary data uses the same multiclass metrics with two classes, so names never change.
    """
    metrics: dict[str, Metric | MetricCollection] = {"acc": MulticlassAccuracy(num_classes, average="micro")}
    for name, cls in (("precision", MulticlassPrecision), ("recall", MulticlassRecall), ("f1", MulticlassF1Score)):
        for average in ("macro", "micro"):
            metrics[f"{name}_{average}"] = cls(num_classes, average=average)
    if ranking:  # these keep every prediction, so only the test stage pays for them
        metrics["auroc"] = MulticlassAUROC(num_classes, average="macro")
        metrics["ece"] = MulticlassCalibrationError(num_classes, n_bins=15, norm="l1")
    return MetricCollection(metrics, prefix=f"{prefix}/")


def per_class_metrics(num_classes: int) -> MetricCollection:
    """Per-class precision/recall/F1 and the confusion matrix (rows = true class)."""
    return MetricCollection(
        {
            "precision": MulticlassPrecision(num_classes, average=None),
            "recall": MulticlassRecall(num_classes, average=None),
            "f1": MulticlassF1Score(num_classes, average=None),
            "confusion_matrix": MulticlassConfusionMatrix(num_classes),
        }
    )


class EpochPredictions:
    """One epoch's class predictions and labels, kept on the device and fed to the metrics once at epoch end.

    Why: a torchmetrics update per step launches a dozen small kernels and, for macro averages, syncs the
    host (``bincount`` sizes its output from the data), which stalls a small model on a GPU every step.
    Accuracy, precision, recall and F1 are sums over samples, so one update with the epoch's arg-max
    predictions gives exactly the values of per-step updates with logits.
    """

    def __init__(self) -> None:
        self.preds: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.preds.append(logits.detach().argmax(-1))
        self.labels.append(labels)

    def flush_into(self, metrics: MetricCollection) -> bool:
        """Update ``metrics`` with everything added since the last flush; False when nothing was added."""
        if not self.preds:
            return False
        metrics.update(torch.cat(self.preds), torch.cat(self.labels))
        self.preds, self.labels = [], []
        return True
