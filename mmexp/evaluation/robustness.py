"""Evaluate a model with a modality removed or its inputs corrupted, and summarize the curves.

Missing modalities go through ``mmexp.models.missing.remove_modality`` (the one way to remove one);
corruptions come from ``mmexp.evaluation.corruptions``. Corrupted texts are re-tokenized with the
checkpoint's tokenizer, so every text encoder sees the same corrupted words.
"""

from __future__ import annotations

import itertools
import json
import logging
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mmexp.contracts import MODALITIES, Batch
from mmexp.core.errors import ConfigError
from mmexp.core.progress import progress
from mmexp.data.tokenizers import Tokenizer
from mmexp.evaluation.corruptions import SEVERITIES, Corruption, ImageCorruption, TextCorruption
from mmexp.evaluation.inference import Predictions, Transform, infer
from mmexp.models.missing import remove_modality
from mmexp.training.classifier import MultimodalClassifier
from mmexp.training.metrics import TaskMetrics

log = logging.getLogger(__name__)


def _computed(metrics: TaskMetrics, pred: Predictions, model: MultimodalClassifier) -> dict[str, torch.Tensor]:
    thresholds = None if model.thresholds is None else model.thresholds.cpu()
    metrics.update(pred.probs, pred.labels, thresholds)
    return metrics.compute()


def scores(
    pred: Predictions, model: MultimodalClassifier, *, prefix: str = "", ranking: bool = False
) -> dict[str, float]:
    """The training-time metrics of the model's task on ``pred`` (same torchmetrics, same names, the
    checkpoint's decision thresholds) plus the loss."""
    values = _computed(TaskMetrics(model.objective, kind="test" if ranking else "scalar"), pred, model)
    return {f"{prefix}{k}": float(v) for k, v in values.items()} | {f"{prefix}loss": pred.loss}


def per_class(pred: Predictions, model: MultimodalClassifier, labels: list[str]) -> dict[str, Any]:
    """Per-class precision/recall/F1 (and support) keyed by label name, and the confusion matrix (rows = true
    class; None for multilabel, which has one 2x2 matrix per class instead: see the per-class counts)."""
    details = {k: v.tolist() for k, v in _computed(TaskMetrics(model.objective, kind="per_class"), pred, model).items()}
    matrix = details.pop("confusion_matrix", None)
    if matrix is not None:
        details["support"] = [int(sum(row)) for row in matrix]
    return {
        "test_per_class": {k: dict(zip(labels, v, strict=True)) for k, v in details.items()},
        "confusion_matrix": matrix,
    }


def without(modality: str) -> Transform:
    """Remove ``modality`` from every row of a batch."""
    return lambda batch: remove_modality(batch, modality, torch.ones(len(batch), dtype=torch.bool))


def missing_modality(
    model: MultimodalClassifier, loader: Any, *, device: torch.device, clean: Predictions
) -> dict[str, dict[str, float]]:
    """Scores with both modalities (``clean``), with the image removed and with the text removed."""
    out = {"both": scores(clean, model)}
    for modality in MODALITIES:
        out[f"no_{modality}"] = scores(infer(model, loader, device=device, transform=without(modality)), model)
    return out


def modality_reliance(missing: Mapping[str, Mapping[str, float]]) -> dict[str, float | None]:
    """Share of test accuracy lost without each modality: (acc_both - acc_without) / acc_both.

    1 means everything right depended on that modality, 0 means none of it did; None when acc_both is 0.
    """
    full = missing["both"]["acc"]
    return {m: (full - missing[f"no_{m}"]["acc"]) / full if full > 0 else None for m in MODALITIES}


def corruption_seed(seed: int, name: str, severity: int) -> int:
    """One generator seed per (seed, corruption, severity): each curve point is reproducible on its own."""
    return (seed * 1_000_003 + zlib.crc32(name.encode()) * 7 + severity) % (2**63)


def corrupt(corruption: Corruption, severity: int, *, generator: torch.Generator, tokenizer: Tokenizer) -> Transform:
    """A batch transform applying ``corruption``; corrupted texts are re-tokenized with ``tokenizer``."""
    known = tokenizer.known_tokens()

    def apply(batch: Batch) -> Batch:
        if severity == 0:
            return batch
        batch = batch.marked_modified(corruption.modality)  # bypass feature caches
        if isinstance(corruption, ImageCorruption):
            return batch.replace(image=corruption(batch.image, severity, generator))
        if isinstance(corruption, TextCorruption):
            texts = corruption(list(batch.texts), severity, generator, known)
            ids, mask = tokenizer.encode(texts)
            return batch.replace(
                texts=texts, text_ids=ids.to(batch.text_ids.device), text_mask=mask.to(batch.text_mask.device)
            )
        raise TypeError(f"{type(corruption).__name__} is neither an image nor a text corruption")

    return apply


def relative_robustness(acc: Sequence[float]) -> float:
    """Area under accuracy vs severity, severities mapped to [0, 1] (trapezoid rule), so 0..1.

    MultiBench's relative robustness before its min-max normalization across methods: a model that
    keeps its clean accuracy a at every severity scores a; one that collapses to 0 at once scores a / (2S).
    """
    steps = len(acc) - 1
    if steps < 1:
        raise ValueError("relative robustness needs at least two severities")
    return sum((a + b) / 2 for a, b in itertools.pairwise(acc)) / steps


def effective_robustness(acc: Sequence[float], baseline: Sequence[float] | None) -> float | None:
    """Accuracy kept beyond a unimodal baseline, after shifting the baseline to the same clean accuracy.

    With f(s) the model's and b(s) the baseline's accuracy at severity s = 0..S under the same
    corruption, ER = mean over s = 1..S of [(f(s) - f(0)) - (b(s) - b(0))]. The baseline is a model
    that sees only the corrupted modality (image-only for image corruptions, text-only for text ones).
    Positive: the multimodal model loses less than the unimodal one (MultiBench's effective robustness,
    averaged instead of summed so it does not grow with S). None without a baseline curve.
    """
    if baseline is None:
        return None
    if len(baseline) != len(acc):
        raise ValueError(f"baseline has {len(baseline)} severities, the model {len(acc)}")
    drops = [(f - acc[0]) - (b - baseline[0]) for f, b in zip(acc[1:], baseline[1:], strict=True)]
    return sum(drops) / len(drops)


def load_baseline(spec: Any, modality: str) -> dict[str, list[float]] | None:
    """Accuracy curves per corruption from ``robustness.baselines.<modality>``.

    ``spec`` is a robustness.json (or the eval dir holding one) of a unimodal model, or a mapping
    corruption name -> accuracies at severities 0..S; None gives no baseline.
    """
    field = f"robustness.baselines.{modality}"
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return {str(k): [float(x) for x in v] for k, v in spec.items()}
    path = Path(str(spec)).expanduser()
    path = path / "robustness.json" if path.is_dir() else path
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        return {name: list(c["acc"]) for name, c in saved["corruptions"].items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"{field}={spec}: cannot read accuracy curves ({e}); give the robustness.json (or "
            f"eval dir) of a {modality}-only model's evaluation, or null"
        ) from None


def robustness_curves(
    model: MultimodalClassifier,
    loader: Any,
    corruptions: Mapping[str, Corruption],
    *,
    device: torch.device,
    tokenizer: Tokenizer,
    seed: int,
    baselines: Mapping[str, Mapping[str, list[float]] | None],
) -> dict[str, Any]:
    """Accuracy and macro-F1 at severities 0..S for each corruption, with both robustness summaries."""
    out = {}
    passes = len(corruptions) * (SEVERITIES + 1)
    with progress("robustness: corrupted test passes", passes, unit="passes", logger=log) as shown:
        for name, corruption in corruptions.items():
            acc, f1 = [], []
            for severity in range(SEVERITIES + 1):
                generator = torch.Generator().manual_seed(corruption_seed(seed, name, severity))
                pred = infer(
                    model,
                    loader,
                    device=device,
                    transform=corrupt(corruption, severity, generator=generator, tokenizer=tokenizer),
                )
                score = scores(pred, model)
                acc.append(score["acc"])
                f1.append(score["f1_macro"])
                shown.advance()
            base = (baselines.get(corruption.modality) or {}).get(name)
            if base is not None and len(base) != len(acc):
                log.warning(
                    "robustness: the %s baseline for %s has %d severities, not %d; effective robustness left out",
                    corruption.modality,
                    name,
                    len(base),
                    len(acc),
                )
                base = None
            out[name] = {
                "modality": corruption.modality,
                "type": type(corruption).__name__,
                "levels": corruption.levels,
                "acc": acc,
                "f1_macro": f1,
                "relative_robustness": relative_robustness(acc),
                "effective_robustness": effective_robustness(acc, base),
            }
            log.info(
                "robustness %s: acc %s, relative robustness %.3f",
                name,
                " ".join(f"{a:.3f}" for a in acc),
                out[name]["relative_robustness"],
            )
    return out
