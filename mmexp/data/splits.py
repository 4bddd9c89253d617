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
