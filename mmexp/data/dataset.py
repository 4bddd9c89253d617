"""Dataset over contiguous tensors that hands out whole batches by index (no per-sample collate)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TensorBatchDataset(Dataset):
    """Rows ``rows`` of the full image/token/label tensors.

    ``__getitems__`` lets the DataLoader fetch a batch with one index operation per tensor
    instead of ``batch_size`` ``__getitem__`` calls and a collate.
    """

    def __init__(self, *, images: torch.Tensor, text_ids: torch.Tensor, labels: torch.Tensor, texts: list[str],
                 rows: torch.Tensor) -> None:
        self.images, self.text_ids, self.labels, self.rows = images, text_ids, labels, rows
        self.texts = texts  # raw strings, for encoders with their own tokenizer (e.g. MiniLM)

    def __len__(self) -> int:
        return len(self.rows)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.images, self.text_ids, self.labels))

    def _take(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """``index`` is on the CPU (raw texts are looked up there without a device sync)."""
        raw = [self.texts[i] for i in index.tolist()] if index.dim() else self.texts[int(index)]
        index = index.to(self.images.device)
        ids = self.text_ids[index]
        return {"image": self.images[index], "text_ids": ids, "text_mask": ids != 0, "text_raw": raw,
                "label": self.labels[index], "index": index}

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return self._take(self.rows[position])

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        return self._take(self.rows[torch.as_tensor(positions, dtype=torch.long)])


def keep_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Collate for batches that ``__getitems__`` already assembled."""
    return batch
