"""The model-defining part of a run config, and the stamp of it every checkpoint carries.

A trained run is rebuilt from its dir's config.yaml; the checkpoint's weights only fit the model that config
built. A checkpoint copied into another run's dir, or a config.yaml edited after training, would rebuild another
model (another image size, another encoder) and either fail deep in ``load_state_dict`` or, worse, load and
score wrongly. So training writes a stamp of this part of the config into each checkpoint, and every command
that rebuilds a trained run compares it with the config.yaml it is about to use.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig

from mmexp.core.config_io import resolved_dict

MODEL_KEYS = ("model", "image_encoder", "text_encoder", "fusion", "task")  # what build_model reads
DATA_KEYS = ("text", "image_size", "resize", "max_image_pixels", "id_col", "image_col", "text_col", "label_col")
STAMP_KEY = "mmexp_model_config"  # the checkpoint's entry: {"sha256": ..., "values": {dotted key: JSON value}}
NOT_MODEL = ("model.compile",)  # a training-speed choice, not the model


def model_config(cfg: DictConfig) -> dict[str, Any]:
    """The part of a run config that defines the model and its inputs (a model bundle's config.yaml)."""
    out: dict[str, Any] = {key: _resolved(cfg, key) for key in MODEL_KEYS}
    out["model"] = {**(out["model"] or {}), "compile": False}
    data = cfg.get("data") or {}
    out["data"] = {key: _resolved(data, key) for key in DATA_KEYS if key in data}
    return out


def _resolved(node: Any, key: str) -> Any:
    value = node.get(key)
    return resolved_dict(value) if isinstance(value, DictConfig) else value


def _leaves(node: Any, prefix: str = "") -> dict[str, str]:
    """Dotted key -> JSON of the value, for every leaf (lists are leaves)."""
    if isinstance(node, dict) and node:
        out: dict[str, str] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(node, sort_keys=True)}


def config_stamp(cfg: DictConfig) -> dict[str, Any]:
    """What a checkpoint stores: a digest of the model-defining config and its values by dotted key (plain
    strings, so the checkpoint still loads with ``weights_only=True``)."""
    values = {k: v for k, v in _leaves(model_config(cfg)).items() if k not in NOT_MODEL}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
    return {"sha256": digest, "values": values}


def stamp_differences(saved: dict[str, Any], cfg: DictConfig, *, limit: int = 4) -> list[str]:
    """``key (checkpoint X, config Y)`` for each model-defining value that differs (at most ``limit``, then
    a count); empty when the config is the one the checkpoint was trained with."""
    now = config_stamp(cfg)
    if saved.get("sha256") == now["sha256"]:
        return []
    old, new = dict(saved.get("values") or {}), now["values"]
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if not keys:
        return ["its digest (the same values, stamped by another mmexp)"]
    shown = [f"{k} (checkpoint {_short(old.get(k))}, config {_short(new.get(k))})" for k in keys[:limit]]
    return shown + ([f"{len(keys) - limit} more"] if len(keys) > limit else [])


def _short(value: str | None) -> str:
    text = "absent" if value is None else value
    return text if len(text) <= 60 else f"{text[:57]}..."
