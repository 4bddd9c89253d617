"""The reliability diagram's ECE is the ``test/ece`` torchmetrics logs, bin for bin."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import MulticlassCalibrationError

from mmexp.evaluation.calibration import reliability

BINS = 15
CLASSES = 4


def torchmetrics_ece(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """``test/ece`` as mmexp.training.metrics computes it."""
    metric = MulticlassCalibrationError(CLASSES, n_bins=BINS, norm="l1")
    metric.update(probs, labels)
    return float(metric.compute())


def with_top1(confidence: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Probabilities whose top-1 is a random class with exactly ``confidence``; the rest shared equally."""
    n = len(confidence)
    rest = ((1.0 - confidence) / (CLASSES - 1)).unsqueeze(1).expand(n, CLASSES).clone()
    top = torch.randint(CLASSES, (n,), generator=generator)
    rest[torch.arange(n), top] = confidence
    return rest


def check(probs: torch.Tensor, labels: torch.Tensor) -> dict:
    out = reliability(probs, labels, bins=BINS)
    assert out["ece"] == pytest.approx(torchmetrics_ece(probs, labels), abs=1e-6)
    assert sum(out["count"]) == len(labels) and len(out["edges"]) == len(out["count"]) + 1
    return out


def test_random_probabilities_give_the_torchmetrics_ece() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(500, CLASSES, generator=g), dim=-1)
    check(probs, torch.randint(CLASSES, (500,), generator=g))


def test_saturated_predictions_with_confidence_one_get_their_own_bin() -> None:
    g = torch.Generator().manual_seed(1)
    confidence = torch.cat([torch.ones(60), torch.full((40,), 0.95), torch.rand(100, generator=g) * 0.6 + 0.3])
    probs = with_top1(confidence, g)
    labels = torch.randint(CLASSES, (200,), generator=g)
    predicted = probs.argmax(-1)
    labels[:100] = predicted[:100]  # right: half of those at 1.0 and all at 0.95
    labels[30:60] = (predicted[30:60] + 1) % CLASSES
    out = check(probs, labels)  # one shared last bin would give (0.98, 0.7) instead of (1, 0.5) and (0.95, 1)
    assert out["count"][-1] == 60 and out["accuracy"][-1] == 0.5 and out["edges"][-2:] == [1.0, 1.0]


def test_confidences_exactly_on_bin_edges_go_to_the_bin_above() -> None:
    g = torch.Generator().manual_seed(2)
    edges = torch.linspace(0, 1, BINS + 1)  # the float32 edges torchmetrics bins with
    on_edge = edges[edges >= 1 / CLASSES].repeat(7)  # a top-1 confidence is never below 1/classes
    inside = on_edge[on_edge < 1] + 0.5 / BINS  # share a bin with the edge below them only
    confidence = torch.cat([on_edge, inside])
    probs, labels = with_top1(confidence, g), torch.randint(CLASSES, (len(confidence),), generator=g)
    out = check(probs, labels)
    expected = [0 if edge < 1 / CLASSES else 7 if edge == 1 else 7 + 7 for edge in edges.tolist()]
    assert out["count"] == expected  # edge k opens bin k; 1.0 has a bin of its own
