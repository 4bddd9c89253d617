"""Reliability diagram: per confidence bin, how often the top prediction is right, and the ECE it implies."""

from __future__ import annotations

from typing import Any

import torch


def reliability(probs: torch.Tensor, labels: torch.Tensor, *, bins: int = 15) -> dict[str, Any]:
    """Equal-width bins over top-1 confidence, right-closed ((0, 1/bins], ..., (1 - 1/bins, 1]).

    Returns bin edges, counts, mean confidence and accuracy per bin (None for empty bins) and
    ``ece`` = sum over bins of count/N * |accuracy - confidence|. Right-closed bins keep confidence 1.0
    in the last bin; torchmetrics' ``test/ece`` gives exactly 1.0 a bin of its own, so the two can
    differ slightly when a model is saturated.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1 (got {bins})")
    confidence, predicted = probs.float().max(dim=-1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0.0, 1.0, bins + 1)
    index = torch.bucketize(confidence, edges[1:-1].contiguous(), right=False)
    count = torch.zeros(bins).scatter_add_(0, index, torch.ones_like(confidence))
    conf_sum = torch.zeros(bins).scatter_add_(0, index, confidence)
    acc_sum = torch.zeros(bins).scatter_add_(0, index, correct)
    filled = count > 0
    mean_conf = torch.where(filled, conf_sum / count.clamp(min=1), torch.nan)
    mean_acc = torch.where(filled, acc_sum / count.clamp(min=1), torch.nan)
    total = max(int(count.sum()), 1)
    ece = float(((count / total) * (mean_acc - mean_conf).abs()).nan_to_num(0.0).sum())
    return {"bins": bins, "edges": [i / bins for i in range(bins + 1)], "count": [int(c) for c in count.tolist()],
            "confidence": _none_for_nan(mean_conf), "accuracy": _none_for_nan(mean_acc), "ece": ece}


def _none_for_nan(values: torch.Tensor) -> list[float | None]:
    return [None if v != v else float(v) for v in values.tolist()]
