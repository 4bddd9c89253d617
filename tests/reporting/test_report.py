"""`python -m mmexp.report`: grouping, statistics, paired tests and the files it writes."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.stats as scipy_stats
import yaml

from mmexp.report import main
from mmexp.reporting.groups import analyse
from mmexp.reporting.runs import find_run_dirs, load_run, read_curves
from mmexp.reporting.stats import CORRECTED_T, PAIRED_T
from tests.conftest import run_cli

LABELS = ["cat", "dog"]
# test/f1_macro per (fusion, fold); the paired differences concat - image_only are 0.30 and 0.20.
F1 = {("concat", 0): 0.80, ("concat", 1): 0.90, ("image_only", 0): 0.50, ("image_only", 1): 0.70}
LOSS = {("concat", 0): 1.00, ("concat", 1): 1.20, ("image_only", 0): 0.50, ("image_only", 1): 0.30}


def write_run(
    run_dir: Path,
    *,
    fusion: str,
    fold: int | None,
    seed: int = 0,
    f1: float = 0.5,
    loss: float = 1.0,
    status: str = "completed",
    with_metrics: bool = True,
    extra: tuple[str, ...] = (),
) -> Path:
    """A run dir as mmexp.train writes it, with known numbers; ``extra``: more overrides."""
    overrides = [f"fusion={fusion}", "split=kfold", f"seed={seed}"] + ([] if fold is None else [f"split.fold={fold}"])
    overrides += list(extra)
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    split = {"k": 5, "seed": 0, **({} if fold is None else {"fold": fold})}
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "split": split}))
    info = {"status": status, "seed": seed, "overrides": overrides, "device": "cpu"}
    (run_dir / "run_info.json").write_text(json.dumps(info))
    if not with_metrics:
        return run_dir
    metrics = {
        "val": {"val/f1_macro": f1},
        "test": {"test/f1_macro": f1, "test/acc": f1 + 0.05, "test/loss": loss},
        "test_per_class": {"f1": {"cat": f1 - 0.1, "dog": f1 + 0.1}},
        "confusion_matrix": [[8, 2], [1, 9]],
        "labels": LABELS,
        "best_checkpoint": None,
        "epochs": 2,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "csv").mkdir()
    (run_dir / "csv" / "metrics.csv").write_text(
        "epoch,step,train/loss_step,val/acc,val/f1_macro\n"
        ",0,1.5,,\n0,1,,0.4,0.3\n0,1,1.2,,\n1,2,,0.6,0.5\n"
        "2,2,,0.9,0.9\n"
    )  # the last row is the post-fit re-validation at epoch == epochs
    return run_dir


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """2 fusions x 2 folds, plus one failed run, laid out like a Hydra multirun dir."""
    root = tmp_path / "multirun" / "2026-01-01_00-00-00-000000"
    for i, (fusion, fold) in enumerate(F1):
        write_run(
            root / f"{i}_fusion={fusion},split.fold={fold}",
            fusion=fusion,
            fold=fold,
            f1=F1[fusion, fold],
            loss=LOSS[fusion, fold],
        )
    write_run(root / "4_fusion=gated", fusion="gated", fold=0, status="failed", with_metrics=False)
    return root


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {row["group"]: row for row in csv.DictReader(f)}


def test_groups_have_hand_computed_means_stds_cis_and_ranks(sweep: Path, capsys) -> None:
    assert main([str(sweep)]) == 0
    rows = read_csv(sweep / "report.csv")
    assert list(rows) == ["fusion=concat,split=kfold", "fusion=image_only,split=kfold"]  # ranked by f1
    concat, image = rows["fusion=concat,split=kfold"], rows["fusion=image_only,split=kfold"]
    assert (concat["n"], concat["rank"], image["n"], image["rank"]) == ("2", "1", "2", "2")
    assert float(concat["test/f1_macro_mean"]) == pytest.approx(0.85)
    assert float(concat["test/f1_macro_std"]) == pytest.approx(math.sqrt(0.005))
    half = 12.7062047 * math.sqrt(0.005) / math.sqrt(2)  # t_{0.975, df=1}
    assert float(concat["test/f1_macro_ci_low"]) == pytest.approx(0.85 - half, abs=1e-6)
    assert float(concat["test/f1_macro_ci_high"]) == 1.0  # 0.85 + half > 1: F1 is a fraction, the CI stops at 1
    assert concat["test/f1_macro_ci_method"] == "t, cut to [0, 1]"
    assert float(image["test/loss_ci_low"]) < 0  # the loss is not bounded: its t interval is not cut
    assert float(image["test/f1_macro_mean"]) == pytest.approx(0.60)
    assert float(image["test/acc_mean"]) == pytest.approx(0.65)
    out = capsys.readouterr().out
    assert "| 1 | fusion=concat | 2 | 0.850 ± 0.071 [" in out  # the markdown table on stdout (val first)


def test_loss_ranks_lower_first(sweep: Path) -> None:
    assert main([str(sweep), "--metric", "test/loss"]) == 0
    rows = read_csv(sweep / "report.csv")
    assert list(rows) == ["fusion=image_only,split=kfold", "fusion=concat,split=kfold"]
    assert "test/loss (lower is better)" in (sweep / "report.md").read_text()


def test_folds_are_compared_with_the_corrected_resampled_t_test(sweep: Path) -> None:
    report = analyse(
        [load_run(d) for d in find_run_dirs([sweep])],
        metric="test/f1_macro",
        baseline=None,
        ignore=("seed", "split.fold", "split.seed"),
    )
    assert report.baseline.name == "fusion=image_only,split=kfold"
    [comparison] = report.comparisons
    test = comparison.test
    assert comparison.group == "fusion=concat,split=kfold" and test.pairs == 2
    assert test.mean_diff == pytest.approx(0.25)
    # Nadeau-Bengio: differences 0.3, 0.2 (var 0.005), J = 2, no split.json so n_test/n_train from k=5: 1/4
    assert test.test == CORRECTED_T and test.test_ratio == pytest.approx(0.25)
    t = 0.25 / math.sqrt((1 / 2 + 1 / 4) * 0.005)
    assert test.t == pytest.approx(t)
    assert test.p == pytest.approx(1 - 2 / math.pi * math.atan(t))  # t with 1 df is Cauchy
    assert test.p_holm == pytest.approx(test.p)  # one comparison: Holm changes nothing
    assert test.wilcoxon_p == pytest.approx(0.5)  # exact: 2 positive differences


def test_seeds_on_one_split_use_the_paired_t_test_and_split_json_sets_the_ratio(tmp_path: Path) -> None:
    diffs = {0: 0.1, 1: 0.3, 2: 0.2}
    for seed, diff in diffs.items():
        write_run(tmp_path / f"a{seed}", fusion="image_only", fold=0, seed=seed, f1=0.5)
        write_run(tmp_path / f"b{seed}", fusion="concat", fold=0, seed=seed, f1=0.5 + diff)
    for fold in (1, 2):  # the same three seeds on other folds: now the pairs differ by fold
        for name, f1 in (("image_only", 0.5), ("concat", 0.6 + 0.1 * fold)):
            run = write_run(tmp_path / f"{name}{fold}", fusion=name, fold=fold, seed=0, f1=f1)
            (run / "split.json").write_text(json.dumps({"train": list(range(60)), "val": [], "test": list(range(20))}))
    runs = [load_run(d) for d in find_run_dirs([tmp_path])]
    seeds = analyse([r for r in runs if r.fold == 0], metric="f1_macro", baseline=None, ignore=("seed",))
    [c] = seeds.comparisons
    expected = scipy_stats.ttest_rel([0.5 + d for d in diffs.values()], [0.5] * 3)
    assert c.test.test == PAIRED_T and c.test.pairs == 3 and c.test.test_ratio is None
    assert c.test.t == pytest.approx(expected.statistic) and c.test.p == pytest.approx(expected.pvalue)
    folds = analyse(runs, metric="f1_macro", baseline=None, ignore=("seed", "split.fold"))
    [c] = folds.comparisons
    assert c.test.test == CORRECTED_T and c.test.pairs == 5  # (seed, fold): (0,0) (1,0) (2,0) (0,1) (0,2)
    # split.json of the fold-1/2 runs: 20 test / 60 train rows; the fold-0 runs have none and are skipped
    assert c.test.test_ratio == pytest.approx(20 / 60)


def test_pairs_need_matching_folds_and_fewer_than_two_say_na(sweep: Path) -> None:
    write_run(sweep / "5_fusion=attention", fusion="attention", fold=0, f1=0.7)
    write_run(sweep / "6_fusion=attention", fusion="attention", fold=3, f1=0.9)  # no baseline run on fold 3
    assert main([str(sweep), "--baseline", "fusion=image_only,split=kfold"]) == 0
    md = (sweep / "report.md").read_text()
    assert "| fusion=attention | paired t (seeds) | 1 | +0.200 | n/a | n/a | n/a | n/a |" in md
    rows = read_csv(sweep / "report.csv")
    assert rows["fusion=attention,split=kfold"]["pairs"] == "1"
    assert rows["fusion=attention,split=kfold"]["p_value"] == ""


def test_failed_and_incomplete_runs_are_listed_not_dropped(sweep: Path) -> None:
    write_run(sweep / "7_fusion=film", fusion="film", fold=0, status="running", with_metrics=False)
    write_run(sweep / "8_fusion=late", fusion="late", fold=0, with_metrics=False)
    assert main([str(sweep)]) == 0
    md = (sweep / "report.md").read_text()
    failed = md.split("## Failed / incomplete runs")[1]
    assert "| 4_fusion=gated | failed | fusion=gated,split=kfold,seed=0,split.fold=0 |" in failed
    assert "| 7_fusion=film | running |" in failed
    assert "| 8_fusion=late | completed, but no metrics.json |" in failed
    assert "gated" not in md.split("## Failed")[0]  # not a group
    assert "Failed / incomplete runs" in (sweep / "report.html").read_text()


def test_html_is_self_contained_with_inline_images(sweep: Path) -> None:
    assert main([str(sweep)]) == 0
    html = (sweep / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 3  # bar chart, learning curves, confusion matrices
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert "http" not in without_images and "<script" not in without_images and "<link" not in without_images
    assert "Per-class scores" in html and "<th>support</th>" in html and '<td class="text">cat</td>' in html


def test_csv_has_a_row_per_group_and_the_documented_columns(sweep: Path) -> None:
    assert main([str(sweep), "--out", str(sweep.parent / "elsewhere")]) == 0
    with (sweep.parent / "elsewhere" / "report.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert len(rows) == 2
    for metric in ("test/f1_macro", "test/acc", "test/loss"):
        for stat in ("mean", "std", "ci_low", "ci_high"):
            assert f"{metric}_{stat}" in reader.fieldnames
    assert {"group", "n", "rank", "baseline", "pairs", "mean_diff", "p_value"} <= set(reader.fieldnames)
    assert {"test", "test_ratio", "t", "p_holm", "p_wilcoxon", "test/f1_macro_ci_method"} <= set(reader.fieldnames)


def test_a_single_run_gets_a_bootstrap_interval_over_its_test_rows(tmp_path: Path, capsys) -> None:
    # acc 0.85 is what the confusion matrix [[8, 2], [1, 9]] gives: its interval is a bootstrap over the 20
    # test rows; F1 0.80 is not the matrix's (0.850), so the matrix describes other rows and F1 gets none
    run = write_run(tmp_path / "run", fusion="concat", fold=None, f1=0.80)
    assert main([str(run)]) == 0
    out = capsys.readouterr().out
    # val/f1_macro, test/f1_macro: a validation score gets no bootstrap (the matrix holds the test rows)
    assert "| 1 | fusion=concat,split=kfold | 1 | 0.800 ± – | 0.800 ± – |" in out
    html = (run / "report.html").read_text()  # all test metrics, with intervals
    assert re.search(r'0\.850<span class="ci">± –</span><span class="ci">\[0\.\d{3}, 1\.000\]</span>', html)
    row = read_csv(run / "report.csv")["fusion=concat,split=kfold"]
    assert row["test/f1_macro_std"] == row["test/f1_macro_ci_low"] == ""
    assert row["test/acc_ci_method"] == "bootstrap over test rows" and 0.6 < float(row["test/acc_ci_low"]) < 0.85
    assert (run / "report.html").exists()


def test_no_run_dirs_is_one_clear_line_and_exit_code_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "empty")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmexp.report: error: no run directories") and "\n" not in err
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "missing")])
    assert e.value.code == 2


def test_unknown_baseline_or_metric_names_the_choices(sweep: Path, capsys) -> None:
    for args in (["--baseline", "fusion=nope"], ["--metric", "test/nope"]):
        with pytest.raises(SystemExit) as e:
            main([str(sweep), *args])
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "fusion=concat,split=kfold" in err and "test/f1_macro" in err


def test_curves_skip_the_post_fit_revalidation(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", fusion="concat", fold=0)
    assert read_curves(run / "csv" / "metrics.csv", epochs=2) == {
        "val/f1_macro": {0: 0.3, 1: 0.5},
        "val/acc": {0: 0.4, 1: 0.6},
    }


def test_importing_the_cli_loads_neither_matplotlib_nor_torch() -> None:
    code = "import sys, mmexp.report; print(sorted({'matplotlib', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_real_sweep_end_to_end(tmp_path: Path) -> None:
    train = run_cli(
        "mmexp.train",
        "-m",
        "fusion=concat,image_only",
        "split=kfold",
        "split.fold=0,1",
        "debug=fast",
        "logger=csv",
        f"paths.output_dir={tmp_path}",
        f"paths.cache_dir={tmp_path}/cache",
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    first = next((tmp_path / "multirun").rglob("run_info.json")).parent
    shutil.copytree(first, tmp_path / "multirun" / "copy_of_a_run")  # the same run, counted once
    report = run_cli("mmexp.report", str(tmp_path / "multirun"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Counted once: 1 run dir(s)" in report.stderr and "copy_of_a_run = " in report.stderr
    md = (tmp_path / "multirun" / "report.md").read_text()
    assert "Ranked and chosen by val/f1_macro" in md and "## Ranking\n" in md  # one dataset: folds share its rows
    expected: dict[str, list[float]] = {}
    for info_path in (tmp_path / "multirun").rglob("run_info.json"):
        if info_path.parent.name == "copy_of_a_run":
            continue
        fusion = next(o for o in json.loads(info_path.read_text())["overrides"] if o.startswith("fusion="))
        metrics = json.loads((info_path.parent / "metrics.json").read_text())
        expected.setdefault(f"{fusion},split=kfold", []).append(metrics["test"]["test/f1_macro"])
    rows = read_csv(tmp_path / "multirun" / "report.csv")
    assert set(rows) == set(expected) and len(rows) == 2
    for group, values in expected.items():
        assert rows[group]["n"] == "2"
        assert float(rows[group]["test/f1_macro_mean"]) == pytest.approx(sum(values) / 2)
    assert rows["fusion=concat,split=kfold"]["pairs"] == "2"  # folds pair up against image_only
    # folds share training rows: the corrected resampled t-test, with n_test / n_train from the runs' split.json
    splits = [json.loads(p.read_text()) for p in (tmp_path / "multirun").rglob("split.json")]
    ratio = sum(len(s["test"]) / len(s["train"]) for s in splits) / len(splits)
    assert rows["fusion=concat,split=kfold"]["test"] == CORRECTED_T
    assert float(rows["fusion=concat,split=kfold"]["test_ratio"]) == pytest.approx(ratio)
    assert (tmp_path / "multirun" / "report.html").read_text().count("data:image/png;base64,") == 3


def test_runs_without_overrides_form_the_default_group_and_ignore_is_configurable(sweep: Path) -> None:
    runs = [load_run(d) for d in find_run_dirs([sweep])]
    by_fold = analyse(runs, metric="f1_macro", baseline=None, ignore=("seed",))
    assert len(by_fold.groups) == 4 and all(len(g.runs) == 1 for g in by_fold.groups)
    everything = analyse(runs, metric="f1_macro", baseline=None, ignore=("*",))
    assert [(g.name, len(g.runs)) for g in everything.groups] == [("(default)", 4)]
    assert everything.comparisons == [] and len(everything.failed) == 1


def write_eval(eval_dir: Path, *, fusion: str, acc: list[float], no_image: float, no_text: float) -> Path:
    """An eval dir as mmexp.eval writes it, for a run of ``fusion``, with one corruption curve."""
    eval_dir.mkdir(parents=True)
    (eval_dir / "run_info.json").write_text(json.dumps({"status": "completed", "overrides": ["ckpt_path=x.ckpt"]}))
    missing = {
        "both": {"acc": acc[0], "f1_macro": acc[0]},
        "no_image": {"acc": no_image, "f1_macro": no_image},
        "no_text": {"acc": no_text, "f1_macro": no_text},
    }
    reliance = {"image": (acc[0] - no_image) / acc[0], "text": (acc[0] - no_text) / acc[0]}
    reliability = {
        "bins": 2,
        "edges": [0.0, 0.5, 1.0],
        "count": [0, 10],
        "confidence": [None, 0.9],
        "accuracy": [None, 0.8],
        "ece": 0.1,
    }
    evaluation = {
        "train_run": {"overrides": [f"fusion={fusion}", "split=kfold", "seed=0"]},
        "test": {"test/acc": acc[0]},
        "missing_modality": missing,
        "modality_reliance": reliance,
        "reliability": reliability,
    }
    (eval_dir / "eval.json").write_text(json.dumps(evaluation))
    curve = {"modality": "image", "acc": acc, "relative_robustness": 0.5, "effective_robustness": None}
    (eval_dir / "robustness.json").write_text(json.dumps({"corruptions": {"gaussian_noise": curve}}))
    return eval_dir


def test_report_shows_robustness_missing_modalities_and_reliability_of_eval_dirs(sweep: Path, tmp_path: Path) -> None:
    evals = tmp_path / "evals"
    write_eval(evals / "a", fusion="concat", acc=[1.0, 0.8, 0.6, 0.4, 0.2, 0.0], no_image=0.5, no_text=0.25)
    write_eval(evals / "b", fusion="concat", acc=[0.8, 0.6, 0.4, 0.2, 0.0, 0.0], no_image=0.3, no_text=0.35)
    assert main([str(sweep), str(evals), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Runs: 4 completed in 2 group(s), 1 failed" in md  # eval dirs are not training runs
    # means over the two evals; reliance is the mean of each eval's own (0.5, 0.625) and (0.75, 0.5625)
    assert (
        "| fusion=concat,split=kfold | 2 | 0.900 | 0.400 | 0.300 | 0.900 | 0.400 | 0.300 | 0.562 | 0.656 |"
        in md.split("## Missing modalities")[1]
    )
    assert (
        "| fusion=concat,split=kfold | gaussian_noise | image | 0.900 | 0.700 | 0.500 | 0.300 | 0.100 | 0.000 "
        "| 0.500 | – |" in md.split("## Robustness")[1]
    )
    assert "| fusion=concat,split=kfold | (0.50, 1.00] | 20 | 0.900 | 0.800 | 0.100 |" in md
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 5  # + robustness curves and reliability diagram
    assert "<h2>Robustness</h2>" in html and "<h2>Missing modalities</h2>" in html and "Calibration" in html


def test_complexity_columns_appear_when_metrics_json_has_them(tmp_path: Path) -> None:
    for i, (flops, seconds) in enumerate(((2.0e6, 1.0), (4.0e6, 3.0))):
        run = write_run(tmp_path / f"{i}", fusion="concat", fold=i)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["complexity"] = {
            "params_total": 1234,
            "flops_per_sample": flops,
            "train_s_per_epoch": seconds,
            "latency_s_per_batch": 0.01,
            "peak_memory_bytes": 2**30,
        }
        (run / "metrics.json").write_text(json.dumps(metrics))
    assert main([str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "| group | n | params | FLOPs/sample | s/epoch (train) |" in md
    assert "| fusion=concat,split=kfold | 2 | 1,234 | 3 M | 2.0000 | 0.0100 | 1,024 |" in md
    assert "<h2>Complexity</h2>" in (tmp_path / "report.html").read_text()
