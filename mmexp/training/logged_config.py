"""What a run's dashboards show as its config: the user's choices, not every internal key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NOT_A_CHOICE = ("hydra", "paths", "callbacks", "logger")  # groups that say where and how, not what is trained
INTERNAL = (  # resolved keys about bookkeeping, speed or memory, not about the experiment
    "hydra.",
    "paths.",
    "callbacks.",
    "logger.",
    "ckpt_path",
    "resume",
    "num_threads",
    "trainer.enable_",
    "trainer.log_every_n_steps",
    "trainer.plugins",
    "trainer.num_sanity_val_steps",
    "data.num_workers",
    "data.eval_batch_size",
    "data.image_cache",
    "data.device_resident",
    "data.resident_budget_gb",
    "data.max_image_pixels",
    "model.feature_cache",
)


def experiment_params(
    flat_config: Mapping[str, Any], *, choices: Mapping[str, Any], overrides: Sequence[str]
) -> dict[str, Any]:
    """The params every logger gets: each config group's chosen option (``fusion: concat``), the command line's
    ``overrides`` as one string, then the resolved values that define the experiment (``optimizer.lr``,
    ``split.fold``), without ``_target_``/``_partial_`` (the group's option names the class) or ``INTERNAL``."""
    chosen = {
        group: option
        for group, option in choices.items()
        if option is not None and group.split("/")[0] not in NOT_A_CHOICE
    }
    values = {
        key: value
        for key, value in flat_config.items()
        if key not in chosen and not key.startswith(INTERNAL) and not key.rsplit(".", 1)[-1].startswith("_")
    }
    return {**chosen, "overrides": " ".join(overrides), **values}
