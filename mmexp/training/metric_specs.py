"""Each metric's direction and range, declared once here and written into every run's metrics.json.

Why: the report ranks groups, bounds confidence intervals and draws the ↑/↓ arrows from these facts. It reads
them from the run dir (``metrics.json`` "metric_specs"), so adding a metric is one entry in ``SPECS`` and the
report needs no edit; a metric logged without an entry fails the run's metrics writing, not the report.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("mmexp.train")


@dataclass(frozen=True)
class MetricSpec:
    """``higher_is_better``: the direction a report ranks by (None: a diagnostic with no better direction, shown
    without an arrow); ``bounds``: the metric's range (None: unbounded), which keeps a mean's interval inside it."""

    higher_is_better: bool | None
    bounds: tuple[float, float] | None

    def as_json(self) -> dict[str, Any]:
        return {"higher_is_better": self.higher_is_better, "bounds": list(self.bounds) if self.bounds else None}


FRACTION = MetricSpec(higher_is_better=True, bounds=(0.0, 1.0))
ERROR_FRACTION = MetricSpec(higher_is_better=False, bounds=(0.0, 1.0))
LOSS = MetricSpec(higher_is_better=False, bounds=None)
SHARE = MetricSpec(higher_is_better=None, bounds=(0.0, 1.0))  # what a model learned, not how well it does

# Metric names without their stage prefix (``val/``, ``test/``), as training/metrics.py names them.
SPECS: dict[str, MetricSpec] = {
    "loss": LOSS,
    "acc": FRACTION,
    "exact_match": FRACTION,
    **{f"{m}_{avg}": FRACTION for m in ("precision", "recall", "f1") for avg in ("macro", "micro", "weighted")},
    "f1_samples": FRACTION,
    "f1_pos": FRACTION,
    "f1_pos_05": FRACTION,
    "auroc": FRACTION,
    "pr_auc": FRACTION,
    "map": FRACTION,
    "ece": ERROR_FRACTION,
    # fusions that weigh the modalities per row (training/classifier.py): mean weight, normalised entropy
    "attn_weight_image": SHARE,
    "attn_weight_text": SHARE,
    "attn_entropy": SHARE,
}


def bare_name(metric: str) -> str:
    """``val/f1_macro`` -> ``f1_macro``."""
    return metric.rsplit("/", 1)[-1]


def spec_of(metric: str) -> MetricSpec:
    """The spec of ``metric`` (with or without its stage prefix); a metric without an entry is a bug here."""
    try:
        return SPECS[bare_name(metric)]
    except KeyError:
        raise KeyError(f"metric {metric!r} has no entry in mmexp.training.metric_specs.SPECS: add one") from None


def specs_json(metrics: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The specs of these metrics as metrics.json stores them, by bare name. A metric without an entry is left
    out with a warning rather than failing the run at its end (tests/training/test_metric_specs.py catches it first);
    the report then reads it with its old name rules."""
    specs = {}
    for name in sorted({bare_name(m) for m in metrics}):
        if name in SPECS:
            specs[name] = SPECS[name].as_json()
        else:
            log.warning(
                "metric %s has no entry in mmexp.training.metric_specs.SPECS: the report guesses its direction", name
            )
    return specs
