"""Split strategies: pure, deterministic functions from labels (and groups) to index sets.

``labels`` is a class index per row (N,) or, for a multi-label task, a multi-hot (N, K) matrix: the
stratified strategies then use iterative stratification (``iterative_stratification.py``), the others only
count the rows.

Each strategy is also a small frozen dataclass that declares its options and checks them when the
config is built (``conf/split/*.yaml`` points ``_target_`` at it); the datamodule calls it with the
data as ``split(labels, groups=..., predefined=...)`` and it delegates to its pure function. The classes are
the one place the options are checked: the pure functions trust their arguments.
``on_leak`` is declared by each class so it is checked; the datamodule reads it (``data.on_leak``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmexp.core.errors import ConfigError
from mmexp.data.iterative_stratification import iterative_assign


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


def _check_val(val: float) -> None:
    if not 0 <= val < 1:
        raise ConfigError(f"split.val must be in [0, 1) (got {val}); e.g. split.val=0.15")


def _check_folds(k: int, fold: int) -> None:
    if k < 2:
        raise ConfigError(f"split.k must be >= 2 (got {k}); e.g. split.k=5")
    if not 0 <= fold < k:
        raise ConfigError(f"split.fold must be in 0..{k - 1} for split.k={k} (got {fold})")


def _cut(idx: np.ndarray, val: float, test: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(idx)
    n_test, n_val = round(n * test), round(n * val)
    if n - n_test - n_val < 1 and n > 0:  # keep at least one training example of each stratum
        n_val = max(0, n - n_test - 1)
        n_test = min(n_test, n - 1)
    return idx[n_test + n_val :], idx[n_test : n_test + n_val], idx[:n_test]


def _finish(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Split:
    return Split(*(np.sort(np.concatenate([p[k] for p in parts])).astype(np.int64) for k in range(3)))


def is_multilabel(labels: np.ndarray) -> bool:
    """Multi-label tasks pass a (rows, labels) multi-hot matrix; single-label ones a class index per row."""
    return np.ndim(labels) == 2


def _iterative_parts(
    labels: np.ndarray, idx: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator
) -> list[np.ndarray]:
    """``idx`` dealt into len(fractions) sorted sets by iterative stratification of its multi-hot rows."""
    subset = iterative_assign(labels[idx], fractions, rng)
    return [np.sort(idx[subset == j]).astype(np.int64) for j in range(len(fractions))]


def _carve_val(
    labels: np.ndarray, idx: np.ndarray, val: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) out of ``idx``, stratified: per class, or iteratively for multi-label rows."""
    if is_multilabel(labels):
        train_idx, val_idx = _iterative_parts(labels, idx, (1.0 - val, val), rng)
        return train_idx, val_idx
    carved = _finish([_cut(rng.permutation(idx[labels[idx] == c]), val, 0.0) for c in np.unique(labels[idx])])
    return carved.train, carved.val


def random_split(
    labels: np.ndarray,
    *,
    train: float,
    val: float,
    test: float,
    seed: int,
    groups: np.ndarray | None = None,
    predefined: np.ndarray | None = None,
) -> Split:
    """Shuffle all rows once and cut them by the fractions (``groups``/``predefined`` are unused)."""
    idx = np.random.default_rng(seed).permutation(len(labels))
    return _finish([_cut(idx, val, test)])


def stratified_split(
    labels: np.ndarray,
    *,
    train: float,
    val: float,
    test: float,
    seed: int,
    groups: np.ndarray | None = None,
    predefined: np.ndarray | None = None,
) -> Split:
    """Cut every class by the fractions, so each set keeps the class proportions; ``groups``/``predefined`` unused.

    Multi-label rows (a 2-D multi-hot matrix) are dealt by iterative stratification instead, which keeps
    every label's positive rate in every set.
    """
    rng = np.random.default_rng(seed)
    if is_multilabel(labels):
        return Split(*_iterative_parts(labels, np.arange(len(labels)), (train, val, test), rng))
    return _finish([_cut(rng.permutation(np.flatnonzero(labels == c)), val, test) for c in np.unique(labels)])


def kfold_split(
    labels: np.ndarray,
    *,
    k: int,
    fold: int,
    val: float,
    seed: int,
    stratified: bool = True,
    groups: np.ndarray | None = None,
    predefined: np.ndarray | None = None,
) -> Split:
    """Fold ``fold`` of ``k`` is the test set; validation is carved (stratified) from the rest.

    Multi-label rows: the folds and the validation carve use iterative stratification.
    ``groups``/``predefined`` are unused (split=group_kfold keeps groups apart).
    """
    rng = np.random.default_rng(seed)
    folds = _folds(labels, k, stratified, rng)
    test_idx = np.flatnonzero(folds == fold)
    train_idx, val_idx = _carve_val(labels, np.flatnonzero(folds != fold), val, rng)
    return Split(train_idx, val_idx, np.sort(test_idx))


def _folds(labels: np.ndarray, k: int, stratified: bool, rng: np.random.Generator) -> np.ndarray:
    """The fold of every row: stratified per class (or iteratively for multi-label rows), or plain."""
    if stratified and is_multilabel(labels):
        return iterative_assign(labels, (1.0 / k,) * k, rng)
    strata = [np.flatnonzero(labels == c) for c in np.unique(labels)] if stratified else [np.arange(len(labels))]
    folds = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for members in strata:  # deal each class round-robin so folds stay stratified and balanced
        folds[rng.permutation(members)] = (np.arange(len(members)) + offset) % k
        offset += len(members)
    return folds


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


def group_kfold_split(
    labels: np.ndarray,
    *,
    k: int,
    fold: int,
    val: float,
    seed: int,
    groups: np.ndarray | None = None,
    predefined: np.ndarray | None = None,
) -> Split:
    """Like kfold, but no group (patient, product, author…) is ever in two sets."""
    if groups is None or any(g is None for g in groups):
        raise ConfigError(
            "split=group_kfold needs a group for every row: set data.group_col to the manifest column that holds it"
        )
    groups = np.asarray(groups, dtype=object)
    if len(set(groups.tolist())) < k:
        raise ConfigError(f"split=group_kfold: only {len(set(groups.tolist()))} groups for split.k={k}")
    rng = np.random.default_rng(seed)
    fold_of = _fold_of_groups(groups, k, rng)
    folds = np.array([fold_of[g] for g in groups])
    test_idx = np.flatnonzero(folds == fold)
    rest = np.flatnonzero(folds != fold)
    rest_groups = np.unique(groups[rest])
    n_val_groups = round(len(rest_groups) * val)
    val_groups = set(rng.permutation(rest_groups)[:n_val_groups].tolist())
    in_val = np.array([g in val_groups for g in groups[rest]], dtype=bool)
    return Split(np.sort(rest[~in_val]), np.sort(rest[in_val]), np.sort(test_idx))


def predefined_split(
    labels: np.ndarray, *, val: float, seed: int, groups: np.ndarray | None = None, predefined: np.ndarray | None = None
) -> Split:
    """Use the manifest's split column (train/val/test); val is carved from train if absent (``groups`` unused)."""
    allowed = {"train", "val", "test"}
    if predefined is None or any(v not in allowed for v in predefined):
        bad = sorted({str(v) for v in (predefined if predefined is not None else [None])} - allowed)
        raise ConfigError(
            f"split=predefined needs data.split_col with values train/val/test in every row "
            f"(found {', '.join(bad[:5])})"
        )
    predefined = np.asarray(predefined, dtype=object)
    train_idx, val_idx, test_idx = (np.flatnonzero(predefined == name) for name in ("train", "val", "test"))
    if len(val_idx) == 0:
        train_idx, val_idx = _carve_val(labels, train_idx, val, np.random.default_rng(seed))
    return Split(np.sort(train_idx), np.sort(val_idx), np.sort(test_idx))


# --- The strategies as configured: conf/split/<name>.yaml -> one frozen dataclass, options checked once ---

LEAK_POLICIES = ("warn", "error", "ignore")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"split.seed must be an integer (got {seed!r}); e.g. split.seed=0")


def check_on_leak(on_leak: str, key: str = "split.on_leak") -> str:
    """What to do with identical items across sets; ``key``: where it was configured (the datamodule's
    ``data.on_leak`` defaults to ``${split.on_leak}``)."""
    if on_leak not in LEAK_POLICIES:
        raise ConfigError(f"{key} must be warn, error or ignore (got {on_leak!r})")
    return on_leak


@dataclass(frozen=True, kw_only=True)
class SplitStrategy:
    """A ``split=`` option: its fields are the options (checked when built), ``__call__`` makes the split.

    Every strategy is called with the label of each row (a class index, or a multi-hot row) and, where the
    manifest has them, each row's group (``data.group_col``) and predefined set (``data.split_col``).
    """

    on_leak: str = "warn"

    def __post_init__(self) -> None:
        check_on_leak(self.on_leak)

    def __call__(
        self, labels: np.ndarray, *, groups: np.ndarray | None = None, predefined: np.ndarray | None = None
    ) -> Split:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class _Seeded(SplitStrategy):
    seed: int

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_seed(self.seed)


@dataclass(frozen=True, kw_only=True)
class _Fractions(_Seeded):
    train: float
    val: float
    test: float

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fractions(self.train, self.val, self.test)


@dataclass(frozen=True, kw_only=True)
class _Folds(_Seeded):
    k: int
    fold: int
    val: float

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_folds(self.k, self.fold)
        _check_val(self.val)


@dataclass(frozen=True, kw_only=True)
class RandomSplit(_Fractions):
    """``split=random``: one shuffle of all rows, cut by the fractions."""

    def __call__(
        self, labels: np.ndarray, *, groups: np.ndarray | None = None, predefined: np.ndarray | None = None
    ) -> Split:
        return random_split(labels, train=self.train, val=self.val, test=self.test, seed=self.seed)


@dataclass(frozen=True, kw_only=True)
class StratifiedSplit(_Fractions):
    """``split=stratified``: every class cut by the same fractions."""

    def __call__(
        self, labels: np.ndarray, *, groups: np.ndarray | None = None, predefined: np.ndarray | None = None
    ) -> Split:
        return stratified_split(labels, train=self.train, val=self.val, test=self.test, seed=self.seed)


@dataclass(frozen=True, kw_only=True)
class KFoldSplit(_Folds):
    """``split=kfold``: fold ``fold`` of ``k`` is the test set; val is carved from the rest."""

    stratified: bool = True

    def __call__(
        self, labels: np.ndarray, *, groups: np.ndarray | None = None, predefined: np.ndarray | None = None
    ) -> Split:
        return kfold_split(labels, k=self.k, fold=self.fold, val=self.val, seed=self.seed, stratified=self.stratified)


@dataclass(frozen=True, kw_only=True)
class GroupKFoldSplit(_Folds):
    """``split=group_kfold``: k folds over whole groups (``data.group_col``); val is a fraction of the rest's groups."""

    def __call__(
        self, labels: np.ndarray, *, groups: np.ndarray | None = None, predefined: np.ndarray | None = None
    ) -> Split:
        return group_kfold_split(labels, k=self.k, fold=self.fold, val=self.val, seed=self.seed, groups=groups)


@dataclass(frozen=True, kw_only=True)
class PredefinedSplit(_Seeded):
    """``split=predefined``: the manifest's split column (``data.split_col``); val carved from train if absent."""

    val: float

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_val(self.val)

    def __call__(
        self, labels: np.ndarray, *, groups: np.ndarray | None = None, predefined: np.ndarray | None = None
    ) -> Split:
        return predefined_split(labels, val=self.val, seed=self.seed, predefined=predefined)


@dataclass(frozen=True, kw_only=True)
class AllRowsSplit(SplitStrategy):
    """Every row is a test row (evaluation with ``data=...`` and no ``split=``).

    train and val hold the same rows only because the datamodule wants non-empty sets; nothing is
    fitted on them, since the tokenizer and label map come from the checkpoint. Hence ``on_leak``
    defaults to ignore: every row is "shared" across the sets by design.
    """

    on_leak: str = "ignore"

    def __call__(
        self, labels: np.ndarray, *, groups: np.ndarray | None = None, predefined: np.ndarray | None = None
    ) -> Split:
        rows = np.arange(len(labels), dtype=np.int64)
        return Split(train=rows, val=rows, test=rows)
