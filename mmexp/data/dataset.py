"""A torch ``Dataset`` over some rows of a ``DatasetTensors`` that hands out whole batches by index."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from mmexp.contracts import Batch
from mmexp.data.tensors import DatasetTensors


class RowsDataset(Dataset[Batch]):
    """Rows ``rows`` (positions in ``tensors``) of a split; not a copy of the data, a view for a DataLoader.

    ``__getitems__`` lets the DataLoader fetch a batch with one index operation per tensor
    instead of ``batch_size`` ``__getitem__`` calls and a collate.
    """

    def __init__(self, tensors: DatasetTensors, rows: torch.Tensor) -> None:
        self.tensors, self.rows = tensors, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> Batch:
        return self.tensors.take(self.rows[position : position + 1])

    def __getitems__(self, positions: list[int]) -> Batch:
        return self.tensors.take(self.rows[torch.as_tensor(positions, dtype=torch.long)])


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
