"""Split strategies: pure, deterministic functions from labels (and groups) to index sets.

Each strategy is selected by Hydra (``conf/split/*.yaml`` points ``_target_`` at one of the
functions below with ``_partial_: true``); the datamodule calls it with the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmexp.errors import ConfigError


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def to_json(self, ids: list[str]) -> dict[str, list[str]]:
        return {name: [ids[i] for i in getattr(self, name)] for name in ("train", "val", "test")}


def check_fractions(train: float, val: float, test: float) -> None:
    if min(train, val, test) < 0 or train <= 0:
        raise ConfigError(f"split.train/val/test must be >= 0 with train > 0 (got {train}, {val}, {test})")
    if abs(train + val + test - 1.0) > 1e-6:
        raise ConfigError(
            f"split.train + split.val + split.test must sum to 1 (got {train} + {val} + {test} = "
            f"{train + val + test:.4g}); e.g. split.train=0.7 split.val=0.15 split.test=0.15"
        )


def _cut(idx: np.ndarray, val: float, test: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(idx)
    n_test, n_val = int(round(n * test)), int(round(n * val))
    if n - n_test - n_val < 1 and n > 0:  # keep at least one training example of each stratum
        n_val = max(0, n - n_test - 1)
        n_test = min(n_test, n - 1)
    return idx[n_test + n_val:], idx[n_test:n_test + n_val], idx[:n_test]


def _finish(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Split:
    return Split(*(np.sort(np.concatenate([p[k] for p in parts])).astype(np.int64) for k in range(3)))


def random_split(labels: np.ndarray, *, train: float, val: float, test: float, seed: int, **_: object) -> Split:
    """Shuffle all rows once and cut them by the fractions."""
    check_fractions(train, val, test)
    idx = np.random.default_rng(seed).permutation(len(labels))
    return _finish([_cut(idx, val, test)])


def stratified_split(labels: np.ndarray, *, train: float, val: float, test: float, seed: int,
                     **_: object) -> Split:
    """Cut every class by the fractions, so each set keeps the class proportions."""
    check_fractions(train, val, test)
    rng = np.random.default_rng(seed)
    return _finish([_cut(rng.permutation(np.flatnonzero(labels == c)), val, test) for c in np.unique(labels)])


def kfold_split(labels: np.ndarray, *, k: int, fold: int, val: float, seed: int, stratified: bool = True,
                **_: object) -> Split:
    """Fold ``fold`` of ``k`` is the test set; validation is carved (stratified) from the rest."""
    if k < 2:
        raise ConfigError(f"split.k must be >= 2 (got {k})")
    if not 0 <= fold < k:
        raise ConfigError(f"split.fold must be in 0..{k - 1} for split.k={k} (got {fold})")
    if not 0 <= val < 1:
        raise ConfigError(f"split.val must be in [0, 1) (got {val})")
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(labels == c) for c in np.unique(labels)] if stratified else [np.arange(len(labels))]
    folds = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for members in strata:  # deal each class round-robin so folds stay stratified and balanced
        folds[rng.permutation(members)] = (np.arange(len(members)) + offset) % k
        offset += len(members)
    test_idx = np.flatnonzero(folds == fold)
    rest = np.flatnonzero(folds != fold)
    parts = [_cut(rng.permutation(rest[labels[rest] == c]), val, 0.0) for c in np.unique(labels[rest])]
    train_val = _finish(parts)
    return Split(train_val.train, train_val.val, np.sort(test_idx))


def _fold_of_groups(groups: np.ndarray, k: int, rng: np.random.Generator) -> dict[object, int]:
    """Assign whole groups to k folds, largest first, each to the currently smallest fold."""
    names, sizes = np.unique(groups, return_counts=True)
    order = rng.permutation(len(names))
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_sizes = np.zeros(k, dtype=np.int64)
    assignment: dict[object, int] = {}
    for i in order:
        target = int(np.argmin(fold_sizes))
        assignment[names[i]] = target
        fold_sizes[target] += sizes[i]
    return assignment


def group_kfold_split(labels: np.ndarray, *, k: int, fold: int, val: float, seed: int,
                      groups: np.ndarray | None = None, **_: object) -> Split:
    """Like kfold, but no group (patient, product, author…) is ever in two sets."""
    if groups is None or any(g is None for g in groups):
        raise ConfigError("split=group_kfold needs a group for every row: set data.group_col to the manifest "
                          "column that holds it")
    if k < 2 or not 0 <= fold < k:
        raise ConfigError(f"split.k must be >= 2 and split.fold in 0..k-1 (got k={k}, fold={fold})")
    groups = np.asarray(groups, dtype=object)
    if len(set(groups.tolist())) < k:
        raise ConfigError(f"split=group_kfold: only {len(set(groups.tolist()))} groups for split.k={k}")
    rng = np.random.default_rng(seed)
    fold_of = _fold_of_groups(groups, k, rng)
    folds = np.array([fold_of[g] for g in groups])
    test_idx = np.flatnonzero(folds == fold)
    rest = np.flatnonzero(folds != fold)
    rest_groups = np.unique(groups[rest])
    n_val_groups = int(round(len(rest_groups) * val))
    val_groups = set(rng.permutation(rest_groups)[:n_val_groups].tolist())
    in_val = np.array([g in val_groups for g in groups[rest]], dtype=bool)
    return Split(np.sort(rest[~in_val]), np.sort(rest[in_val]), np.sort(test_idx))


def predefined_split(labels: np.ndarray, *, val: float, seed: int, predefined: np.ndarray | None = None,
                     **_: object) -> Split:
    """Use the manifest's split column (train/val/test); val is carved from train if absent."""
    allowed = {"train", "val", "test"}
    if predefined is None or any(v not in allowed for v in predefined):
        bad = sorted({str(v) for v in (predefined if predefined is not None else [None])} - allowed)
        raise ConfigError(f"split=predefined needs data.split_col with values train/val/test in every row "
                          f"(found {', '.join(bad[:5])})")
    predefined = np.asarray(predefined, dtype=object)
    train_idx, val_idx, test_idx = (np.flatnonzero(predefined == name) for name in ("train", "val", "test"))
    if len(val_idx) == 0:
        rng = np.random.default_rng(seed)
        parts = [_cut(rng.permutation(train_idx[labels[train_idx] == c]), val, 0.0)
                 for c in np.unique(labels[train_idx])]
        carved = _finish(parts)
        train_idx, val_idx = carved.train, carved.val
    return Split(np.sort(train_idx), np.sort(val_idx), np.sort(test_idx))
