"""Checks of a composed config, run before any data is read or any model is built; every problem is reported.

``RULES`` holds only the checks no component owns. The options a component checks where it is built
(``model.class_weights``, ``model.layer_lr_decay``, ``*.lora_rank``, ``data.sampler``, the split's fractions,
folds and ``on_leak``) are checked here by calling that component's own rule (``OWNED``, from torch-free
modules) or by building the component when it is cheap (the split), so each rule is written once. When those
value checks pass, every component's options are bound to its constructor's signature
(``training/option_signatures.option_problems``), which imports the components (torch, Lightning: seconds) but
builds none. So a bad value is reported in < 1 s with every other bad value; an option no constructor
declares, with every other such option, once the values are right (docs/decisions.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmexp.core.errors import ConfigError
from mmexp.data.sampler_option import sampler_option
from mmexp.models.encoders.fine_tuning import check_lora_rank
from mmexp.training.options import check_layer_lr_decay, class_weights_option

ABSENT = "__absent__"


def _seed(value: object) -> bool:
    """What numpy accepts as a seed (Lightning's seed_everything and the splits seed it)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


# key -> (is the value valid?, what a valid value looks like): options no constructor checks
RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "seed": (_seed, "an integer from 0 to 4294967295, e.g. seed=0"),
    "split.seed": (_seed, "an integer from 0 to 4294967295, e.g. split.seed=0"),
    "data.batch_size": (lambda v: isinstance(v, int) and v > 0, "a positive integer, e.g. data.batch_size=64"),
    "data.eval_batch_size": (lambda v: v is None or (isinstance(v, int) and v > 0), "null or a positive integer"),
    "data.image_size": (lambda v: isinstance(v, int) and v >= 8, "an integer >= 8, e.g. data.image_size=32"),
    "data.num_workers": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0 = load in the main process)"),
    "data.text.max_tokens": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "trainer.max_epochs": (
        lambda v: v is None or (isinstance(v, int) and (v >= 1 or v == -1)),
        "an integer >= 1 (or -1 for no limit)",
    ),
    "optimizer.lr": (lambda v: isinstance(v, (int, float)) and v > 0, "a positive number, e.g. optimizer.lr=1e-3"),
    "model.dropout": (lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1)"),
    "model.backbone_lr": (
        lambda v: v is None or (isinstance(v, (int, float)) and v > 0),
        "null (the optimizer's) or a positive number, e.g. model.backbone_lr=1e-5",
    ),
    "model.backbone_weight_decay": (
        lambda v: v is None or (isinstance(v, (int, float)) and v >= 0),
        "null (the optimizer's) or a number >= 0",
    ),
    "image_encoder.unfreeze_last": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0: all frozen)"),
    "text_encoder.unfreeze_last": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0: all frozen)"),
}

# key -> the owning component's rule (raises a one-line ConfigError), called on the configured value
OWNED: dict[str, Callable[[Any], object]] = {
    "model.class_weights": class_weights_option,  # MultimodalClassifier
    "model.layer_lr_decay": check_layer_lr_decay,  # parameter_groups
    "image_encoder.lora_rank": functools.partial(check_lora_rank, "image_encoder"),  # configure_backbone
    "text_encoder.lora_rank": functools.partial(check_lora_rank, "text_encoder"),
    "data.sampler": sampler_option,  # MultimodalDataModule
}


def check_config(cfg: DictConfig) -> None:
    """Raise one ConfigError with a line per problem (each naming the field and the fix), or return."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigError("\n".join(problems))


def config_problems(cfg: DictConfig) -> list[str]:
    """Every problem of ``cfg``, one line each: missing values, rules, owned rules and the split's own checks;
    when there are none, the options no constructor declares (binding them imports the components)."""
    from mmexp.training.build import instantiate
    from mmexp.training.option_signatures import option_problems, signature_problems

    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra"))
    problems = [f"{key} is required: add {key}=<value> to the command line" for key in missing]
    for key, (ok, hint) in RULES.items():
        value = OmegaConf.select(cfg, key, default=ABSENT)
        if value != ABSENT and not ok(value):
            problems.append(f"{key}={value!r} is invalid: expected {hint}")
    for key, rule in OWNED.items():
        value = OmegaConf.select(cfg, key, default=ABSENT)
        if value != ABSENT:
            problems.extend(_raised(rule, value))
    split = cfg.get("split")
    if isinstance(split, DictConfig) and "_target_" in split and not OmegaConf.missing_keys(split):
        split_options = signature_problems(split, "split")  # the split's module is cheap (numpy)
        own = split_options or _raised(instantiate, split, config_key="split")
        problems.extend(line for line in own if line not in problems)
    if problems:  # the value checks: no model component imported, so a bad value is a < 1 s error
        return problems
    return option_problems(cfg)


def _raised(rule: Callable[..., object], *args: Any, **kwargs: Any) -> list[str]:
    """The message of the ConfigError ``rule(*args)`` raises, as a list of lines (empty: it passed)."""
    try:
        rule(*args, **kwargs)
    except ConfigError as e:
        return str(e).splitlines()
    return []
