"""The classifier's option rules, without torch: the classifier applies them where it is built, and the config
checks call the same functions before torch is imported, so each rule is written once."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mmexp.core.errors import ConfigError


def positive_numbers(values: Sequence[object]) -> bool:
    """Every value is a finite number above 0 (booleans are not numbers here)."""
    return all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0 for w in values)


def class_weights_option(value: object) -> str | list[float] | None:
    """``model.class_weights`` as None, ``"balanced"`` or a list of positive finite floats (its length is checked
    against the label map when the data is read)."""
    if value is None or value == "none":
        return None
    if value == "balanced":
        return "balanced"
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ConfigError(
            f"model.class_weights={value!r} must be none, balanced or one positive weight per class in "
            "labels.json order, e.g. model.class_weights=[1.0,4.0]"
        )
    if not positive_numbers(value):
        raise ConfigError(f"model.class_weights={list(value)!r}: every weight must be a positive number")
    return [float(w) for w in value]


def pos_weight_option(value: object) -> str | float | list[float] | None:
    """``model.pos_weight`` as None, ``"balanced"``, one positive number or a list of them."""
    if value is None or value == "none":
        return None
    if value == "balanced":
        return "balanced"
    values = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if isinstance(values, str) or not isinstance(values, Sequence) or not values or not positive_numbers(values):
        raise ConfigError(
            f"model.pos_weight={value!r} must be none, balanced, a positive number or a list of them, e.g. 3.0"
        )
    return float(values[0]) if not isinstance(value, Sequence) else [float(w) for w in values]


def check_layer_lr_decay(value: object) -> None:
    """``model.layer_lr_decay``: null (no decay) or a number in (0, 1]."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(
            f"model.layer_lr_decay={value!r} must be in (0, 1] (null: no decay), e.g. model.layer_lr_decay=0.8"
        )
