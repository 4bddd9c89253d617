"""Typed reads of configs: a run's config.yaml, and resolved copies of a config node."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from mmexp.core.errors import ConfigError


def load_config(path: Path) -> DictConfig:
    """A run's saved config.yaml (a mapping at the top, as every run writes it)."""
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} holds a list, not a run config; it is not a config.yaml that mmexp wrote")
    return cfg


def resolved_dict(node: DictConfig) -> dict[str, Any]:
    """``node`` as plain dicts and lists, interpolations resolved."""
    return cast(dict[str, Any], OmegaConf.to_container(node, resolve=True))  # a DictConfig converts to a dict


def resolved_copy(node: DictConfig) -> DictConfig:
    """A detached copy of ``node`` with its interpolations resolved."""
    return OmegaConf.create(resolved_dict(node))
