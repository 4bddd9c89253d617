"""Class imbalance: per-class counts of the train split, balanced loss weights and a balanced sampler."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import WeightedRandomSampler


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows of each class (C,), int64."""
    return torch.bincount(labels.cpu().long(), minlength=num_classes)


def balanced_class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """scikit-learn's ``compute_class_weight("balanced")``: n_samples / (n_classes * count_c), float32 (C,).

    Every class must occur in ``labels`` (the datamodule refuses a split with a class missing from train).
    """
    counts = class_counts(labels, num_classes).double()
    return (len(labels) / (num_classes * counts)).float()


class BalancedSampler(WeightedRandomSampler):
    """Draws ``len(labels)`` positions with replacement, each row weighted 1 / count(its class), so every
    class is drawn about equally often.

    Epoch ``e`` draws from a generator seeded with ``seed + e``: the same seed gives the same batches, and a
    run resumed at epoch ``e`` draws what the uninterrupted run drew. Lightning calls ``set_epoch`` before
    each training epoch (also through its distributed sampler wrapper); without it, each pass moves on by one.
    """

    def __init__(self, labels: torch.Tensor, *, num_classes: int, seed: int) -> None:
        counts = class_counts(labels, num_classes).double()
        weights = (1.0 / counts.clamp(min=1))[labels.cpu().long()]
        super().__init__(weights.tolist(), num_samples=len(labels), replacement=True, generator=torch.Generator())
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        assert self.generator is not None  # set in __init__
        self.generator.manual_seed(self.seed + self.epoch)
        self.epoch += 1  # Lightning's set_epoch overrides this before each epoch
        return super().__iter__()
