"""Measure mmexp against a plain PyTorch loop, side by side in one run, on whatever device is present.

    python scripts/bench.py [--quick] [--out bench.json]

Prints a table and writes bench.json. Every ratio compares numbers measured in this same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import torch

from mmexp.app.compose import compose_train_config
from mmexp.data.image_cache import load_or_decode
from mmexp.data.images import decode_images
from mmexp.data.manifest import read_rows
from mmexp.data.records import parse_records
from mmexp.training.build import instantiate

SCRIPTS = Path(__file__).resolve().parent
MODEL = ["image_encoder=cnn", "text_encoder=lstm", "fusion=concat", "data.image_size=64"]


def run_cli(args: list[str], cwd: Path, check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SCRIPTS), os.environ.get("PYTHONPATH", "")]),
        "WANDB_MODE": "offline",
    }
    start = time.time()
    result = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, text=True, capture_output=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return time.time() - start, result


def plain_throughput(work: Path, common: list[str], steps: int, warmup: int, *flags: str) -> dict[str, float]:
    """samples/s and CPU s/sample of scripts/bench_plain.py (a hand-written loop) in a fresh process."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "plain.json"
    run_cli(
        [
            "bench_plain",
            "--out",
            str(out),
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
            *flags,
            "--",
            *common,
            f"paths.output_dir={work}",
        ],
        cwd=work,
    )
    return json.loads(out.read_text())


def mmexp_throughput(work: Path, common: list[str], steps: int, warmup: int, *extra: str) -> dict[str, Any]:
    """One real ``python -m mmexp.train`` run (metrics, CSV logger, checkpointing on), timed from inside."""
    work.mkdir(parents=True, exist_ok=True)
    timer_file = work / "timer.json"
    started = time.time()
    run_cli(
        [
            "mmexp.train",
            *common,
            *extra,
            f"paths.output_dir={work}",
            "logger=csv",
            f"+trainer.max_steps={steps + warmup}",
            "trainer.max_epochs=-1",
            "scheduler=none",
            "++trainer.limit_val_batches=2",
            "++trainer.limit_test_batches=2",
            "+callbacks.bench._target_=bench_timer.ThroughputTimer",
            f"+callbacks.bench.out={timer_file}",
            f"+callbacks.bench.warmup={warmup}",
            f"+callbacks.bench.process_start={started}",
        ],
        cwd=work,
    )
    return json.loads(timer_file.read_text())


def bench_training(work: Path, steps: int, batch_size: int, repeats: int) -> dict[str, Any]:
    """(a) mmexp's full path vs a plain loop, measured in ``repeats`` back-to-back pairs, each side in a new process.

    The ratio is the median of the pairs' ratios: each pair shares the machine's state of the moment,
    which on a shared 2-core machine moves either side by up to +-20 %. ``cpu_ratio_vs_plain_loop`` compares
    process CPU seconds per sample instead (all threads), which other tenants' load disturbs less.
    """
    warmup = 5
    common = [*MODEL, f"data.batch_size={batch_size}", f"paths.cache_dir={work / 'cache'}"]
    full_runs, plain_runs = [], []
    for i in range(repeats):
        full_runs.append(mmexp_throughput(work / f"full-{i}", common, steps, warmup))
        plain_runs.append(plain_throughput(work / f"plain-{i}", common, steps, warmup))
    resident = plain_throughput(work / "resident", common, steps, warmup, "--resident")["samples_per_s"]
    full = [r["samples_per_s"] for r in full_runs]
    plain = [r["samples_per_s"] for r in plain_runs]
    cpu_ratios = [
        p["cpu_s_per_sample"] / (f["cpu_seconds"] / f["samples"]) for f, p in zip(full_runs, plain_runs, strict=True)
    ]
    return {
        "mmexp_samples_per_s": median(full),
        "plain_loop_samples_per_s": median(plain),
        "resident_ceiling_samples_per_s": resident,
        "ratio_vs_plain_loop": median([f / p for f, p in zip(full, plain, strict=True)]),
        "cpu_ratio_vs_plain_loop": median(cpu_ratios),
        "ratio_vs_resident_ceiling": median(full) / resident,
        "pairs": [list(p) for p in zip(full, plain, strict=True)],
        "first_step_s_from_process_start": full_runs[0]["first_step_s"],
        "steps": steps,
        "batch_size": batch_size,
        "repeats": repeats,
    }


def bench_precision(work: Path, steps: int, batch_size: int) -> dict[str, Any]:
    """(f) mmexp's full path in fp32, bf16-mixed and compiled, and the resident + compiled plain-loop ceiling.

    Compiled runs are timed after their warm-up steps, so the one-off compile time is reported apart
    (``compile_first_step_s``: process start to first step, compile included).
    """
    common = [*MODEL, f"data.batch_size={batch_size}", f"paths.cache_dir={work / 'cache'}"]
    cfg = compose_train_config([*common, f"paths.output_dir={work}"], run_dir=work / "ceiling")
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    warmup = -(-len(datamodule.info.split.train) // batch_size) + 5  # an epoch: compile's partial-batch recompile
    variants = {"fp32": [], "bf16-mixed": ["trainer.precision=bf16-mixed"], "compile": ["model.compile=true"]}
    runs = {
        name: mmexp_throughput(work / f"precision-{name}", common, steps, warmup, *extra)
        for name, extra in variants.items()
    }
    ceiling = plain_throughput(work / "ceiling", common, steps, warmup, "--resident", "--compile")["samples_per_s"]
    result = {f"{name}_samples_per_s": run["samples_per_s"] for name, run in runs.items()}
    result.update(
        {
            "compile_first_step_s": runs["compile"]["first_step_s"],
            "fp32_first_step_s": runs["fp32"]["first_step_s"],
            "resident_compiled_ceiling_samples_per_s": ceiling,
            "best": max(variants, key=lambda name: runs[name]["samples_per_s"]),
        }
    )
    result["best_vs_ceiling"] = result[f"{result['best']}_samples_per_s"] / ceiling
    return result


def bench_startup(work: Path, repeats: int) -> dict[str, float]:
    """Best of ``repeats``: the machine is noisy, the floor is what a user can expect."""
    help_s = min(run_cli(["mmexp.train", "--help"], cwd=work)[0] for _ in range(repeats))
    error_s = min(run_cli(["mmexp.train", "data.batch_size=-1"], cwd=work, check=False)[0] for _ in range(repeats))
    return {"help_s": help_s, "config_error_s": error_s}


def bench_data(work: Path, n: int) -> dict[str, float]:
    cfg = compose_train_config(
        [*MODEL, f"paths.output_dir={work}", f"paths.cache_dir={work / 'cache'}"], run_dir=work / "data"
    )
    datamodule = instantiate(cfg.data)
    manifest = datamodule.manifest
    records, _ = parse_records(read_rows(manifest), datamodule.data_root, datamodule.columns)
    paths = [r.image for r in records[:n]]
    t0 = time.perf_counter()
    decode_images(paths, cfg.data.image_size)
    decode = len(paths) / (time.perf_counter() - t0)
    load_or_decode(paths, cfg.data.image_size, manifest=manifest, cache_dir=work / "bench-cache")
    t0 = time.perf_counter()
    cached, _ = load_or_decode(paths, cfg.data.image_size, manifest=manifest, cache_dir=work / "bench-cache")
    cache = len(paths) / (time.perf_counter() - t0)
    tensor = torch.from_numpy(np.ascontiguousarray(cached))
    t0 = time.perf_counter()
    for idx in torch.split(torch.randperm(len(tensor)), 64):
        tensor[idx].float()
    memory = len(tensor) / (time.perf_counter() - t0)
    return {
        "decode_samples_per_s": decode,
        "cache_samples_per_s": cache,
        "in_memory_samples_per_s": memory,
        "images": len(paths),
    }


def bench_sweep(work: Path, quick: bool) -> dict[str, float]:
    """4 fusions x 2 folds (quick: 2 x 1 on the tiny debug config), basic launcher vs joblib."""
    fusions, folds = ("concat,late", "0") if quick else ("concat,attention,gated,late", "0,1")
    base = [
        "-m",
        f"fusion={fusions}",
        "split=kfold",
        f"split.fold={folds}",
        "logger=none",
        f"paths.cache_dir={work / 'cache'}",
    ] + (["debug=fast"] if quick else ["trainer.max_epochs=2"])
    basic = run_cli(["mmexp.train", *base, f"paths.output_dir={work / 'sweep-basic'}"], cwd=work)[0]
    joblib = run_cli(
        [
            "mmexp.train",
            *base,
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"paths.output_dir={work / 'sweep-joblib'}",
        ],
        cwd=work,
    )[0]
    return {
        "jobs": len(fusions.split(",")) * len(folds.split(",")),
        "basic_s": basic,
        "joblib_2_jobs_s": joblib,
        "speedup": basic / joblib,
    }


def bench_feature_cache(work: Path, quick: bool) -> dict[str, Any]:
    """(e) A frozen-MiniLM fusion sweep without the feature cache, with it from a cold cache (the first job
    computes the features) and again warm (every job loads them). quick: 2 jobs on 400 rows, 2 epochs.

    Texts are review-length (~40 words, ``n_fillers=40``): the frozen encoder's cost grows with text length
    and the cache's does not, so on the built-in 7-word captions the sweep is dominated by costs the cache
    cannot remove (imports, once per sweep; per job: loading MiniLM, the complexity measurement, the
    trainable image encoder). The image side is small (16 px, a two-layer CNN), as in pretrained-text sweeps.
    Also reported: seconds per training epoch, from each job's metrics.json.
    """
    fusions = "concat,late" if quick else "concat,attention,late"
    data = ["data.image_size=16", "data.synthetic.n_fillers=40", *(["data.synthetic.n_samples=400"] if quick else [])]
    base = [
        "-m",
        f"fusion={fusions}",
        "text_encoder=minilm",
        "image_encoder.channels=[16,32]",
        "logger=none",
        "data.eval_batch_size=64",
        f"trainer.max_epochs={2 if quick else 8}",
        f"paths.cache_dir={work / 'cache'}",
        *data,
    ]
    cfg = compose_train_config([*data, f"paths.cache_dir={work / 'cache'}"], run_dir=work / "fc-data")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup()  # the dataset and decoded images exist before any timed sweep
    jobs = len(fusions.split(","))

    def sweep(name: str, *extra: str) -> tuple[float, float]:
        """Wall seconds of the sweep and the jobs' mean training seconds per epoch."""
        out = work / name
        seconds = run_cli(["mmexp.train", *base, *extra, f"paths.output_dir={out}"], cwd=work)[0]
        metrics = [json.loads(p.read_text()) for p in out.rglob("metrics.json")]
        if len(metrics) != jobs:  # a failed job does not fail a sweep
            raise RuntimeError(f"feature-cache sweep {name}: not every job wrote metrics.json under {out}")
        return seconds, sum(m["complexity"]["train_s_per_epoch"] for m in metrics) / jobs

    (without, epoch_without), (cold, _), (warm, epoch_warm) = (
        sweep("fc-off", "model.feature_cache=false"),
        sweep("fc-cold"),
        sweep("fc-warm"),
    )
    return {
        "jobs": jobs,
        "command": " ".join(["python -m mmexp.train", *base]),
        "without_cache_s": without,
        "cold_cache_s": cold,
        "warm_cache_s": warm,
        "speedup_cold": without / cold,
        "speedup_warm": without / warm,
        "epoch_s_without": epoch_without,
        "epoch_s_warm": epoch_warm,
        "epoch_speedup": epoch_without / epoch_warm,
    }


def bench_frozen_sweep(work: Path, quick: bool, rows: int | None = None) -> dict[str, Any]:
    """(g) A frozen-backbone sweep on cached features (``experiment=pretrained``: EfficientNet-Lite0 + MiniLM,
    frozen): wall seconds per job and per epoch with checkpointing on (mmexp's default: best.ckpt and last.ckpt
    written every epoch) and off (``save_top_k=0``: nothing written), in one sweep.

    The sweep's last axis is checkpointing, so each fusion runs with it on then off back to back: each pair shares
    the machine's state of the moment, and the ratio is the median of the pairs' ratios. A warm-up job fills the
    feature cache and the cost cache first, so every timed job loads its features, as every job after the first
    does in a real sweep. Epoch seconds run from one epoch's start to the next (the last to the end of fit):
    training, validation, checkpoint writes; the first epoch (loading the cached features) is left out, and each
    job's median epoch is used. quick: 2 fusions on 120 rows, 3 epochs; ``rows`` overrides the 400 (120) rows.
    """
    fusions = "concat,late" if quick else "concat,attention,gated,late"
    epochs = 3 if quick else 8
    keep = "${callbacks.model_checkpoint.save_top_k}"  # 1: checkpoints written, 0: none
    base = [
        "experiment=pretrained",
        "logger=none",
        f"trainer.max_epochs={epochs}",
        f"data.synthetic.n_samples={rows or (120 if quick else 400)}",
        f"paths.cache_dir={work / 'cache'}",
        f"callbacks.last_checkpoint.save_top_k={keep}",
        "+callbacks.epoch_wall._target_=bench_timer.EpochWallTimer",
        "+callbacks.epoch_wall.out=${paths.run_dir}/epoch_wall.json",
        f"+callbacks.epoch_wall.label={keep}",
    ]
    run_cli(["mmexp.train", *base, "trainer.max_epochs=1", f"hydra.run.dir={work / 'fs-warmup'}"], cwd=work)
    out = work / "fs-sweep"
    command = ["-m", f"fusion={fusions}", "callbacks.model_checkpoint.save_top_k=1,0", *base]
    sweep_s = run_cli(["mmexp.train", *command, f"paths.output_dir={out}"], cwd=work)[0]
    jobs: dict[str, list[tuple[float, float]]] = {"1": [], "0": []}  # checkpointing -> (job s, epoch s) in order
    epochs_of: dict[str, list[float]] = {"1": [], "0": []}  # every timed epoch, for the floors
    saves: list[float] = []  # seconds of each checkpoint write (trainer.save_checkpoint), jobs with checkpoints
    for timer_file in sorted(out.rglob("epoch_wall.json")):  # job dirs are numbered in sweep order
        timer = json.loads(timer_file.read_text())
        info = json.loads((timer_file.parent / "run_info.json").read_text())
        if info.get("status") != "completed":
            raise RuntimeError(f"frozen sweep: {timer_file.parent} did not complete")
        job_s = (datetime.fromisoformat(info["end_time"]) - datetime.fromisoformat(info["start_time"])).total_seconds()
        jobs[str(timer["label"])].append((job_s, median(timer["epoch_seconds"][1:])))
        epochs_of[str(timer["label"])] += timer["epoch_seconds"][1:]
        saves += timer["save_seconds"]
    pairs = len(fusions.split(","))
    if len(jobs["1"]) != pairs or len(jobs["0"]) != pairs:
        raise RuntimeError(f"frozen sweep: expected {pairs} jobs with and without checkpoints under {out}")
    on, off = jobs["1"], jobs["0"]
    return {
        "jobs": 2 * pairs,
        "epochs": epochs,
        "command": " ".join(["python -m mmexp.train", *command]),
        "sweep_s": sweep_s,
        "job_s": median(j for j, _ in on),
        "job_s_no_checkpoints": median(j for j, _ in off),
        "epoch_s": median(e for _, e in on),
        "epoch_s_no_checkpoints": median(e for _, e in off),
        "epoch_ratio_checkpoints_on_off": median(a[1] / b[1] for a, b in zip(on, off, strict=True)),
        "pair_ratios": [a[1] / b[1] for a, b in zip(on, off, strict=True)],
        # on a loaded machine an epoch's time moves by 2-5x; the fastest epoch of each kind is its floor
        "epoch_floor_ratio_checkpoints_on_off": min(epochs_of["1"]) / min(epochs_of["0"]),
        "checkpoint_saves": len(saves),
        "checkpoint_save_s_median": median(saves),
        "checkpoint_save_s_per_epoch": sum(saves) / (pairs * epochs),
        "checkpoint_mb": max(p.stat().st_size for p in out.rglob("*.ckpt")) / 1e6,
    }


SECTIONS = ("training", "startup", "data", "sweep", "feature_cache", "precision", "frozen_sweep")
# The figures each section promises in bench.json (docs/performance.md quotes them); main() fails when one is
# missing, and tests/project/test_bench.py checks them for the sections the fast suite runs.
FIGURES: dict[str, tuple[str, ...]] = {
    "training": (
        "mmexp_samples_per_s",
        "plain_loop_samples_per_s",
        "resident_ceiling_samples_per_s",
        "ratio_vs_plain_loop",
        "cpu_ratio_vs_plain_loop",
        "ratio_vs_resident_ceiling",
        "first_step_s_from_process_start",
    ),
    "startup": ("help_s", "config_error_s"),
    "data": ("decode_samples_per_s", "cache_samples_per_s", "in_memory_samples_per_s"),
    "sweep": ("basic_s", "joblib_2_jobs_s", "speedup"),
    "feature_cache": (
        "without_cache_s",
        "cold_cache_s",
        "warm_cache_s",
        "speedup_cold",
        "speedup_warm",
        "epoch_s_without",
        "epoch_s_warm",
        "epoch_speedup",
    ),
    "frozen_sweep": (
        "sweep_s",
        "job_s",
        "job_s_no_checkpoints",
        "epoch_s",
        "epoch_s_no_checkpoints",
        "epoch_ratio_checkpoints_on_off",
        "epoch_floor_ratio_checkpoints_on_off",
        "checkpoint_save_s_median",
        "checkpoint_save_s_per_epoch",
        "checkpoint_mb",
    ),
    "precision": (
        "fp32_samples_per_s",
        "bf16-mixed_samples_per_s",
        "compile_samples_per_s",
        "compile_first_step_s",
        "resident_compiled_ceiling_samples_per_s",
        "best_vs_ceiling",
    ),
}


def missing_figures(results: dict[str, Any]) -> list[str]:
    """``section.figure`` for every promised figure of a section in ``results`` that is absent or not a number."""
    return [
        f"{name}.{key}"
        for name, keys in FIGURES.items()
        if name in results
        for key in keys
        if not isinstance(results[name].get(key), (int, float))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny settings for a CI smoke run")
    parser.add_argument("--out", default="bench.json")
    parser.add_argument("--frozen-rows", type=int, default=None, help="rows of the frozen_sweep data (400; quick 120)")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated subset of: "
        + ", ".join(SECTIONS)
        + " (feature_cache and frozen_sweep need the pretrained extra, sweep the sweeps extra)",
    )
    args = parser.parse_args()
    sections = args.sections.split(",")
    if unknown := set(sections) - set(SECTIONS):
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    work = Path(tempfile.mkdtemp(prefix="mmexp-bench-"))
    steps, batch = (10, 32) if args.quick else (60, 256 if device.type == "cuda" else 64)
    run: dict[str, Callable[[], dict[str, Any]]] = {
        "training": lambda: bench_training(work, steps, batch, repeats=1 if args.quick else 3),
        "startup": lambda: bench_startup(work, 1 if args.quick else 3),
        "data": lambda: bench_data(work, 200 if args.quick else 2000),
        "sweep": lambda: bench_sweep(work, args.quick),
        "feature_cache": lambda: bench_feature_cache(work, args.quick),
        "precision": lambda: bench_precision(work, steps, batch),
        "frozen_sweep": lambda: bench_frozen_sweep(work, args.quick, args.frozen_rows),
    }
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": args.quick,
    }
    for name in SECTIONS:
        if name in sections:
            results[name] = run[name]()
    Path(args.out).write_text(json.dumps(results, indent=2))
    print_table(results)
    if missing := missing_figures(results):
        sys.exit(f"bench.json lacks figures it promises: {', '.join(missing)}")


def table_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) for every section present in ``r``."""
    rows = []
    if t := r.get("training"):
        target_ratio = 1.5 if r["device"] != "cpu" else 0.97
        rows += [
            ("mmexp full path, samples/s", f"{t['mmexp_samples_per_s']:.0f}", ""),
            ("plain loop (DataLoader), samples/s", f"{t['plain_loop_samples_per_s']:.0f}", ""),
            ("resident ceiling, samples/s", f"{t['resident_ceiling_samples_per_s']:.0f}", ""),
            ("ratio_vs_plain_loop", f"{t['ratio_vs_plain_loop']:.2f}", f">= {target_ratio}"),
            ("same, by process CPU seconds per sample", f"{t['cpu_ratio_vs_plain_loop']:.2f}", ""),
            ("ratio_vs_resident_ceiling", f"{t['ratio_vs_resident_ceiling']:.2f}", ">= 0.8 (GPU)"),
            ("process start -> first step, s", f"{t['first_step_s_from_process_start']:.2f}", ""),
        ]
    if s := r.get("startup"):
        rows += [
            ("--help, s", f"{s['help_s']:.2f}", "<= 1.5"),
            ("config error, s", f"{s['config_error_s']:.2f}", "<= 1.5"),
        ]
    if d := r.get("data"):
        rows += [
            ("decode from disk, samples/s", f"{d['decode_samples_per_s']:.0f}", ""),
            ("decoded-image cache, samples/s", f"{d['cache_samples_per_s']:.0f}", ""),
            ("in-memory batches, samples/s", f"{d['in_memory_samples_per_s']:.0f}", ""),
        ]
        if t:
            rows.append(
                ("cache / training speed", f"{d['cache_samples_per_s'] / t['mmexp_samples_per_s']:.1f}x", ">= 3x (CPU)")
            )
    if w := r.get("sweep"):
        rows += [
            (f"sweep of {w['jobs']} jobs, basic launcher, s", f"{w['basic_s']:.1f}", ""),
            (f"sweep of {w['jobs']} jobs, joblib 2 jobs, s", f"{w['joblib_2_jobs_s']:.1f}", ""),
        ]
    if f := r.get("feature_cache"):
        rows += [
            (f"MiniLM sweep of {f['jobs']} jobs, no cache, s", f"{f['without_cache_s']:.1f}", ""),
            (f"MiniLM sweep of {f['jobs']} jobs, cold cache, s", f"{f['cold_cache_s']:.1f}", ""),
            (f"MiniLM sweep of {f['jobs']} jobs, warm cache, s", f"{f['warm_cache_s']:.1f}", ""),
            ("feature cache speedup (cold)", f"{f['speedup_cold']:.1f}x", ">= 5x"),
            ("feature cache speedup (warm)", f"{f['speedup_warm']:.1f}x", ""),
            (
                "training s/epoch, no cache / warm cache",
                f"{f['epoch_s_without']:.2f}/{f['epoch_s_warm']:.2f}",
                f"{f['epoch_speedup']:.1f}x",
            ),
        ]
    if g := r.get("frozen_sweep"):
        rows += [
            (f"frozen sweep of {g['jobs']} jobs (half without checkpoints), s", f"{g['sweep_s']:.1f}", ""),
            ("frozen sweep, s per job (no checkpoints)", f"{g['job_s']:.1f} ({g['job_s_no_checkpoints']:.1f})", ""),
            (
                "frozen sweep, s per epoch (no checkpoints)",
                f"{g['epoch_s']:.2f} ({g['epoch_s_no_checkpoints']:.2f})",
                "",
            ),
            ("epoch with / without checkpointing", f"{g['epoch_ratio_checkpoints_on_off']:.2f}x", "<= 1.2x"),
            ("same, fastest epochs", f"{g['epoch_floor_ratio_checkpoints_on_off']:.2f}x", "<= 1.2x"),
            ("one checkpoint write (median), s", f"{g['checkpoint_save_s_median']:.3f}", ""),
            ("checkpoint writes per epoch, s", f"{g['checkpoint_save_s_per_epoch']:.3f}", ""),
            ("largest checkpoint, MB", f"{g['checkpoint_mb']:.1f}", "<= 5"),
        ]
    if p := r.get("precision"):
        rows += [
            (f"full path {name}, samples/s", f"{p[f'{name}_samples_per_s']:.0f}", "")
            for name in ("fp32", "bf16-mixed", "compile")
        ]
        rows += [
            ("compile: process start -> first step, s", f"{p['compile_first_step_s']:.1f}", ""),
            ("resident + compiled ceiling, samples/s", f"{p['resident_compiled_ceiling_samples_per_s']:.0f}", ""),
            (f"best ({p['best']}) / ceiling", f"{p['best_vs_ceiling']:.2f}", ">= 0.8 (GPU)"),
        ]
    return rows


def print_table(r: dict[str, Any]) -> None:
    print(f"device: {r['device']}  torch {r['torch']}  threads {r['threads']}  quick={r['quick']}")
    print(f"{'measure':44} {'value':>10}  target")
    for name, value, target in table_rows(r):
        print(f"{name:44} {value:>10}  {target}")


if __name__ == "__main__":
    main()
