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

from mmexp.contracts import Batch
from mmexp.core.errors import ConfigError
from mmexp.data.balance import BalancedSampler
from mmexp.data.dataset import RowsDataset, collate
from mmexp.data.image_cache import cache_key as image_cache_key
from mmexp.data.image_cache import load_or_decode
from mmexp.data.images import MAX_IMAGE_PIXELS, RESIZE_MODES
from mmexp.data.label_pairing import unknown_classes
from mmexp.data.leakage import LeakReport, check_leakage
from mmexp.data.manifest import read_rows
from mmexp.data.records import BadRow, Columns, Record, format_bad_rows, parse_records
from mmexp.data.sampler_option import sampler_option
from mmexp.data.splits import Split, check_on_leak
from mmexp.data.synthetic import SyntheticSpec, ensure_synthetic
from mmexp.data.task import Task
from mmexp.data.tensors import DatasetTensors
from mmexp.data.tokenizers import Tokenizer, WordTokenizer

log = logging.getLogger(__name__)
SETS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What ``setup()`` read, for the code that reads a whole dataset (run files, feature cache, eval).

    Rows are the usable records in manifest order; ``tensors`` holds every row as the model reads it (train,
    val and test are positions in it: ``split``); ``image_key`` identifies the decoded images (the manifest,
    every image file and the image size), so caches built on them need not hash them again.
    """

    records: list[Record]
    skipped: list[BadRow]
    label_names: list[str]
    split: Split
    tensors: DatasetTensors
    image_key: str
    manifest: Path
    leaks: LeakReport | None

    @property
    def ids(self) -> list[str]:
        return self.tensors.ids


def resident_on(device: torch.device, tensors: DatasetTensors, mode: str | bool, budget_gb: float) -> bool:
    """Keep the dataset's tensors on ``device``: always when ``mode`` is True, never when False;
    ``auto``: on a GPU when the tensors fit in ``budget_gb``. On the CPU they are resident already."""
    if mode is False or (mode == "auto" and device.type == "cpu"):
        return False
    return mode is True or tensors.nbytes() <= budget_gb * 2**30


class MultimodalDataModule(L.LightningDataModule):
    """Reads and validates the manifest once, splits it, fits the tokenizer on train only.

    ``root`` is the user's folder; with ``synthetic`` set, the built-in dataset is generated into
    ``cache_dir`` and used as the root instead. ``text`` is the text encoder's tokenizer (by default the
    word tokenizer of ``data.text``). After ``setup()``, ``info`` describes everything that was read.
    """

    def __init__(
        self,
        *,
        split: Callable[..., Split],
        root: str | None = None,
        manifest: str = "manifest.jsonl",
        synthetic: SyntheticSpec | None = None,
        cache_dir: str = "outputs/cache",
        id_col: str = "id",
        image_col: str = "image",
        text_col: str = "text",
        label_col: str = "label",
        group_col: str | None = "group",
        split_col: str | None = "split",
        text: Tokenizer | None = None,
        image_size: int = 32,
        resize: str = "squash",
        max_image_pixels: int = MAX_IMAGE_PIXELS,
        image_cache: bool = True,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        on_bad_record: str = "error",
        on_leak: str = "warn",
        device_resident: str | bool = "auto",
        resident_budget_gb: float = 4.0,
        sampler: str | None = None,
        task: Task | None = None,
        follow_symlinks: bool = False,
    ) -> None:
        super().__init__()
        self.task = task or Task()
        if not isinstance(follow_symlinks, bool):
            raise ConfigError(f"data.follow_symlinks must be true or false (got {follow_symlinks!r})")
        self.follow_symlinks = follow_symlinks
        # after "skipped N bad row(s)": None names the first and where a training run lists them all (eval and predict
        # make no skipped.jsonl); mmexp.inspect, which lists them itself, sets its own
        self.skipped_note: str | None = None
        if on_bad_record not in ("error", "skip"):
            raise ConfigError(f"data.on_bad_record must be 'error' or 'skip' (got {on_bad_record!r})")
        if root is None and synthetic is None:
            raise ConfigError("data.root is required: the folder holding the images and the manifest")
        if synthetic is not None and not isinstance(synthetic, SyntheticSpec):  # data.synthetic.x=... on a folder
            raise ConfigError(
                f"data.synthetic ({', '.join(map(str, synthetic))}) configures the built-in dataset, which this data "
                "config does not use; drop the data.synthetic overrides, or train on the built-in data (data=synthetic)"
            )
        self.split_fn, self.root, self.manifest_name = split, root, manifest
        self.synthetic, self.cache_dir, self.image_cache = synthetic, cache_dir, image_cache
        self.columns = Columns(
            id=id_col, image=image_col, text=text_col, label=label_col, group=group_col, split=split_col
        )
        self.tokenizer: Tokenizer = text or WordTokenizer()
        if resize not in RESIZE_MODES:
            raise ConfigError(f"data.resize must be one of {', '.join(RESIZE_MODES)} (got {resize!r})")
        if isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, int) or max_image_pixels < 1:
            raise ConfigError(f"data.max_image_pixels must be a positive integer (got {max_image_pixels!r})")
        self.max_image_pixels = max_image_pixels
        self.image_size, self.resize, self.batch_size = image_size, resize, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.on_bad_record, self.on_leak = (
            num_workers,
            on_bad_record,
            check_on_leak(on_leak, "data.on_leak"),
        )
        if device_resident not in ("auto", True, False):
            raise ConfigError(f"data.device_resident must be auto, true or false (got {device_resident!r})")
        self.device_resident, self.resident_budget_gb = device_resident, resident_budget_gb
        self.sampler = sampler_option(sampler)
        if self.sampler == "balanced" and self.task.multilabel:
            raise ConfigError(
                "data.sampler=balanced draws rows by their one class, which a multi-label row does not have; "
                "for task=multilabel weigh the rare labels with model.pos_weight=balanced instead"
            )
        self.sampler_seed = 0  # the run's seed: torch's initial seed when setup() runs (after seed_everything)
        self.label_names: list[str] = []  # set before setup() by load_state_dict (a checkpoint's map wins)
        self._info: DatasetInfo | None = None
        # positions in info.tensors of the train/val/test rows, in loader order (eval sets test to a run's own)
        self.split_rows: dict[str, torch.Tensor] = {}
        self._resident: DatasetTensors | None = None  # info.tensors on the device, when kept there

    @property
    def data_root(self) -> Path:
        if self.synthetic is not None:
            return ensure_synthetic(self.synthetic, self.cache_dir)
        assert self.root is not None  # __init__ requires root when there is no synthetic spec
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
        _ = self.data_root  # generates the built-in dataset once, in the main process only

    @property
    def info(self) -> DatasetInfo:
        if self._info is None:
            raise RuntimeError("the datamodule is not set up: call setup() first")
        return self._info

    def load_records(self) -> tuple[list[Record], list[BadRow], np.ndarray, str]:
        """Validate every row and decode its image (or read it from the cache).

        Returns the usable records, the bad rows, their images and the key of those decoded images.
        """
        manifest = self.manifest
        records, bad = parse_records(
            read_rows(manifest), self.data_root, self.columns, self.task, follow_symlinks=self.follow_symlinks
        )
        cache = Path(self.cache_dir) / "images" if self.image_cache else None
        paths = [r.image for r in records]
        key = image_cache_key(paths, self.image_size, manifest, self.resize, self.max_image_pixels)
        images, problems = load_or_decode(
            paths,
            self.image_size,
            manifest=manifest,
            cache_dir=cache,
            key=key,
            resize=self.resize,
            max_pixels=self.max_image_pixels,
        )
        bad += [BadRow(records[i].line, reason, {"id": records[i].id}) for i, reason in problems.items()]
        if bad:
            bad.sort(key=lambda b: b.line)
            if self.on_bad_record == "error":
                raise ConfigError(format_bad_rows(bad, manifest))
            note = self.skipped_note or f"first: {bad[0].describe()}; a training run lists them all in skipped.jsonl"
            log.warning("data: skipped %d bad row(s) of %s (%s)", len(bad), manifest, note)
        good = [i for i in range(len(records)) if i not in problems]
        if not good:
            raise ConfigError(f"data: no usable rows in {manifest}; " + format_bad_rows(bad, manifest, action=None))
        kept = images if len(good) == len(images) else images[good]  # all good: stays a memory map
        return [records[i] for i in good], bad, kept, key

    def setup(self, stage: str | None = None) -> None:
        if self._info is not None:
            return
        self.sampler_seed = torch.initial_seed()
        records, skipped, images, image_key = self.load_records()
        if not self.label_names:  # a checkpoint's map wins
            self.label_names = self.task.label_names([r.label for r in records])
        unknown = unknown_classes(self.task.classes([r.label for r in records]), self.label_names, source=self.manifest)
        if unknown:
            raise ConfigError(f"{unknown}; evaluate on data with the labels it was trained on")
        labels = self.task.encode([r.label for r in records], self.label_names)
        split = self.split_fn(labels, groups=_column(records, "group"), predefined=_column(records, "split"))
        self._check_split(split, labels)
        leaks = check_leakage(records, split, images, self.on_leak)
        texts = [r.text for r in records]
        self.tokenizer.fit([texts[i] for i in split.train])  # a vocabulary loaded from a checkpoint is kept
        text_ids, text_mask = self.tokenizer.encode(texts)
        tensors = DatasetTensors(
            images=torch.from_numpy(images),
            text_ids=text_ids,
            text_mask=text_mask,
            labels=torch.from_numpy(labels),
            texts=texts,
            ids=[r.id for r in records],
        )
        self._info = DatasetInfo(
            records=records,
            skipped=skipped,
            label_names=self.label_names,
            split=split,
            tensors=tensors,
            image_key=image_key,
            manifest=self.manifest,
            leaks=leaks,
        )
        self.split_rows = {name: torch.from_numpy(getattr(split, name)) for name in SETS}
        log.info(
            "data: %d rows (%d skipped), %d classes, vocab %d, split train/val/test = %d/%d/%d",
            len(records),
            len(skipped),
            self.num_classes,
            len(self.tokenizer.tokens()),
            *(len(self.split_rows[n]) for n in SETS),
        )

    def _check_split(self, split: Split, labels: np.ndarray) -> None:
        if len(self.label_names) < 2 and not self.task.multilabel:
            raise ConfigError(
                f"data: every usable row of {self.manifest} has the label {self.label_names[0]!r}; a classifier "
                f"needs at least two classes (check data.label_col={self.columns.label!r} and the skipped rows)"
            )
        for name in SETS:
            if len(getattr(split, name)) == 0:
                raise ConfigError(
                    f"split: the {name} set is empty ({len(labels)} usable rows); "
                    f"give it a larger fraction (split.{name}) or use more data"
                )
        if labels.ndim == 2:  # multilabel: a label never positive in train cannot be learned, but is not fatal
            unseen = np.flatnonzero((labels.sum(0) > 0) & (labels[split.train].sum(0) == 0))
            if len(unseen):
                log.warning(
                    "split: label(s) %s are positive in no training row; the model cannot learn them",
                    ", ".join(self.label_names[i] for i in unseen),
                )
            return
        missing = set(labels.tolist()) - set(labels[split.train].tolist())
        if missing:
            names = ", ".join(self.label_names[i] for i in sorted(missing))
            raise ConfigError(
                f"split: class(es) {names} have no training example; use split=stratified or add data for them"
            )

    def train_labels(self) -> torch.Tensor:
        """The targets of the train rows (CPU): class indices (N,) int64, or (multilabel) multi-hot (N, K); what
        balanced loss weights and the sampler count."""
        return self.info.tensors.labels[self.split_rows["train"]]

    def _loader(self, name: str, shuffle: bool) -> DataLoader[Batch]:
        """Train (``shuffle``): reshuffled every epoch, or drawn by ``data.sampler``; val/test in order."""
        tensors, rows = self.info.tensors, self.split_rows[name]
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        sampler = None
        if shuffle and self.sampler == "balanced":
            sampler = BalancedSampler(self.train_labels(), num_classes=self.num_classes, seed=self.sampler_seed)
        order: dict[str, Any] = {"shuffle": shuffle} if sampler is None else {"sampler": sampler}
        if resident_on(device, tensors, self.device_resident, self.resident_budget_gb):
            # batches are cut on the device by one index operation per tensor: no workers, no copies
            if self._resident is None or self._resident.device != device:  # one copy, shared by train/val/test
                self._resident = tensors.to(device)
            return DataLoader(
                RowsDataset(self._resident, rows),
                collate_fn=collate,
                num_workers=0,
                batch_size=self.batch_size if shuffle else self.eval_batch_size,
                **order,
            )
        return DataLoader(
            RowsDataset(tensors, rows),
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=device.type == "cuda",
            **order,
        )

    def train_dataloader(self) -> DataLoader[Batch]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Batch]:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[Batch]:
        return self._loader("test", shuffle=False)

    def state_dict(self) -> dict[str, Any]:
        """Saved inside every checkpoint so evaluation reuses the exact tokenizer state and label map."""
        return {"labels": self.label_names, **self.tokenizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.label_names = state["labels"]
        self.tokenizer.load_state_dict(state)


def _column(records: list[Record], name: str) -> np.ndarray | None:
    values = [getattr(r, name) for r in records]
    return None if all(v is None for v in values) else np.array(values, dtype=object)
