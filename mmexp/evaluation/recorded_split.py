"""A run's own test set, rebuilt from the ids it recorded, never recomputed from data that may have changed.

Recomputing the split from today's manifest would silently score training rows as test rows once a
row is added, removed or reordered; the ids (and content digests) in the run's split.json cannot drift.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmexp.core.errors import ConfigError
from mmexp.data.fingerprint import row_digests

if TYPE_CHECKING:
    from mmexp.data.datamodule import DatasetInfo

log = logging.getLogger("mmexp.eval")
OTHER_DATA = "to score the data as it is now, name it: data=folder data.root=<dir> (every row) [split=<name>]"


def read_recorded_split(train_dir: Path) -> dict[str, Any]:
    path = train_dir / "split.json"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read the run's split ({type(e).__name__}: {e}); {OTHER_DATA}") from None
    test = recorded.get("test") if isinstance(recorded, dict) else None
    if not isinstance(test, list) or not all(isinstance(i, str) for i in test):
        raise ConfigError(f"{path}: has no list of test ids; {OTHER_DATA}")
    return recorded


def _shown(ids: list[str], limit: int = 5) -> str:
    more = f", ... ({len(ids) - limit} more)" if len(ids) > limit else ""
    return ", ".join(repr(i) for i in ids[:limit]) + more


def recorded_test_rows(train_dir: Path, info: DatasetInfo) -> list[int]:
    """Positions in ``info`` of the run's test rows, in the run's order.

    Refuses, naming the ids, when a test row is gone or its label, text or pixels changed since training.
    """
    recorded = read_recorded_split(train_dir)
    test_ids: list[str] = recorded["test"]
    index = {rid: i for i, rid in enumerate(info.ids)}
    gone = [t for t in test_ids if t not in index]
    if gone:
        raise ConfigError(
            f"data: {len(gone)} of the run's {len(test_ids)} test rows are no longer usable rows of "
            f"{info.manifest} (id {_shown(gone)}); the data changed since training, so the run's test set "
            f"cannot be rebuilt. {OTHER_DATA}"
        )
    rows = [index[t] for t in test_ids]
    digests = recorded.get("test_digests")
    if not isinstance(digests, dict):
        log.warning("%s has no row digests (an older run): checked the test ids only", train_dir / "split.json")
        return rows
    now = row_digests(info.records, info.tensors.images, rows)
    changed = [t for t in test_ids if digests.get(t) != now[t]]
    if changed:
        raise ConfigError(
            f"data: {len(changed)} of the run's {len(test_ids)} test rows changed since training (label, text "
            f"or image of id {_shown(changed)}); they are not the rows the run held out. {OTHER_DATA}"
        )
    return rows
