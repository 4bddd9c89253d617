"""Reliability diagram: per confidence bin, how often the prediction is right, and the ECE it implies.

Multiclass bins the top-1 confidence and asks whether the top class is right. Binary and multilabel bin
each probability of "positive" (p(positive), or every class's sigmoid) and ask how often it is positive:
the binary calibration of ``test/ece`` in those tasks.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mmexp.training.objective import Objective


def reliability(
    probs: torch.Tensor, labels: torch.Tensor, *, bins: int = 15, objective: Objective | None = None
) -> dict[str, Any]:
    """Confidence binned exactly as torchmetrics' ``MulticlassCalibrationError`` (multiclass; binary and
    multilabel: ``BinaryCalibrationError``), so ``ece`` is ``test/ece``.

    Bins are left-closed, [k/bins, (k+1)/bins), on torchmetrics' float32 ``linspace`` edges (a confidence
    on an edge opens the bin above it), plus a last bin [1, 1] for confidence exactly 1.0: ``edges`` has
    bins + 2 entries, ending ``1.0, 1.0``, and ``closed`` is ``"left"``. Returns counts, mean confidence
    and accuracy per bin (None for empty bins) and ``ece`` = sum over bins of count/N * |accuracy - confidence|.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1 (got {bins})")
    if objective is None or (objective.positive is None and not objective.task.multilabel):
        confidence, predicted = probs.float().max(dim=-1)
        correct = (predicted == labels).float()
    else:
        confidence = objective.scores(probs.float()).flatten().contiguous()
        positive = labels if objective.positive is None else torch.eq(labels, objective.positive)
        correct = positive.float().flatten()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=confidence.dtype)
    index = torch.bucketize(confidence, edges, right=True) - 1  # torchmetrics' _binning_bucketize
    count = torch.zeros(bins + 1).scatter_add_(0, index, torch.ones_like(confidence))
    conf_sum = torch.zeros(bins + 1).scatter_add_(0, index, confidence)
    acc_sum = torch.zeros(bins + 1).scatter_add_(0, index, correct)
    filled = count > 0
    mean_conf = torch.where(filled, conf_sum / count.clamp(min=1), torch.nan)
    mean_acc = torch.where(filled, acc_sum / count.clamp(min=1), torch.nan)
    total = max(int(count.sum()), 1)
    ece = float(((count / total) * (mean_acc - mean_conf).abs()).nan_to_num(0.0).sum())
    return {
        "bins": bins,
        "closed": "left",
        "edges": [i / bins for i in range(bins + 1)] + [1.0],
        "count": [int(c) for c in count.tolist()],
        "confidence": _none_for_nan(mean_conf),
        "accuracy": _none_for_nan(mean_acc),
        "ece": ece,
    }


def _none_for_nan(values: torch.Tensor) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values.tolist()]
