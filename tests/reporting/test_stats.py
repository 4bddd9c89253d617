"""The report's statistics against reference values: scipy, hand-computed examples, Nadeau & Bengio (2003)
and Demšar (2006)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as scipy_stats

from mmexp.report import main
from mmexp.reporting.across import across
from mmexp.reporting.groups import analyse, build_groups
from mmexp.reporting.plots import cliques
from mmexp.reporting.runs import find_run_dirs, load_run
from mmexp.reporting.stats import (
    CORRECTED_T,
    PAIRED_T,
    average_ranks,
    confusion_bootstrap,
    confusion_metric,
    friedman,
    holm,
    iman_davenport,
    nemenyi_cd,
    nemenyi_q,
    paired_test,
    summarize,
    wilcoxon,
)
from tests.reporting.test_report import write_run

A = [0.91, 0.85, 0.88, 0.93, 0.80, 0.86]
B = [0.84, 0.86, 0.79, 0.90, 0.70, 0.81]


def test_t_interval_is_scipys_and_bounded_metrics_are_cut_to_their_range() -> None:
    s = summarize(A)
    low, high = scipy_stats.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=scipy_stats.sem(A))
    assert (s.ci_low, s.ci_high, s.ci_method) == (pytest.approx(low), pytest.approx(high), "t")
    assert s.std == pytest.approx(np.std(A, ddof=1))
    wide = summarize([0.99, 0.90], bounds=(0.0, 1.0))  # t with 1 df: 0.945 ± 0.572
    assert wide.ci_high == 1.0 and wide.ci_low == pytest.approx(0.945 - 12.7062047 * 0.045, abs=1e-6)
    assert wide.ci_method == "t, cut to [0, 1]"
    assert summarize([0.5]).ci_low is None and summarize([]) is None
    assert summarize([0.5], single=lambda: (0.4, 0.6)).ci_method == "bootstrap over test rows"


def test_paired_t_and_wilcoxon_are_scipys() -> None:
    test = paired_test(A, B)
    expected = scipy_stats.ttest_rel(A, B)
    assert test.test == PAIRED_T
    assert test.t == pytest.approx(expected.statistic) and test.p == pytest.approx(expected.pvalue)
    assert test.wilcoxon_p == pytest.approx(scipy_stats.wilcoxon(np.subtract(A, B)).pvalue)
    assert wilcoxon([0.0, 0.0]) is None  # no non-zero difference: nothing to rank
    assert paired_test([1.0], [0.0]).p is None and paired_test([], []).pairs == 0
    same = paired_test([0.6, 0.7], [0.5, 0.6])  # identical differences: no spread
    assert same.t == math.inf and same.p == 0.0


def test_corrected_resampled_t_on_a_worked_10_fold_example() -> None:
    """Nadeau & Bengio (2003): 10-fold CV of 100 rows, n_train = 90, n_test = 10.

    d = 0.02, 0.03, 0.01, 0.04, 0.02, 0.00, 0.03, 0.02, 0.01, 0.02: mean 0.02, sum of squared deviations
    12e-4, var 12e-4 / 9. Plain paired t: 0.02 / sqrt(var / 10) = 5.477. Corrected: the variance factor
    1/J = 0.1 becomes 1/J + n_test/n_train = 0.1 + 10/90, so t = 0.02 / sqrt(0.2111 var) = 3.770, df 9.
    """
    d = [0.02, 0.03, 0.01, 0.04, 0.02, 0.00, 0.03, 0.02, 0.01, 0.02]
    base = [0.5] * 10
    a = [0.5 + x for x in d]
    plain = paired_test(a, base)
    assert plain.t == pytest.approx(5.477, abs=1e-3)
    corrected = paired_test(a, base, test_ratio=10 / 90)
    assert corrected.test == CORRECTED_T and corrected.test_ratio == pytest.approx(10 / 90)
    assert corrected.t == pytest.approx(0.02 / math.sqrt((1 / 10 + 10 / 90) * 12e-4 / 9))
    assert corrected.t == pytest.approx(3.770, abs=1e-3)
    assert corrected.p == pytest.approx(2 * scipy_stats.t.sf(3.7697, 9), rel=1e-3)
    assert corrected.p == pytest.approx(0.0044, abs=1e-4)
    assert corrected.p > plain.p  # the correction is the conservative side


def test_holm_step_down_on_a_hand_computed_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept monotone: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([None, 0.5, 0.4]) == [None, pytest.approx(0.8), pytest.approx(0.8)]  # None is not a test
    assert holm([0.6, 0.7]) == [1.0, 1.0] and holm([]) == []


def test_holm_is_applied_across_every_comparison_of_a_report(tmp_path: Path) -> None:
    for seed, diff in enumerate((0.10, 0.30, 0.20)):
        write_run(tmp_path / f"base{seed}", fusion="image_only", fold=0, seed=seed, f1=0.5)
        write_run(tmp_path / f"x{seed}", fusion="concat", fold=0, seed=seed, f1=0.5 + diff)
        write_run(tmp_path / f"y{seed}", fusion="late", fold=0, seed=seed, f1=0.5 + diff / 10 - 0.01 * seed)
    report = analyse(
        [load_run(d) for d in find_run_dirs([tmp_path])], metric="f1_macro", baseline=None, ignore=("seed",)
    )
    raw = [c.test.p for c in report.comparisons]
    assert [c.test.p_holm for c in report.comparisons] == pytest.approx(holm(raw))
    assert all(c.test.p_holm >= c.test.p for c in report.comparisons)


def test_confusion_matrix_metrics_match_torchmetrics_and_the_bootstrap_is_reproducible() -> None:
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import multiclass_f1_score, multiclass_precision

    # class 3 never occurs (neither true nor predicted): torchmetrics leaves it out of the macro mean
    matrix = np.array([[30, 5, 2, 0], [4, 20, 6, 0], [1, 3, 29, 0], [0, 0, 0, 0]])
    true = torch.tensor([i for i in range(4) for j in range(4) for _ in range(matrix[i, j])])
    pred = torch.tensor([j for i in range(4) for j in range(4) for _ in range(matrix[i, j])])
    f1 = float(multiclass_f1_score(pred, true, num_classes=4, average="macro"))
    precision = float(multiclass_precision(pred, true, num_classes=4, average="macro"))
    assert float(confusion_metric("test/f1_macro")(matrix.astype(float))) == pytest.approx(f1, abs=1e-6)
    assert float(confusion_metric("test/precision_macro")(matrix.astype(float))) == pytest.approx(precision, abs=1e-6)
    assert confusion_metric("test/auroc") is None and confusion_metric("test/loss") is None
    interval = confusion_bootstrap(matrix.tolist(), "test/f1_macro", f1)
    assert interval is not None and interval[0] < f1 < interval[1]
    assert confusion_bootstrap(matrix.tolist(), "test/f1_macro", f1) == interval  # fixed seed
    assert confusion_bootstrap(matrix.tolist(), "test/f1_macro", f1 + 0.01) is None  # other rows
    assert confusion_bootstrap([[1, 2], [3]], "test/acc", 0.5) is None  # not a matrix
    assert confusion_bootstrap([[1, -2], [3, 4]], "test/acc", 0.5) is None


def test_accuracy_bootstrap_agrees_with_the_binomial_standard_error() -> None:
    matrix = [[450, 50], [100, 400]]  # 1000 rows, accuracy 0.85
    low, high = confusion_bootstrap(matrix, "test/acc", 0.85)
    half = 1.959964 * math.sqrt(0.85 * 0.15 / 1000)
    assert low == pytest.approx(0.85 - half, abs=0.004) and high == pytest.approx(0.85 + half, abs=0.004)


def test_demsar_2006_worked_example() -> None:
    """Demšar (2006), section 3.2.4: four C4.5 variants on 14 data sets, average ranks 3.143, 2.000, 2.893,
    1.964; chi2_F = 9.28, F_F = 3.69; q_0.05 = 2.569 for k = 4, CD = 2.569 sqrt(4 * 5 / (6 * 14)) = 1.25."""
    ranks, n, k = [3.143, 2.000, 2.893, 1.964], 14, 4
    chi2 = 12 * n / (k * (k + 1)) * (sum(r * r for r in ranks) - k * (k + 1) ** 2 / 4)
    assert chi2 == pytest.approx(9.28, abs=0.02)
    f, _ = iman_davenport(9.28, n, k)
    assert f == pytest.approx(3.69, abs=0.01)
    assert nemenyi_cd(4, 14) == pytest.approx(1.25, abs=0.005)
    # Demšar's table 5(a), q_0.05 for k = 2..10
    table = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    assert [nemenyi_q(k) for k in range(2, 11)] == pytest.approx(table, abs=1.5e-3)


def test_friedman_and_ranks_match_scipy_and_the_rank_formula() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random((7, 4))  # no ties: scipy's tie correction is 1
    result = friedman(scores)
    expected = scipy_stats.friedmanchisquare(*scores.T)
    assert result.chi2 == pytest.approx(expected.statistic) and result.p == pytest.approx(expected.pvalue)
    ranks = average_ranks(scores, lower_is_better=False)
    assert ranks == pytest.approx(scipy_stats.rankdata(-scores, axis=1).mean(axis=0))
    n, k = scores.shape
    assert result.chi2 == pytest.approx(12 * n / (k * (k + 1)) * (np.sum(ranks**2) - k * (k + 1) ** 2 / 4))
    assert result.f_p == pytest.approx(scipy_stats.f.sf(result.f, k - 1, (k - 1) * (n - 1)))
    ties = average_ranks(np.array([[0.9, 0.9, 0.8], [0.7, 0.8, 0.9]]), lower_is_better=False)
    assert ties == pytest.approx([(1.5 + 3) / 2, (1.5 + 2) / 2, (3 + 1) / 2])
    assert average_ranks(np.array([[1.0, 2.0, 3.0]]), lower_is_better=True) == pytest.approx([1, 2, 3])
    assert friedman(scores[:, :2]) is None  # two methods: Friedman needs three
    tied = friedman(np.ones((3, 3)))  # every method ties on every dataset: nothing to tell apart
    assert (tied.chi2, tied.p, tied.f) == (0.0, 1.0, None)


def test_cliques_join_methods_within_the_critical_difference() -> None:
    assert cliques([1.0, 1.5, 2.0, 3.5], cd=1.2) == [(0, 2)]
    assert cliques([1.0, 1.5, 2.4, 3.0], cd=1.0) == [(0, 1), (1, 2), (2, 3)]
    assert cliques([1.0, 3.0], cd=1.0) == []


SCORES = {  # dataset -> fusion -> f1 (seed 0; seed 1 adds 0.01)
    "redundant": {"concat": 0.90, "late": 0.85, "image_only": 0.80},
    "synergy": {"concat": 0.70, "late": 0.50, "image_only": 0.50},
    "unique_text": {"concat": 0.88, "late": 0.90, "image_only": 0.50},
    "conjunction": {"concat": 0.95, "late": 0.75, "image_only": 0.60},
}


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {row["group"]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("mode", ["paths", "key"])
def test_across_datasets_ranks_friedman_and_cd_diagram(tmp_path: Path, mode: str, capsys) -> None:
    paths = []
    for dataset, by_fusion in SCORES.items():
        root = tmp_path / (dataset if mode == "paths" else "sweep")
        extra = () if mode == "paths" else (f"data.synthetic.interaction={dataset}",)
        for fusion, f1 in by_fusion.items():
            for seed in (0, 1):
                name = f"{dataset}_{fusion}_{seed}"
                write_run(root / name, fusion=fusion, fold=0, seed=seed, f1=f1 + 0.01 * seed, extra=extra)
        paths.append(str(root))
    args = [*paths, "--across"] if mode == "paths" else [paths[0], "--across", "data.synthetic.interaction"]
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 0
    table = np.array([[v + 0.005 for v in SCORES[d].values()] for d in sorted(SCORES)])
    expected = scipy_stats.friedmanchisquare(*table.T)
    md = (out / "report.md").read_text()
    section = md.split("## Across datasets")[1].split("## Ranking")[0]
    # methods in name order: concat, image_only, late; ranks per dataset 1 = best, ties averaged
    assert (
        "| dataset | fusion=concat,split=kfold | fusion=image_only,split=kfold | fusion=late,split=kfold |" in section
    )
    assert "| synergy | 0.705 (1) | 0.505 (2.5) | 0.505 (2.5) |" in section
    assert "| average rank | 1.250 | 2.875 | 1.875 |" in section
    assert f"Friedman χ² = {expected.statistic:.3f} (df 2, N = 4 datasets), p = {expected.pvalue:.3f}" in section
    assert f"CD = {nemenyi_cd(3, 4):.3f}" in section
    assert (out / "cd_diagram.png").read_bytes().startswith(b"\x89PNG")
    with (out / "report_across.csv").open(newline="") as f:
        rows_across = list(csv.DictReader(f))
    assert len(rows_across) == 4 * 3 + 3
    average = {r["method"]: float(r["rank"]) for r in rows_across if r["dataset"] == "(average rank)"}
    assert average["fusion=concat,split=kfold"] == pytest.approx(1.25)
    assert float(rows_across[0]["friedman_chi2"]) == pytest.approx(expected.statistic)
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 4  # + the CD diagram
    # each group is compared with the baseline of its own dataset
    rows = read_csv(out / "report.csv")
    concat_synergy = next(row for g, row in rows.items() if "concat" in g and "synergy" in g)
    assert "synergy" in concat_synergy["baseline"] and "image_only" in concat_synergy["baseline"]
    assert float(concat_synergy["mean_diff"]) == pytest.approx(0.2)


def test_across_leaves_out_methods_missing_from_a_dataset(tmp_path: Path) -> None:
    for dataset in ("a", "b"):
        for fusion in ("concat", "late", "image_only") if dataset == "a" else ("concat", "late"):
            write_run(tmp_path / dataset / fusion, fusion=fusion, fold=0, extra=(f"data.name={dataset}",))
    runs = [load_run(d) for d in find_run_dirs([tmp_path])]
    result = across(runs, key="data.name", metric="test/f1_macro", ignore=("seed", "split.fold"))
    assert result.datasets == ["a", "b"] and result.left_out == ["fusion=image_only,split=kfold"]
    assert result.friedman is None  # two methods


def test_plus_prefixes_do_not_split_or_name_groups(tmp_path: Path) -> None:
    write_run(tmp_path / "a", fusion="concat", fold=0, extra=("+model.extra=1",))
    write_run(tmp_path / "b", fusion="concat", fold=1, extra=("++model.extra=1",))
    runs = [load_run(d) for d in find_run_dirs([tmp_path])]
    [group] = build_groups(runs, metric="test/f1_macro", ignore=("seed", "split.fold"))
    assert group.name == "fusion=concat,model.extra=1,split=kfold" and len(group.runs) == 2


def test_html_tables_scroll_in_their_own_box_and_names_wrap_after_commas(tmp_path: Path) -> None:
    write_run(tmp_path / "a", fusion="concat", fold=0)
    assert main([str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text()
    assert '<div class="scroll"><table>' in html and "overflow-x: auto" in html
    assert '<td class="text">fusion=concat,<wbr>split=kfold</td>' in html
    assert json.loads((tmp_path / "a" / "run_info.json").read_text())["status"] == "completed"
