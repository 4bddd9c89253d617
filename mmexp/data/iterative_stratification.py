"""Iterative stratification of multi-label data (Sechidis, Tsoumakas & Vlahavas, ECML PKDD 2011, Algorithm 1).

A per-class cut cannot stratify a multi-hot matrix: a row belongs to several "classes" at once. Algorithm 1
deals the rows label by label, rarest label first (a rare label has the fewest ways to land well, so it
chooses first), each row going to the subset that most needs that label; ties go to the subset that most
needs rows, then are broken at random. Rows without any positive label are dealt last, by the subsets'
remaining desired sizes, which also evens out the sizes the label-driven deal left.

Vectorized per label: within one label, which subset the next row goes to depends only on the two needs,
not on the row, so the whole sequence of choices for that label is computed at once (``_greedy_picks``)
and dealt to the label's rows in a random order. The outer loop runs at most once per label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def iterative_assign(y: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """The subset index (0..len(fractions)-1) of every row of the multi-hot ``y`` (N, K).

    Deterministic for the state of ``rng``. A label with a single positive goes to the subset with the
    largest fraction (ties: the one that most needs rows, then random).
    """
    hot = _as_multi_hot(y)
    ratios = _checked_fractions(fractions)
    n_rows = len(hot)
    need_rows = n_rows * ratios  # c_j: rows subset j still wants
    need_label = np.outer(ratios, hot.sum(axis=0))  # c_j^i: positives of label i subset j still wants
    left = hot.sum(axis=0)  # positives of each label not yet dealt
    unassigned = np.ones(n_rows, dtype=bool)
    subset = np.full(n_rows, -1, dtype=np.int64)
    while (label := _rarest_label(left, rng)) is not None:
        rows = rng.permutation(np.flatnonzero(unassigned & hot[:, label]))
        picks = _greedy_picks(need_label[:, label], need_rows, len(rows), rng)
        subset[rows] = picks
        unassigned[rows] = False
        row_labels = hot[rows].astype(np.float64)
        need_label -= np.eye(len(ratios))[picks].T @ row_labels
        need_rows -= np.bincount(picks, minlength=len(ratios))
        left -= row_labels.sum(axis=0).astype(np.int64)
    rows = rng.permutation(np.flatnonzero(unassigned))  # rows with no positive label
    subset[rows] = _greedy_picks(need_rows, need_rows, len(rows), rng)
    return subset


def _as_multi_hot(y: np.ndarray) -> np.ndarray:
    """A boolean (N, K) matrix; any non-zero entry is a positive (float, bool and int inputs alike)."""
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"iterative stratification needs a 2-D (rows, labels) matrix, got shape {y.shape}")
    return y != 0


def _checked_fractions(fractions: Sequence[float]) -> np.ndarray:
    ratios = np.asarray(fractions, dtype=np.float64)
    if ratios.ndim != 1 or len(ratios) == 0 or (ratios < 0).any() or abs(ratios.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {list(fractions)}")
    return ratios


def _rarest_label(left: np.ndarray, rng: np.random.Generator) -> int | None:
    """The label with the fewest positives still to deal (ties at random); None when all are dealt."""
    if not (left > 0).any():
        return None
    fewest = np.flatnonzero(left == left[left > 0].min())
    return int(fewest[0] if len(fewest) == 1 else rng.choice(fewest))


def _greedy_picks(need: np.ndarray, need_rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The subsets chosen by ``n`` successive greedy steps, each taking one from the neediest subset.

    Step by step: pick argmax of (need, need_rows, random), then lower that subset's need and need_rows
    by one. Subset j's t-th pick has keys (need_j - t, need_rows_j - t), which fall as t grows, so the
    steps take the n lexicographically largest of all (j, t) keys, in that order: one sort, no loop.
    """
    k = len(need)
    steps = np.arange(n)
    by_label = (need[:, None] - steps).ravel()
    by_rows = (need_rows[:, None] - steps).ravel()
    order = np.lexsort((rng.random(k * n), -by_rows, -by_label))[:n]
    return np.repeat(np.arange(k, dtype=np.int64), n)[order]
