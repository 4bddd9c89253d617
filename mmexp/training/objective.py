"""The torch side of a task (``mmexp.data.task``): probabilities, decisions and decision thresholds.

Multiclass decides by arg-max. Binary decides "positive" when p(positive) reaches its threshold; multilabel
decides each class present when its probability reaches that class's threshold. A threshold is 0.5 or the
configured number, or (``task.threshold=tune``) the one that maximizes the class's F1 on the validation
rows, re-tuned after every validation epoch so that each checkpoint carries the thresholds of its own
weights.
"""

from __future__ import annotations

import torch

from mmexp.data.task import Task

DEFAULT_THRESHOLD = 0.5


class Objective:
    """What the model's logits mean for ``task`` over ``num_classes`` classes (``positive``: binary)."""

    def __init__(self, task: Task, num_classes: int, positive: int | None = None) -> None:
        self.task, self.num_classes = task, num_classes
        self.positive = (num_classes - 1 if positive is None else positive) if task.binary else None

    @property
    def n_thresholds(self) -> int:
        return {"multiclass": 0, "binary": 1, "multilabel": self.num_classes}[self.task.name]

    def initial_thresholds(self) -> torch.Tensor:
        value = DEFAULT_THRESHOLD if self.task.threshold == "tune" else float(self.task.threshold)
        return torch.full((self.n_thresholds,), value)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, K): a softmax over classes, or (multilabel) one sigmoid per class."""
        logits = logits.float()
        return logits.sigmoid() if self.task.multilabel else logits.softmax(-1)

    def scores(self, probs: torch.Tensor) -> torch.Tensor:
        """What ranking metrics read: p(positive) (B,) for binary, else the probabilities as they are."""
        return probs[:, self.positive] if self.positive is not None else probs

    def decide(self, probs: torch.Tensor, thresholds: torch.Tensor | None) -> torch.Tensor:
        """Class indices (B,) for multiclass/binary, a 0/1 matrix (B, K) for multilabel."""
        if self.task.multilabel:
            return (probs >= _or_default(thresholds, probs)).long()
        if self.positive is None:
            return probs.argmax(-1)
        positive = probs[:, self.positive] >= _or_default(thresholds, probs)[0]
        return torch.where(positive, self.positive, 1 - self.positive)

    def tune(self, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per threshold, the probability cut that maximizes F1 on these rows (validation predictions)."""
        if self.task.multilabel:
            return torch.stack([best_f1_threshold(probs[:, k], targets[:, k] > 0.5) for k in range(self.num_classes)])
        assert self.positive is not None
        return best_f1_threshold(probs[:, self.positive], targets == self.positive).reshape(1)


def _or_default(thresholds: torch.Tensor | None, probs: torch.Tensor) -> torch.Tensor:
    if thresholds is None:
        return torch.full((probs.shape[-1],), DEFAULT_THRESHOLD, device=probs.device)
    return thresholds.to(probs.device, probs.dtype)


def best_f1_threshold(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """The cut t maximizing F1 of "score >= t"; midway between the chosen score and the next lower one, so a
    slightly different score on new rows is decided the same way (and never on the lower score itself, so ties
    are never split). 0.5 when there is no positive; non-finite scores are left out.

    Sort once, then every candidate cut's true/false positives are cumulative sums: O(n log n).
    """
    scores, positive = scores.detach().float().cpu(), positive.detach().bool().cpu()
    finite = torch.isfinite(scores)
    scores, positive = scores[finite], positive[finite]
    n_pos = int(positive.sum())
    if n_pos == 0 or len(scores) == 0:
        return torch.tensor(DEFAULT_THRESHOLD)
    order = torch.argsort(scores, descending=True, stable=True)
    sorted_scores, hits = scores[order], positive[order].float()
    tp = hits.cumsum(0)
    predicted = torch.arange(1, len(scores) + 1, dtype=torch.float32)
    f1 = 2 * tp / (predicted + n_pos)
    distinct = torch.ones(len(scores), dtype=torch.bool)  # a cut can only fall after the last of equal scores
    distinct[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    f1[~distinct] = -1.0
    best = int(f1.argmax())
    upper = sorted_scores[best]
    lower = sorted_scores[best + 1] if best + 1 < len(scores) else torch.tensor(min(0.0, float(upper) / 2))
    cut = (upper + lower) / 2  # float32, as stored: adjacent scores can round onto the lower one
    return cut if cut > lower else torch.nextafter(lower, upper)
