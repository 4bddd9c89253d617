"""LightningDataModule for paired image + text data: manifest -> validated records -> tensors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from mmexp.data.dataset import TensorBatchDataset, keep_batch
from mmexp.data.image_cache import load_or_decode
from mmexp.data.leakage import LeakReport, check_leakage
from mmexp.data.records import BadRow, Columns, Record, format_bad_rows, parse_records, read_rows
from mmexp.data.splits import Split
from mmexp.data.synthetic import SyntheticSpec, ensure_synthetic
from mmexp.data.text import Vocab
from mmexp.errors import ConfigError

log = logging.getLogger(__name__)
SETS = ("train", "val", "test")


@dataclass(frozen=True)
class TextSpec:
    max_tokens: int = 32
    min_freq: int = 1
    max_vocab: int | None = 20000
    lowercase: bool = True


def sorted_labels(labels: list[str]) -> list[str]:
    """Numeric labels sort as numbers ("2" < "10"), anything else as strings."""
    unique = set(labels)
    try:
        return sorted(unique, key=float)
    except ValueError:
        return sorted(unique)


def resident_on(device: torch.device, dataset: TensorBatchDataset, mode: str | bool, budget_gb: float) -> bool:
    """Keep the dataset's tensors on ``device``: always when ``mode`` is True, never when False;
    ``auto``: on a GPU when the tensors fit in ``budget_gb``. On the CPU they are resident already."""
    if mode is False or (mode == "auto" and device.type == "cpu"):
        return False
    return mode is True or dataset.nbytes() <= budget_gb * 2**30


class MultimodalDataModule(L.LightningDataModule):
    """Reads and validates the manifest once, splits it, fits the tokenizer on train only.

    ``root`` is the user's folder; with ``synthetic`` set, the built-in dataset is generated into
    ``cache_dir`` and used as the root instead.
    """

    def __init__(self, *, split: Callable[..., Split], root: str | None = None, manifest: str = "manifest.jsonl",
                 synthetic: SyntheticSpec | None = None, cache_dir: str = "outputs/cache",
                 id_col: str = "id", image_col: str = "image", text_col: str = "text", label_col: str = "label",
                 group_col: str | None = "group", split_col: str | None = "split", text: TextSpec | None = None,
                 image_size: int = 32, image_cache: bool = True, batch_size: int = 64,
                 eval_batch_size: int | None = None, num_workers: int = 0, on_bad_record: str = "error",
                 on_leak: str = "warn", device_resident: str | bool = "auto", resident_budget_gb: float = 4.0) -> None:
        super().__init__()
        if on_bad_record not in ("error", "skip"):
            raise ConfigError(f"data.on_bad_record must be 'error' or 'skip' (got {on_bad_record!r})")
        if root is None and synthetic is None:
            raise ConfigError("data.root is required: the folder holding the images and the manifest")
        self.split_fn, self.root, self.manifest_name = split, root, manifest
        self.synthetic, self.cache_dir, self.image_cache = synthetic, cache_dir, image_cache
        self.columns = Columns(id=id_col, image=image_col, text=text_col, label=label_col, group=group_col,
                               split=split_col)
        self.text_spec = text or TextSpec()
        self.image_size, self.batch_size = image_size, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.on_bad_record, self.on_leak = num_workers, on_bad_record, on_leak
        if device_resident not in ("auto", True, False):
            raise ConfigError(f"data.device_resident must be auto, true or false (got {device_resident!r})")
        self.device_resident, self.resident_budget_gb = device_resident, resident_budget_gb
        self.records: list[Record] = []
        self.skipped: list[BadRow] = []
        self.label_names: list[str] = []
        self.vocab: Vocab | None = None
        self.split: Split | None = None
        self.leaks: LeakReport | None = None
        self._datasets: dict[str, TensorBatchDataset] = {}
        self._device_copy: tuple | None = None  # (device, images, text_ids, labels) when resident

    @property
    def data_root(self) -> Path:
        if self.synthetic is not None:
            return ensure_synthetic(self.synthetic, self.cache_dir)
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise ConfigError(f"data.root: folder not found: {root}")
        return root

    @property
    def manifest(self) -> Path:
        return self.data_root / self.manifest_name

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def prepare_data(self) -> None:
        self.data_root  # generates the built-in dataset once, in the main process only

    def load_records(self) -> np.ndarray:
        """Validate every row, decode images (or read them from the cache); return the image array."""
        manifest = self.manifest
        records, bad = parse_records(read_rows(manifest), self.data_root, self.columns)
        cache = Path(self.cache_dir) / "images" if self.image_cache else None
        images, problems = load_or_decode([r.image for r in records], self.image_size, manifest=manifest,
                                          cache_dir=cache)
        bad += [BadRow(records[i].line, reason, {"id": records[i].id}) for i, reason in problems.items()]
        if bad:
            bad.sort(key=lambda b: b.line)
            if self.on_bad_record == "error":
                raise ConfigError(format_bad_rows(bad, manifest))
            log.warning("data: skipped %d bad row(s) of %s (see skipped.jsonl in the run dir)", len(bad), manifest)
        self.skipped = bad
        good = [i for i in range(len(records)) if i not in problems]
        self.records = [records[i] for i in good]
        if not self.records:
            raise ConfigError(f"data: no usable rows in {manifest}")
        return images[good]

    def setup(self, stage: str | None = None) -> None:
        if self._datasets:
            return
        images = self.load_records()
        self.label_names = self.label_names or sorted_labels([r.label for r in self.records])  # a checkpoint's wins
        unknown = sorted_labels(list({r.label for r in self.records} - set(self.label_names)))
        if unknown:
            raise ConfigError(f"data: label(s) {', '.join(unknown)} are not in the checkpoint's label map "
                              f"({', '.join(self.label_names)}); evaluate on data with the labels it was trained on")
        label_index = {name: i for i, name in enumerate(self.label_names)}
        labels = np.array([label_index[r.label] for r in self.records], dtype=np.int64)
        self.split = self.split_fn(labels, groups=self._column("group"), predefined=self._column("split"))
        self._check_split(labels)
        self.leaks = check_leakage(self.records, self.split, images, self.on_leak)
        texts = [r.text for r in self.records]
        spec = self.text_spec
        if self.vocab is None:  # a vocabulary loaded from a checkpoint (load_state_dict) is kept as is
            self.vocab = Vocab.fit([texts[i] for i in self.split.train], min_freq=spec.min_freq,
                                   max_size=spec.max_vocab, lowercase=spec.lowercase)
        tensors = {"images": torch.from_numpy(images), "text_ids": self.vocab.encode(texts, spec.max_tokens),
                   "labels": torch.from_numpy(labels), "texts": texts}
        self._datasets = {name: TensorBatchDataset(**tensors, rows=torch.from_numpy(getattr(self.split, name)))
                          for name in SETS}
        log.info("data: %d rows (%d skipped), %d classes, vocab %d, split train/val/test = %d/%d/%d",
                 len(self.records), len(self.skipped), self.num_classes, len(self.vocab),
                 *(len(self._datasets[n]) for n in SETS))

    def _column(self, name: str) -> np.ndarray | None:
        values = [getattr(r, name) for r in self.records]
        return None if all(v is None for v in values) else np.array(values, dtype=object)

    def _check_split(self, labels: np.ndarray) -> None:
        for name in SETS:
            if len(getattr(self.split, name)) == 0:
                raise ConfigError(f"split: the {name} set is empty ({len(labels)} usable rows); "
                                  f"give it a larger fraction (split.{name}) or use more data")
        missing = set(labels.tolist()) - set(labels[self.split.train].tolist())
        if missing:
            names = ", ".join(self.label_names[i] for i in sorted(missing))
            raise ConfigError(f"split: class(es) {names} have no training example; use split=stratified "
                              "or add data for them")

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        dataset = self._datasets[name]
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if resident_on(device, dataset, self.device_resident, self.resident_budget_gb):
            # batches are cut on the device by one index operation per tensor: no workers, no copies
            return DataLoader(self._on_device(dataset, device), collate_fn=keep_batch, num_workers=0,
                              batch_size=self.batch_size if shuffle else self.eval_batch_size, shuffle=shuffle)
        return DataLoader(dataset, batch_size=self.batch_size if shuffle else self.eval_batch_size,
                          shuffle=shuffle, collate_fn=keep_batch, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=device.type == "cuda")

    def _on_device(self, dataset: TensorBatchDataset, device: torch.device) -> TensorBatchDataset:
        """``dataset``'s rows over one copy of the full tensors on ``device``, shared by train/val/test."""
        if self._device_copy is None or self._device_copy[0] != device:
            self._device_copy = (device, *(t.to(device) for t in (dataset.images, dataset.text_ids, dataset.labels)))
        _, images, text_ids, labels = self._device_copy
        return TensorBatchDataset(images=images, text_ids=text_ids, labels=labels, texts=dataset.texts,
                                  rows=dataset.rows)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def state_dict(self) -> dict[str, Any]:
        """Saved inside every checkpoint so evaluation reuses the exact vocabulary and label map."""
        return {"labels": self.label_names, "vocab": self.vocab.tokens if self.vocab else None,
                "lowercase": self.text_spec.lowercase}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.label_names = state["labels"]
        if state.get("vocab"):
            self.vocab = Vocab(state["vocab"], state.get("lowercase", True))
