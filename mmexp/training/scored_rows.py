"""The rows ``trainer.test`` scored, kept so a run's ``predictions/test.csv`` needs no second pass over them.

``MultimodalClassifier.test_step`` adds each batch's dataset positions, probabilities and targets; at the
epoch's end the ranks' rows are gathered (DDP) and each row kept once (a ``DistributedSampler`` pads with
repeated rows). The probabilities are the very tensors the test metrics were updated with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch

if TYPE_CHECKING:
    import lightning as L


@dataclass(frozen=True)
class ScoredRows:
    """Dataset positions (N,), class probabilities (N, C) float32 and targets, on the CPU, each row once."""

    index: torch.Tensor
    probs: torch.Tensor
    labels: torch.Tensor

    def by_row(self) -> dict[int, int]:
        """Dataset position -> place in these tensors."""
        return {row: k for k, row in enumerate(self.index.tolist())}


class RowCollector:
    """One stage's scored batches, kept on the device until the stage ends."""

    def __init__(self) -> None:
        self.parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def add(self, index: torch.Tensor | None, probs: torch.Tensor, labels: torch.Tensor) -> None:
        if index is not None:  # the datamodule's batches always carry their rows
            self.parts.append((index, probs.detach(), labels))

    def flush(self, module: L.LightningModule) -> ScoredRows | None:
        """Every rank's rows, each once, and forget them (every rank must call it under DDP)."""
        if not self.parts:
            return None
        index, probs, labels = (torch.cat(list(p)) for p in zip(*self.parts, strict=True))
        self.parts = []
        if module.trainer.world_size > 1:  # all_gather adds a leading world dimension
            gathered = cast(tuple[torch.Tensor, ...], module.all_gather((index, probs, labels)))
            index, probs, labels = (t.flatten(0, 1) for t in gathered)
        first: dict[int, int] = {}
        for k, row in enumerate(index.tolist()):
            first.setdefault(row, k)
        keep = torch.tensor(list(first.values()), dtype=torch.long)
        return ScoredRows(index.cpu()[keep], probs.float().cpu()[keep], labels.cpu()[keep])
