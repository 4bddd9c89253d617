"""The direction and range of each metric, as the runs recorded them (metrics.json "metric_specs").

Why: the report must not guess what a metric means from its name, so that a new metric needs only its entry
in ``mmexp.training.metric_specs``. Runs written before metrics.json held the specs fall back to the rules the
report used then (losses and ECE lower is better; accuracy, precision, recall, F1, AUROC, ECE, PR-AUC, mAP and
exact match lie in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mmexp.reporting.runs import Run

_LEGACY_BOUNDED = ("acc", "f1", "precision", "recall", "auroc", "ece", "pr", "map", "exact")


@dataclass(frozen=True)
class Spec:
    higher_is_better: bool | None  # None: a diagnostic, no better direction
    bounds: tuple[float, float] | None


def _legacy(name: str) -> Spec:
    """What the report assumed before runs recorded their metrics' specs."""
    lower = name in ("loss", "ece") or name.endswith("_loss")
    bounded = name.split("_", 1)[0] in _LEGACY_BOUNDED
    return Spec(higher_is_better=not lower, bounds=(0.0, 1.0) if bounded else None)


def _parse(raw: Any) -> Spec | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("higher_is_better"), (bool, type(None))):
        return None
    bounds = raw.get("bounds")
    if isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds):
        return Spec(raw["higher_is_better"], (float(bounds[0]), float(bounds[1])))
    return Spec(raw["higher_is_better"], None)


@dataclass(frozen=True)
class MetricSpecs:
    """Specs by bare metric name (``f1_macro``), from the first run that recorded each."""

    recorded: dict[str, Spec] = field(default_factory=dict)

    @classmethod
    def of(cls, runs: Iterable[Run]) -> MetricSpecs:
        recorded: dict[str, Spec] = {}
        for run in runs:
            raw = (run.metrics or {}).get("metric_specs")
            for name, value in (raw if isinstance(raw, dict) else {}).items():
                if name not in recorded and (spec := _parse(value)) is not None:
                    recorded[name] = spec
        return cls(recorded)

    def spec(self, metric: str) -> Spec:
        name = metric.rsplit("/", 1)[-1]
        return self.recorded.get(name) or _legacy(name)

    def lower_is_better(self, metric: str) -> bool:
        return self.spec(metric).higher_is_better is False

    def arrow(self, metric: str) -> str:
        """The header's mark: ↑ or ↓ for the better direction, nothing for a diagnostic."""
        better = self.spec(metric).higher_is_better
        return "" if better is None else " ↑" if better else " ↓"

    def bounds(self, metric: str) -> tuple[float, float] | None:
        return self.spec(metric).bounds
