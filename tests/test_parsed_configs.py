"""The tests' parse-once reader of packaged configs (tests/parsed_configs.py) changes no composed config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra._internal.core_plugins import importlib_resources_config_source
from omegaconf import OmegaConf

from mmexp.app.compose import compose_train_config
from tests import parsed_configs

OVERRIDES = ["fusion=attention", "experiment=seed000_product", "logger=many", "task=multilabel"]


def test_compositions_equal_hydras_own_and_share_no_node(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = len(parsed_configs._parsed)
    first = compose_train_config(OVERRIDES, run_dir=Path("run"))
    assert parsed > 50 and importlib_resources_config_source.OmegaConf is parsed_configs._OmegaConfParsingOnce
    second = compose_train_config(OVERRIDES, run_dir=Path("run"))
    assert len(parsed_configs._parsed) == parsed  # every file was parsed at import, none again
    second.optimizer.lr = 123.0
    assert first.optimizer.lr != 123.0  # each composition has nodes of its own

    monkeypatch.setattr(importlib_resources_config_source, "OmegaConf", OmegaConf)  # Hydra's own reader
    reference = compose_train_config(OVERRIDES, run_dir=Path("run"))
    assert OmegaConf.to_yaml(first) == OmegaConf.to_yaml(reference)
