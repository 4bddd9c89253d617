"""Cheap checks of a composed config, run before torch is imported or any data is read."""

from __future__ import annotations

import math
from collections.abc import Callable

from omegaconf import DictConfig, ListConfig, OmegaConf

from mmexp.core.errors import ConfigError


def _class_weights(value: object) -> bool:
    """none, balanced or a non-empty list of positive numbers (its length is checked against the data)."""
    if value is None or value in ("none", "balanced"):
        return True
    return (
        isinstance(value, (list, ListConfig))
        and len(value) > 0
        and all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0 for w in value)
    )


def _seed(value: object) -> bool:
    """What numpy accepts as a seed (Lightning's seed_everything and the splits seed it)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


# key -> (is the value valid?, what a valid value looks like)
RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "seed": (_seed, "an integer from 0 to 4294967295, e.g. seed=0"),
    "split.seed": (_seed, "an integer from 0 to 4294967295, e.g. split.seed=0"),
    "data.batch_size": (lambda v: isinstance(v, int) and v > 0, "a positive integer, e.g. data.batch_size=64"),
    "data.eval_batch_size": (lambda v: v is None or (isinstance(v, int) and v > 0), "null or a positive integer"),
    "data.image_size": (lambda v: isinstance(v, int) and v >= 8, "an integer >= 8, e.g. data.image_size=32"),
    "data.num_workers": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0 = load in the main process)"),
    "data.sampler": (lambda v: v in (None, "none", "balanced"), "null (shuffle) or balanced"),
    "data.text.max_tokens": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "trainer.max_epochs": (
        lambda v: v is None or (isinstance(v, int) and (v >= 1 or v == -1)),
        "an integer >= 1 (or -1 for no limit)",
    ),
    "optimizer.lr": (lambda v: isinstance(v, (int, float)) and v > 0, "a positive number, e.g. optimizer.lr=1e-3"),
    "model.dropout": (lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1)"),
    "model.class_weights": (
        _class_weights,
        "none, balanced, or one positive weight per class in labels.json order, e.g. model.class_weights=[1.0,4.0]",
    ),
    "model.backbone_lr": (
        lambda v: v is None or (isinstance(v, (int, float)) and v > 0),
        "null (the optimizer's) or a positive number, e.g. model.backbone_lr=1e-5",
    ),
    "model.backbone_weight_decay": (
        lambda v: v is None or (isinstance(v, (int, float)) and v >= 0),
        "null (the optimizer's) or a number >= 0",
    ),
    "model.layer_lr_decay": (
        lambda v: v is None or (isinstance(v, (int, float)) and 0 < v <= 1),
        "null (no decay) or a number in (0, 1], e.g. model.layer_lr_decay=0.8",
    ),
    "image_encoder.lora_rank": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0: no adapters)"),
    "text_encoder.lora_rank": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0: no adapters)"),
    "image_encoder.unfreeze_last": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0: all frozen)"),
    "text_encoder.unfreeze_last": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0: all frozen)"),
}


def check_config(cfg: DictConfig) -> None:
    """Raise one ConfigError naming the first bad field and what a good value looks like."""
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra"))
    if missing:
        raise ConfigError(f"{missing[0]} is required: add {missing[0]}=<value> to the command line")
    for key, (ok, hint) in RULES.items():
        value = OmegaConf.select(cfg, key, default="__absent__")
        if value != "__absent__" and not ok(value):
            raise ConfigError(f"{key}={value!r} is invalid: expected {hint}")
    split = cfg.get("split") or {}
    if all(k in split for k in ("train", "val", "test")):
        from mmexp.data.splits import check_fractions

        check_fractions(split["train"], split["val"], split["test"])
