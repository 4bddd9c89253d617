"""``DatasetTensors``: the one tensor form of a dataset, labels included, read by position."""

from __future__ import annotations

from pathlib import Path

import torch

from mmexp.data.tensors import DatasetTensors
from tests.data.test_datamodule import make_dm
from tests.data_factory import clean_rows, write_manifest


def tensors_of(n: int) -> DatasetTensors:
    return DatasetTensors(
        images=torch.arange(n * 3 * 2 * 2, dtype=torch.int64).reshape(n, 3, 2, 2).to(torch.uint8),
        text_ids=torch.arange(n * 4).reshape(n, 4),
        text_mask=torch.arange(n * 4).reshape(n, 4) % 3 != 0,
        labels=torch.arange(n) % 2,
        texts=[f"text {i}" for i in range(n)],
        ids=[f"r{i}" for i in range(n)],
    )


def test_take_cuts_every_field_at_the_rows_in_their_order() -> None:
    tensors = tensors_of(6)
    rows = torch.tensor([5, 0, 3])
    batch = tensors.take(rows)
    assert torch.equal(batch.image, tensors.images[[5, 0, 3]]) and torch.equal(batch.label, torch.tensor([1, 0, 1]))
    assert torch.equal(batch.text_ids, tensors.text_ids[[5, 0, 3]]) and torch.equal(
        batch.text_mask, tensors.text_mask[[5, 0, 3]]
    )
    assert (
        batch.texts == ["text 5", "text 0", "text 3"] and batch.index is not None and batch.index.tolist() == [5, 0, 3]
    )
    assert len(tensors) == 6 and tensors.to(torch.device("cpu")) is tensors  # already there: no copy
    assert tensors.nbytes() == 6 * 12 + 6 * 4 * 8 + 6 * 4 + 6 * 8  # uint8 images, int64 ids, bool mask, int64 labels


def test_the_datamodule_loaders_hand_out_rows_of_its_tensors_with_the_encoded_labels(tmp_path: Path) -> None:
    write_manifest(tmp_path, clean_rows(tmp_path, n=24))
    dm = make_dm(tmp_path, batch_size=4)
    dm.setup()
    tensors = dm.info.tensors
    assert tensors.ids == [r.id for r in dm.info.records] and len(tensors) == len(dm.info.records)
    assert [dm.label_names[i] for i in tensors.labels.tolist()] == [r.label for r in dm.info.records]
    for name, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        batches = list(loader)
        rows = dm.split_rows[name]
        assert torch.equal(torch.cat([b.index for b in batches if b.index is not None]), rows)
        expected = tensors.take(rows)
        assert torch.equal(torch.cat([b.image for b in batches]), expected.image)
        assert torch.equal(torch.cat([b.label for b in batches]), expected.label)
        assert [t for b in batches for t in b.texts] == expected.texts
