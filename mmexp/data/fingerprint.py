"""Per-row content digests, so a later evaluation can prove it scores the rows a run held out."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from mmexp.data.records import Record

if TYPE_CHECKING:
    from mmexp.data.datamodule import DatasetInfo


def row_digest(record: Record, image: torch.Tensor) -> str:
    """A short hash of what the model sees of a row: its label, its text and its decoded pixels.

    The decoded pixels, not the file: a re-encoded but identical image is the same row, and the
    cost is one pass over bytes already in memory (far below decoding them). The pixels are the file's as
    it is now: the decoded-image cache is keyed on the files' bytes, never on their size and mtime alone.
    """
    h = hashlib.blake2b(digest_size=8)
    label = record.label if isinstance(record.label, str) else "\x1f".join(record.label)  # multilabel: a set
    for part in (label, record.text):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    h.update(image.contiguous().numpy().tobytes())
    return h.hexdigest()


def row_digests(records: Sequence[Record], images: torch.Tensor, rows: Sequence[int]) -> dict[str, str]:
    """``{id: digest}`` of ``rows`` (indices into ``records`` and ``images``)."""
    return {records[i].id: row_digest(records[i], images[i]) for i in rows}


def test_digests(info: DatasetInfo) -> dict[str, str]:
    """Digests of the test rows of a set-up dataset (written into a run's split.json)."""
    return row_digests(info.records, info.tensors.images, info.split.test.tolist())
