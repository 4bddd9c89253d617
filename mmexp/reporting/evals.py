"""Evaluation dirs (eval.json, robustness.json) and training cost (metrics.json "complexity") per group.

An eval is grouped like the training run it evaluated: by that run's overrides (stored in eval.json)
minus the ignored keys, plus the eval's own remaining overrides (e.g. ``data=folder``) in brackets.
Numbers are means over a group's evals.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from mmexp.contracts import MODALITIES
from mmexp.reporting.runs import Run

MISSING = ("both", "no_image", "no_text")
COMPLEXITY = (
    ("params_total", "params"),
    ("flops_per_sample", "FLOPs/sample"),
    ("train_s_per_epoch", "s/epoch (train)"),
    ("latency_s_per_batch", "s/batch (inference)"),
    ("peak_memory_bytes", "peak memory (MiB)"),
)


@dataclass(frozen=True)
class EvalGroup:
    """Completed evals of runs that share a group name."""

    name: str
    evals: list[Run]


def _evaluation(run: Run) -> dict[str, Any]:
    """A grouped eval run's eval.json (grouping keeps only runs that have one)."""
    return run.evaluation or {}


def mean(values: list[Any]) -> float | None:
    """Mean of the finite numbers in ``values``; None when there are none."""
    kept = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return math.fsum(kept) / len(kept) if kept else None


def eval_groups(runs: list[Run], *, key: Any) -> list[EvalGroup]:
    """Completed eval runs grouped by ``key(training overrides, eval overrides)``, in name order."""
    by_name: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if run.kind == "eval" and run.ok and run.evaluation is not None:
            train = (run.evaluation.get("train_run") or {}).get("overrides") or []
            by_name[key(tuple(map(str, train)), run.overrides)].append(run)
    return [EvalGroup(name, by_name[name]) for name in sorted(by_name)]


def missing_modality(group: EvalGroup) -> dict[str, dict[str, float | None]]:
    """Mean acc and macro-F1 per condition (both, no_image, no_text) and mean modality reliance."""
    out: dict[str, dict[str, float | None]] = {}
    for condition in MISSING:
        scores = [(_evaluation(r).get("missing_modality") or {}).get(condition) or {} for r in group.evals]
        out[condition] = {m: mean([s.get(m) for s in scores]) for m in ("acc", "f1_macro")}
    reliance = [_evaluation(r).get("modality_reliance") or {} for r in group.evals]
    out["reliance"] = {m: mean([x.get(m) for x in reliance]) for m in MODALITIES}
    return out


def robustness(group: EvalGroup) -> dict[str, dict[str, Any]]:
    """Per corruption: modality, mean accuracy per severity, mean relative and effective robustness."""
    curves: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in group.evals:
        for name, curve in ((run.robustness or {}).get("corruptions") or {}).items():
            if isinstance(curve, dict) and isinstance(curve.get("acc"), list):
                curves[name].append(curve)
    out = {}
    for name, members in curves.items():
        length = min(len(c["acc"]) for c in members)
        out[name] = {
            "modality": members[0].get("modality", ""),
            "acc": [mean([c["acc"][s] for c in members]) for s in range(length)],
            "relative_robustness": mean([c.get("relative_robustness") for c in members]),
            "effective_robustness": mean([c.get("effective_robustness") for c in members]),
        }
    return out


def reliability(group: EvalGroup) -> dict[str, Any] | None:
    """Reliability bins pooled over the group's evals (count-weighted), with the pooled ECE.

    ``closed`` says which end of a bin holds its edge; eval.json files without it are right-closed.
    """
    pooled: dict[str, Any] | None = None
    for run in group.evals:
        r = _evaluation(run).get("reliability")
        if not isinstance(r, dict) or not r.get("count"):
            continue
        closed = r.get("closed", "right")
        if pooled is None:
            n = len(r["count"])
            pooled = {
                "edges": r.get("edges") or [i / n for i in range(n + 1)],
                "closed": closed,
                "count": [0] * n,
                "conf_sum": [0.0] * n,
                "acc_sum": [0.0] * n,
            }
        if len(r["count"]) != len(pooled["count"]) or closed != pooled["closed"]:
            continue  # different bins cannot be pooled
        for i, c in enumerate(r["count"]):
            pooled["count"][i] += c
            pooled["conf_sum"][i] += c * (r["confidence"][i] or 0.0)
            pooled["acc_sum"][i] += c * (r["accuracy"][i] or 0.0)
    if pooled is None:
        return None
    counts = pooled["count"]
    conf = [s / c if c else None for s, c in zip(pooled["conf_sum"], counts, strict=True)]
    acc = [s / c if c else None for s, c in zip(pooled["acc_sum"], counts, strict=True)]
    total = sum(counts) or 1
    pairs = zip(counts, acc, conf, strict=True)
    ece = math.fsum(c / total * abs(a - f) for c, a, f in pairs if c and a is not None and f is not None)
    return {
        "edges": pooled["edges"],
        "closed": pooled["closed"],
        "count": counts,
        "confidence": conf,
        "accuracy": acc,
        "ece": ece,
    }


def complexity(runs: list[Run]) -> dict[str, float | None]:
    """Mean of each cost figure over training runs whose metrics.json has a "complexity" block."""
    blocks = [r.metrics["complexity"] for r in runs if r.metrics and isinstance(r.metrics.get("complexity"), dict)]
    return {key: mean([b.get(key) for b in blocks]) for key, _ in COMPLEXITY} if blocks else {}
