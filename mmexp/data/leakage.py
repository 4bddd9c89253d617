"""Find identical images or texts shared between train and val/test before any training."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field

import numpy as np

from mmexp.core.errors import ConfigError
from mmexp.data.records import Record
from mmexp.data.splits import Split

log = logging.getLogger(__name__)


def normalize_text(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


@dataclass
class LeakReport:
    """Rows of val/test whose image bytes or normalized text also occur in train."""

    counts: dict[str, int] = field(default_factory=dict)  # e.g. {"image train-test": 3}
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        parts = [f"{kind}: {n} (e.g. {', '.join(self.examples[kind])})" for kind, n in self.counts.items() if n]
        return "; ".join(parts) or "none"


def find_leaks(records: list[Record], split: Split, images: np.ndarray) -> LeakReport:
    """``images``: the decoded (N, C, H, W) pixels the model sees, already in memory from the image cache.

    Pixels, not file bytes: no file is read again, and the same picture saved twice (other metadata or
    compression) is still caught.
    """
    keys = {
        "image": [hashlib.sha1(np.ascontiguousarray(image).data).hexdigest() for image in images],
        "text": [normalize_text(r.text) for r in records],
    }
    report = LeakReport()
    for modality, values in keys.items():
        in_train = {values[i] for i in split.train}
        for part in ("val", "test"):
            shared = [records[i].id for i in getattr(split, part) if values[i] in in_train]
            report.counts[f"{modality} train-{part}"] = len(shared)
            report.examples[f"{modality} train-{part}"] = shared[:3]
    return report


def check_leakage(records: list[Record], split: Split, images: np.ndarray, on_leak: str) -> LeakReport | None:
    """``on_leak``: warn (log), error (stop before training) or ignore (do not even look); checked where the
    split strategy and the datamodule are built (``mmexp.data.splits.check_on_leak``)."""
    if on_leak == "ignore":
        return None
    report = find_leaks(records, split, images)
    if report.total and on_leak == "error":
        raise ConfigError(
            f"split: identical items shared across sets: {report.describe()}. "
            "Deduplicate the data, use split=group_kfold with a group column, or set split.on_leak=warn"
        )
    if report.total:
        log.warning("split: identical items shared across sets: %s", report.describe())
    return report
