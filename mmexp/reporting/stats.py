"""The report's statistics, on ``scipy.stats`` (docs/statistics.md says which test is used when, and why).

- ``summarize``: mean, std and a 95% interval of the mean over runs: Student t, cut to the metric's range
  for bounded metrics (the true mean lies in the range, so the cut keeps the coverage); for a single run,
  a percentile bootstrap over the test rows, resampled from the confusion matrix (``confusion_bootstrap``).
- ``paired_test``: paired t-test over runs that share their split (seeds only), or the corrected resampled
  t-test of Nadeau & Bengio (2003) when the pairs are different resamplings of the data (k-fold folds, split
  seeds), since those share training rows; Wilcoxon signed-rank beside it.
- ``holm``: Holm's step-down adjustment of the p-values of all comparisons with the baseline.
- ``friedman`` / ``nemenyi_cd``: methods over several datasets (Demšar 2006): average ranks, Friedman's
  chi-square with the Iman-Davenport F, and the Nemenyi critical difference of average ranks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # every bootstrap is deterministic: the same runs give the same report


@dataclass(frozen=True)
class Summary:
    """Mean over runs; ``std`` is None with fewer than two values, the interval None when there is none.

    ``ci_method``: ``"t"`` (Student t), ``"t, cut to [0, 1]"`` (a bound of the t interval lay outside the
    metric's range), ``"bootstrap over test rows"`` (one run), or None.
    """

    n: int
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None
    ci_method: str | None = None


PAIRED_T = "paired t (seeds)"
CORRECTED_T = "corrected resampled t (k-fold)"
CORRECTED_T_SPLITS = "corrected resampled t (resampled splits)"


@dataclass(frozen=True)
class PairedTest:
    """Paired differences ``a - b``; ``t`` and ``p`` are None with fewer than two pairs.

    ``test`` names the t-test used (``PAIRED_T`` or ``CORRECTED_T*``); ``test_ratio`` is n_test / n_train of
    the corrected test; ``wilcoxon_p`` is the two-sided Wilcoxon signed-rank p (None without a non-zero
    difference); ``p_holm`` is filled in by ``holm`` over all comparisons.
    """

    pairs: int
    mean_diff: float | None
    t: float | None
    p: float | None
    test: str = PAIRED_T
    test_ratio: float | None = None
    wilcoxon_p: float | None = None
    p_holm: float | None = None


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided Student-t interval of the mean (needs two or more values)."""
    arr = np.asarray(values, dtype=float)
    half = float(stats.t.ppf(0.5 + confidence / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
    mean = float(arr.mean())
    return mean - half, mean + half


def summarize(
    values: Sequence[float],
    confidence: float = CONFIDENCE,
    *,
    bounds: tuple[float, float] | None = None,
    single: Callable[[], tuple[float, float] | None] | None = None,
) -> Summary | None:
    """Mean, sample std (ddof=1) and an interval of the mean.

    Two or more values: the Student-t interval, cut to ``bounds`` when given. One value: ``single()`` (a
    bootstrap over the run's test rows) when given, else no interval.
    """
    kept = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(kept)
    if n == 0:
        return None
    mean = math.fsum(kept) / n
    if n < 2:
        interval = single() if single is not None else None
        if interval is None:
            return Summary(n, mean, None, None, None)
        return Summary(n, mean, None, interval[0], interval[1], "bootstrap over test rows")
    std = float(np.std(kept, ddof=1))
    low, high = t_interval(kept, confidence)
    method = "t"
    if bounds is not None and (low < bounds[0] or high > bounds[1]):
        low, high = max(low, bounds[0]), min(high, bounds[1])
        method = f"t, cut to [{bounds[0]:g}, {bounds[1]:g}]"
    return Summary(n, mean, std, low, high, method)


def paired_test(
    a: Sequence[float], b: Sequence[float], *, test_ratio: float | None = None, kind: str = CORRECTED_T
) -> PairedTest:
    """Two-sided test of mean(a - b) = 0, plus the Wilcoxon signed-rank p.

    ``test_ratio`` None: the paired t-test (``scipy.stats.ttest_rel``). Otherwise the corrected resampled
    t-test (Nadeau & Bengio 2003): t = mean(d) / sqrt((1/J + n_test/n_train) var(d)), df = J - 1, where J is
    the number of pairs and ``test_ratio`` = n_test / n_train; ``kind`` names it.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n == 0:
        return PairedTest(0, None, None, None)
    mean = float(d.mean())
    name = PAIRED_T if test_ratio is None else kind
    if n < 2:
        return PairedTest(n, mean, None, None, name, test_ratio)
    wilcoxon_p = wilcoxon(d)
    var = float(d.var(ddof=1))
    if math.sqrt(var) <= 1e-9 * float(np.abs(d).max()):  # identical differences (up to rounding): no spread
        var = 0.0
    if var == 0.0:
        t = math.copysign(math.inf, mean) if mean else 0.0
        return PairedTest(n, mean, t, 0.0 if mean else 1.0, name, test_ratio, wilcoxon_p)
    if test_ratio is None:
        result = stats.ttest_rel(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
        return PairedTest(n, mean, float(result.statistic), float(result.pvalue), name, None, wilcoxon_p)
    t = mean / math.sqrt((1.0 / n + test_ratio) * var)
    p = float(2 * stats.t.sf(abs(t), n - 1))
    return PairedTest(n, mean, t, p, name, test_ratio, wilcoxon_p)


def wilcoxon(d: Sequence[float] | np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p of the differences ``d`` (zeros dropped); None when all are zero."""
    arr = np.asarray(d, dtype=float)
    if not np.any(arr != 0):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that the sample is small; the exact test handles that
        p = float(stats.wilcoxon(arr, zero_method="wilcox").pvalue)
    return p if math.isfinite(p) else None


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni step-down adjusted p-values (None stays None and does not count as a test).

    Sorted ascending p_(1) <= ... <= p_(m): adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)).
    """
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        out[i] = running
    return out


# ---- one run: bootstrap over its test rows, resampled from the confusion matrix


def confusion_metric(name: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """The metric as a function of confusion-matrix counts (..., C, C), rows = true class; None if not one.

    Macro averages skip classes that are neither in the labels nor in the predictions, as torchmetrics does.
    """
    short = name.rsplit("/", 1)[-1]

    def acc(m: np.ndarray) -> np.ndarray:
        return np.trace(m, axis1=-2, axis2=-1) / m.sum(axis=(-2, -1))

    def macro(kind: str) -> Callable[[np.ndarray], np.ndarray]:
        def f(m: np.ndarray) -> np.ndarray:
            tp = np.diagonal(m, axis1=-2, axis2=-1)
            true, pred = m.sum(axis=-1), m.sum(axis=-2)
            denom = {"precision": pred, "recall": true, "f1": true + pred}[kind]
            score = np.divide((2 if kind == "f1" else 1) * tp, denom, out=np.zeros(tp.shape), where=denom > 0)
            present = (true + pred) > 0
            return (score * present).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)

        return f

    if short in ("acc", "f1_micro", "precision_micro", "recall_micro"):
        return acc  # single-label: micro precision = micro recall = micro F1 = accuracy
    kind = short.removesuffix("_macro")
    return macro(kind) if short.endswith("_macro") and kind in ("precision", "recall", "f1") else None


def confusion_bootstrap(
    matrix: Sequence[Sequence[float]],
    metric: str,
    reported: float,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``metric`` over the test rows of one run.

    Resampling N test rows with replacement is drawing the confusion-matrix cells from a multinomial with the
    cells' frequencies, so the counts are enough. None when the metric is not a function of the matrix, or
    the matrix does not give back the ``reported`` value (it then describes other rows).
    """
    f = confusion_metric(metric)
    try:
        counts = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError):  # ragged or not numbers: not a matrix
        return None
    square = counts.ndim == 2 and counts.shape[0] == counts.shape[1]
    if f is None or not square or not np.all(np.isfinite(counts)) or np.any(counts < 0):
        return None
    if (total := int(counts.sum())) < 1:
        return None
    if abs(float(f(counts)) - reported) > 1e-4:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(total, counts.ravel() / counts.sum(), size=resamples).reshape(resamples, *counts.shape)
    values = f(draws.astype(float))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


# ---- several datasets (Demšar 2006)


def average_ranks(scores: np.ndarray, *, lower_is_better: bool) -> np.ndarray:
    """Rank the methods (columns) within each dataset (row), 1 = best, ties averaged; mean over datasets."""
    scores = np.asarray(scores, dtype=float)
    ranks = stats.rankdata(scores if lower_is_better else -scores, axis=1)
    return np.asarray(ranks.mean(axis=0))


@dataclass(frozen=True)
class Friedman:
    """Friedman's test over N datasets (rows) and k methods (columns), with Iman and Davenport's F."""

    datasets: int
    methods: int
    chi2: float
    p: float
    f: float | None
    f_p: float | None


def friedman(scores: np.ndarray) -> Friedman | None:
    """``scipy.stats.friedmanchisquare`` over the methods (needs k >= 3 methods and N >= 2 datasets).

    Iman-Davenport: F = (N - 1) chi2 / (N (k - 1) - chi2) with (k - 1, (k - 1)(N - 1)) degrees of freedom,
    less conservative than chi2 (Demšar 2006, section 3.2.2); None when chi2 reaches its maximum.
    """
    scores = np.asarray(scores, dtype=float)
    n, k = scores.shape
    if k < 3 or n < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.friedmanchisquare(*scores.T)
    chi2, p = float(result.statistic), float(result.pvalue)
    if not math.isfinite(chi2):  # every dataset ties every method
        return Friedman(n, k, 0.0, 1.0, None, None)
    f, f_p = iman_davenport(chi2, n, k)
    return Friedman(n, k, chi2, p, f, f_p)


def iman_davenport(chi2: float, datasets: int, methods: int) -> tuple[float | None, float | None]:
    """Iman and Davenport's F from Friedman's chi2, and its p (None, None when the denominator is 0)."""
    n, k = datasets, methods
    denom = n * (k - 1) - chi2
    if denom <= 0:
        return None, None
    f = (n - 1) * chi2 / denom
    return f, float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))


def nemenyi_q(methods: int, alpha: float = ALPHA) -> float:
    """q_alpha of the Nemenyi test: the studentized range quantile (infinite df) over sqrt(2)."""
    return float(stats.studentized_range.ppf(1 - alpha, methods, np.inf) / math.sqrt(2))


def nemenyi_cd(methods: int, datasets: int, alpha: float = ALPHA) -> float:
    """Critical difference of average ranks: CD = q_alpha sqrt(k (k + 1) / (6 N))."""
    k = methods
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * datasets))
