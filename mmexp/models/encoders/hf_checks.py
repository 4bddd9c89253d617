"""Checks that a Hugging Face backbone belongs where the config put it: an image model as the image encoder, a text
model as the text encoder, and its files' weights for its architecture (not a freshly initialised network).

transformers builds any architecture from any weights file and only logs the keys it had to initialise; a text
model given as the image encoder fails deep inside its forward. Both become one line naming the fix.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from mmexp.core.errors import ConfigError

log = logging.getLogger(__name__)
INPUTS = {"image": "pixel_values", "text": "input_ids"}  # what each modality's backbone forward() reads
NEW_WEIGHTS_LIMIT = 0.5  # more than this share of the parameters initialised afresh: not this model's weights


def check_modality(model: Any, name: str, modality: str) -> None:
    """``model`` (a tower, for two-tower models) reads ``modality``'s input, else one line naming the right group."""
    params = inspect.signature(model.forward).parameters
    if INPUTS[modality] in params:
        return
    other = next((m for m, arg in INPUTS.items() if arg in params), None)
    if other is None and any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params.values()):
        return  # a forward(*args, **kwargs) wrapper: its signature cannot tell
    if other is None:
        kind, fix = "a model that reads neither images nor texts", "give a vision or text backbone"
    else:
        kind, fix = (
            f"{'an' if other == 'image' else 'a'} {other} model",
            f"use it as {other}_encoder=hf {other}_encoder.name={name}",
        )
    raise ConfigError(f"{modality}_encoder.name={name} is {kind} ({type(model).__name__}); {fix}")


def check_weights_loaded(model: Any, info: dict[str, Any], name: str, field: str) -> None:
    """Refuse a backbone whose weights are mostly newly initialised (the files hold another architecture's)."""
    mismatched = {str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys") or ()}
    missing = set(info.get("missing_keys") or ()) | mismatched
    if not missing:
        return
    state = model.state_dict()
    total = sum(t.numel() for t in state.values())
    fresh = sum(state[k].numel() for k in missing if k in state)
    shown = ", ".join(sorted(missing)[:3])
    if not total or fresh / total <= NEW_WEIGHTS_LIMIT:  # e.g. a pooler saved without: say so, go on
        log.warning("%s=%s: %d weight(s) not in its files start at random (%s)", field, name, len(missing), shown)
        return
    raise ConfigError(
        f"{field}={name}: {fresh / total:.0%} of the weights of {type(model).__name__} are not in its files and "
        f"would be initialised at random (e.g. {shown}); its weights belong to another architecture: give the "
        "directory save_pretrained wrote for this model"
    )
