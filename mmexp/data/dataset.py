"""Dataset over contiguous tensors that hands out whole batches by index (no per-sample collate)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from mmexp.contracts import Batch


class TensorBatchDataset(Dataset[Batch]):
    """Rows ``rows`` of the full image/token/label tensors.

    ``__getitems__`` lets the DataLoader fetch a batch with one index operation per tensor
    instead of ``batch_size`` ``__getitem__`` calls and a collate.
    """

    def __init__(
        self,
        *,
        images: torch.Tensor,
        text_ids: torch.Tensor,
        text_mask: torch.Tensor,
        labels: torch.Tensor,
        texts: list[str],
        rows: torch.Tensor,
    ) -> None:
        self.images, self.text_ids, self.text_mask, self.labels = images, text_ids, text_mask, labels
        self.rows = rows
        self.texts = texts  # raw strings, for code that changes texts (corruptions) and re-tokenizes them

    def __len__(self) -> int:
        return len(self.rows)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.images, self.text_ids, self.text_mask, self.labels))

    def on(
        self, images: torch.Tensor, text_ids: torch.Tensor, text_mask: torch.Tensor, labels: torch.Tensor
    ) -> TensorBatchDataset:
        """The same rows over other copies of the full tensors (e.g. on the GPU)."""
        return TensorBatchDataset(
            images=images, text_ids=text_ids, text_mask=text_mask, labels=labels, texts=self.texts, rows=self.rows
        )

    def take(self, index: torch.Tensor) -> Batch:
        """The rows ``index`` (B,), on the CPU (raw texts are looked up there without a device sync)."""
        texts = [self.texts[i] for i in index.tolist()]
        index = index.to(self.images.device)
        return Batch(
            image=self.images[index],
            text_ids=self.text_ids[index],
            text_mask=self.text_mask[index],
            label=self.labels[index],
            texts=texts,
            index=index,
        )

    def __getitem__(self, position: int) -> Batch:
        return self.take(self.rows[position : position + 1])

    def __getitems__(self, positions: list[int]) -> Batch:
        return self.take(self.rows[torch.as_tensor(positions, dtype=torch.long)])


def collate(batch: Batch | list[Batch]) -> Batch:
    """A batch that ``__getitems__`` already assembled passes through; single rows are concatenated."""
    if isinstance(batch, Batch):
        return batch
    return Batch(
        image=torch.cat([b.image for b in batch]),
        text_ids=torch.cat([b.text_ids for b in batch]),
        text_mask=torch.cat([b.text_mask for b in batch]),
        label=torch.cat([b.label for b in batch]),
        texts=[t for b in batch for t in b.texts],
        index=torch.cat([b.index for b in batch if b.index is not None]),
    )
