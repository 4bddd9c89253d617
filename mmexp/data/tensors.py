"""``DatasetTensors``: every usable row of a dataset as the model reads it, the one tensor form of the data.

The datamodule builds it once in ``setup()``; its train/val/test loaders, the frozen-encoder feature cache,
``mmexp.eval`` and the run files read rows of it by position (``take``), on the CPU or on a device (``to``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from mmexp.contracts import Batch


@dataclass(frozen=True)
class DatasetTensors:
    """Rows 0..N-1 in manifest order: images, token ids and mask, encoded labels, raw texts and row ids.

    ``labels`` are class indices (N,) int64, or (multilabel) multi-hot rows (N, K); ``texts`` and ``ids`` stay
    Python lists on the CPU (corruptions edit texts and re-tokenize them).
    """

    images: torch.Tensor  # (N, 3, H, W) uint8
    text_ids: torch.Tensor  # (N, T)
    text_mask: torch.Tensor  # (N, T)
    labels: torch.Tensor
    texts: list[str]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def nbytes(self) -> int:
        """The bytes of the tensors (what a copy on a device costs)."""
        return sum(t.numel() * t.element_size() for t in (self.images, self.text_ids, self.text_mask, self.labels))

    def to(self, device: torch.device) -> DatasetTensors:
        """The same rows with the tensors on ``device`` (itself when they are there already)."""
        if self.device == device:
            return self
        return replace(
            self,
            images=self.images.to(device),
            text_ids=self.text_ids.to(device),
            text_mask=self.text_mask.to(device),
            labels=self.labels.to(device),
        )

    def take(self, rows: torch.Tensor) -> Batch:
        """The rows ``rows`` (B,) as one ``Batch``, on the tensors' device, with ``index`` = ``rows`` (what the
        feature cache looks rows up by); raw texts are looked up on the CPU, without a device sync."""
        texts = [self.texts[i] for i in rows.tolist()]
        index = rows.to(self.device)
        return Batch(
            image=self.images[index],
            text_ids=self.text_ids[index],
            text_mask=self.text_mask[index],
            label=self.labels[index],
            texts=texts,
            index=index,
        )
