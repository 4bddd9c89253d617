"""The one inference loop: a trained model over batches of rows, in eval mode, without autograd.

Every pass that scores a dataset's rows outside ``trainer.fit`` goes through ``scored_batches`` (or ``infer``,
which collects it): ``mmexp.eval``'s clean, missing-modality and corrupted passes, a run's
``predictions/val.csv``, ``mmexp.predict`` and the portable ``Predictor``. A run's test rows are scored once,
by ``trainer.test``, whose ``test_step`` keeps their probabilities for ``predictions/test.csv``
(``mmexp.training.scored_rows``). Other ``torch.inference_mode`` blocks in the package are not passes over a
dataset: encoders' internals, complexity timing and the serving export's output checks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from mmexp.contracts import Batch

if TYPE_CHECKING:
    from mmexp.training.classifier import MultimodalClassifier

Transform = Callable[[Batch], Batch]  # edits a CPU batch before it is scored (a modality removed, a corruption)


@dataclass(frozen=True)
class Scored:
    """One batch as the model saw it (transformed, on the device), its logits and class probabilities."""

    batch: Batch
    logits: torch.Tensor  # (B, C), as the model returned them
    probs: torch.Tensor  # (B, C) float32, on the device


@dataclass(frozen=True)
class Predictions:
    """Class probabilities (N, C) and targets (N,) or (multilabel) (N, C) on the CPU, the mean loss, and
    the dataset rows scored (``Batch.index``; None when the batches carried none)."""

    probs: torch.Tensor
    labels: torch.Tensor
    loss: float
    index: torch.Tensor | None = None


def scored_batches(
    model: MultimodalClassifier,
    batches: Iterable[Batch],
    *,
    device: torch.device,
    transform: Transform | None = None,
    context: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
) -> Iterator[Scored]:
    """``model`` (put in eval mode) over ``batches``, one at a time; ``transform`` edits each CPU batch first,
    ``context`` wraps each forward (a trainer's precision). Inference mode is entered per batch, so the
    caller's code between batches runs outside it."""
    model.eval()
    for batch in batches:
        with torch.inference_mode(), context():
            batch = (transform(batch) if transform else batch).to(device, non_blocking=True)
            logits = model(batch)
            probs = model.objective.probabilities(logits)
        yield Scored(batch, logits, probs)


def infer(
    model: MultimodalClassifier,
    batches: Iterable[Batch],
    *,
    device: torch.device,
    transform: Transform | None = None,
    context: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
) -> Predictions:
    """Every batch scored (``scored_batches``) and collected on the CPU, with the model's own loss (label
    smoothing, class weights) as a batch mean weighted by the batch size, as Lightning aggregates
    ``test/loss``, so an evaluation reproduces the training run's figure."""
    probs, labels, index, loss_sum = [], [], [], 0.0
    for scored in scored_batches(model, batches, device=device, transform=transform, context=context):
        label = scored.batch.label
        loss_sum += float(model.loss(scored.logits.float(), label)) * len(label)  # no graph: inference tensors
        probs.append(scored.probs.cpu())
        labels.append(label.cpu())
        if scored.batch.index is not None:
            index.append(scored.batch.index.cpu())
    probs_all, labels_all = torch.cat(probs), torch.cat(labels)
    rows = torch.cat(index) if index and len(index) == len(probs) else None
    return Predictions(probs_all, labels_all, loss_sum / max(len(labels_all), 1), rows)
