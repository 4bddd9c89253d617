"""Split strategies on multi-label (N, K) multi-hot labels, and 1-D splits pinned to their output before that."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest

from mmexp.data.iterative_stratification import _greedy_picks, iterative_assign
from mmexp.data.splits import (
    AllRowsSplit,
    Split,
    group_kfold_split,
    kfold_split,
    predefined_split,
    random_split,
    stratified_split,
)

FREQS = np.geomspace(0.5, 0.02, 8)  # 8 labels, from one row in two to one in fifty
N = 2000
FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def multi_hot(seed: int, n: int = N, dtype: type = np.float32) -> np.ndarray:
    """Imbalanced label frequencies, plus ~5% rows with no label on top of those that draw none."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, len(FREQS))) < FREQS
    y[rng.random(n) < 0.05] = False
    return y.astype(dtype)


def sets(split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return split.train, split.val, split.test


def assert_partition(parts: tuple[np.ndarray, ...] | list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))


def worst_rate_gap(y: np.ndarray, split: Split) -> np.ndarray:
    """Per label: the largest |positive rate in a set - overall rate| over the three sets."""
    return np.max([np.abs(y[p].mean(axis=0) - y.mean(axis=0)) for p in sets(split)], axis=0)


# --- 1-D: the output of every strategy is pinned to what it was before multi-label support ---

PINNED = {
    "random": "bd2b88d831ea8517",
    "stratified": "76184f5406413c17",
    "kfold": "eb56c7ed051c568c",
    "kfold_plain": "5fe2cb781aa2a71a",
    "group_kfold": "c0a1eebe90b9a475",
    "predefined": "fa30431be268dc7a",
}


def _pinned_cases() -> dict[str, Callable[[], Split]]:
    labels = np.random.default_rng(2024).choice(4, size=101, p=[0.5, 0.3, 0.15, 0.05])
    groups = np.array([f"g{i % 17}" for i in range(101)], dtype=object)
    column = np.array(["train"] * 70 + ["test"] * 31, dtype=object)
    return {
        "random": lambda: random_split(labels, train=0.6, val=0.2, test=0.2, seed=7),
        "stratified": lambda: stratified_split(labels, train=0.6, val=0.2, test=0.2, seed=7),
        "kfold": lambda: kfold_split(labels, k=5, fold=3, val=0.2, seed=7),
        "kfold_plain": lambda: kfold_split(labels, k=5, fold=3, val=0.2, seed=7, stratified=False),
        "group_kfold": lambda: group_kfold_split(labels, k=4, fold=1, val=0.25, seed=7, groups=groups),
        "predefined": lambda: predefined_split(labels, val=0.25, seed=7, predefined=column),
    }


@pytest.mark.parametrize("name", sorted(PINNED))
def test_single_label_splits_are_unchanged(name: str) -> None:
    digest = hashlib.sha256()
    for part in sets(_pinned_cases()[name]()):
        digest.update(np.asarray(part, dtype=np.int64).tobytes())
        digest.update(b"|")
    assert digest.hexdigest()[:16] == PINNED[name]


# --- iterative stratification itself ---


def test_vectorized_picks_match_the_step_by_step_greedy() -> None:
    """Algorithm 1's inner loop, one row at a time: the sorted version must choose the same subsets."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        need, need_rows = rng.random(4) * 10 - 2, rng.random(4) * 50
        n = int(rng.integers(0, 30))
        expected, label_left, rows_left = [], need.copy(), need_rows.copy()
        for _ in range(n):  # fractional needs: no ties, so no randomness to match
            j = int(np.lexsort((-rows_left, -label_left))[0])
            expected.append(j)
            label_left[j] -= 1
            rows_left[j] -= 1
        assert _greedy_picks(need, need_rows, n, rng).tolist() == expected


def test_bool_int_and_float_labels_give_the_same_assignment() -> None:
    y = multi_hot(0, n=500, dtype=bool)
    results = [iterative_assign(y.astype(t), (0.5, 0.3, 0.2), np.random.default_rng(3)) for t in (bool, int, float)]
    assert all(np.array_equal(results[0], r) for r in results[1:])


def test_iterative_assign_rejects_1d_labels_and_bad_fractions() -> None:
    with pytest.raises(ValueError, match="2-D"):
        iterative_assign(np.zeros(5), (0.5, 0.5), np.random.default_rng(0))
    with pytest.raises(ValueError, match="sum to 1"):
        iterative_assign(np.zeros((5, 2)), (0.5, 0.6), np.random.default_rng(0))


# --- stratified_split on multi-hot labels ---


def test_stratified_sets_partition_the_rows_with_the_fractions_sizes() -> None:
    y = multi_hot(0)
    split = stratified_split(y, **FRACTIONS, seed=0)
    assert_partition(sets(split), N)
    for part, fraction in zip(sets(split), FRACTIONS.values(), strict=True):
        assert abs(len(part) - fraction * N) <= 2
        assert part.dtype == np.int64


def test_stratified_keeps_every_labels_rate_and_beats_a_random_split_on_rare_labels() -> None:
    gaps, random_gaps = [], []
    for seed in range(5):
        y = multi_hot(seed)
        gaps.append(worst_rate_gap(y, stratified_split(y, **FRACTIONS, seed=seed)))
        random_gaps.append(worst_rate_gap(y, random_split(y, **FRACTIONS, seed=seed)))
    gaps, random_gaps = np.array(gaps), np.array(random_gaps)
    assert gaps.max() < 0.005  # measured 0.0022: about one positive off in a 300-row set
    rare = slice(-3, None)  # frequencies 0.05 .. 0.02
    assert gaps[:, rare].mean() < 0.5 * random_gaps[:, rare].mean()  # measured 0.0006 vs 0.009


def test_stratified_is_deterministic_for_a_seed() -> None:
    y = multi_hot(1)
    a, b = stratified_split(y, **FRACTIONS, seed=4), stratified_split(y, **FRACTIONS, seed=4)
    assert all(np.array_equal(x, z) for x, z in zip(sets(a), sets(b), strict=True))
    other = stratified_split(y, **FRACTIONS, seed=5)
    assert not np.array_equal(a.test, other.test)


def test_a_label_with_a_single_positive_goes_to_train() -> None:
    """It goes to the set with the largest fraction: train whenever train is the largest."""
    y = multi_hot(2, n=300)
    lonely = np.zeros((300, 1), dtype=np.float32)
    for seed in range(10):
        lonely[:] = 0
        lonely[seed * 17] = 1
        split = stratified_split(np.hstack([y, lonely]), **FRACTIONS, seed=seed)
        assert seed * 17 in set(split.train.tolist())


def test_all_zero_rows_and_zero_fractions_are_handled() -> None:
    y = np.zeros((50, 3), dtype=np.float32)
    assert_partition(sets(stratified_split(y, **FRACTIONS, seed=0)), 50)
    split = stratified_split(multi_hot(0, n=200), train=0.8, val=0.0, test=0.2, seed=0)
    assert len(split.val) == 0 and len(split.test) == 40


# --- k-fold on multi-hot labels ---


def test_kfold_folds_partition_the_rows_and_every_label_reaches_every_fold() -> None:
    y, k = multi_hot(3), 5
    splits = [kfold_split(y, k=k, fold=f, val=0.2, seed=0) for f in range(k)]
    assert_partition([s.test for s in splits], N)
    for s in splits:
        assert_partition(sets(s), N)
        assert abs(len(s.test) - N / k) <= 2 and abs(len(s.val) - 0.2 * (N - len(s.test))) <= 2
        common = y.sum(axis=0) >= k
        assert (y[s.test][:, common].sum(axis=0) > 0).all()
        assert worst_rate_gap(y, s).max() < 0.01


def test_kfold_is_deterministic_and_plain_kfold_ignores_the_labels() -> None:
    y = multi_hot(4)
    a, b = kfold_split(y, k=4, fold=1, val=0.2, seed=2), kfold_split(y, k=4, fold=1, val=0.2, seed=2)
    assert all(np.array_equal(x, z) for x, z in zip(sets(a), sets(b), strict=True))
    plain = kfold_split(y, k=4, fold=1, val=0.2, seed=2, stratified=False)
    single = kfold_split(np.zeros(N, dtype=np.int64), k=4, fold=1, val=0.2, seed=2, stratified=False)
    assert np.array_equal(plain.test, single.test)  # the folds depend only on the number of rows
    assert_partition(sets(plain), N)


# --- the strategies that only count rows, and the predefined carve ---


def test_random_group_kfold_and_all_rows_take_multi_hot_labels() -> None:
    y = multi_hot(5, n=120)
    assert_partition(sets(random_split(y, **FRACTIONS, seed=0)), 120)
    groups = np.array([f"g{i % 12}" for i in range(120)], dtype=object)
    assert_partition(sets(group_kfold_split(y, k=3, fold=0, val=0.25, seed=0, groups=groups)), 120)
    assert np.array_equal(AllRowsSplit()(y).test, np.arange(120))


def test_predefined_carves_val_from_train_by_iterative_stratification() -> None:
    y = multi_hot(6)
    column = np.array(["train"] * 1500 + ["test"] * 500, dtype=object)
    split = predefined_split(y, val=0.2, seed=0, predefined=column)
    assert np.array_equal(split.test, np.arange(1500, 2000)) and len(split.val) == 300
    assert_partition([split.train, split.val], 1500)
    rates = y[:1500].mean(axis=0)
    assert np.abs(y[split.val].mean(axis=0) - rates).max() < 0.005
