"""Hydra parses each of mmexp's YAML files once per test process, not once per composition.

A test process composes the training config ~270 times; each composition reads ~24 packaged YAML files (mmexp's
groups and Hydra's own) and a third of its ~0.17 s is parsing them. The files do not change during a session, so
the parsed text is kept (keyed by the text itself, so an edited file is parsed again) and every composition gets
fresh OmegaConf nodes (``OmegaConf.create`` copies the parsed values into new nodes): what Hydra merges, and may
mutate, is never shared between compositions.
Only Hydra's reader of packaged configs uses it; everything else calls ``OmegaConf.load`` as before.
"""

from __future__ import annotations

from typing import IO, Any

import yaml
from hydra._internal.core_plugins import importlib_resources_config_source
from hydra.core.plugins import Plugins
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf._utils import get_yaml_loader

_parsed: dict[str, Any] = {}


class _OmegaConfParsingOnce(OmegaConf):
    @staticmethod
    def load(file_: IO[Any]) -> DictConfig | ListConfig:  # type: ignore[override]
        """``OmegaConf.load`` of an open packaged file, with the YAML parsed once per distinct text."""
        text = file_.read()
        if text not in _parsed:
            _parsed[text] = yaml.load(text, Loader=get_yaml_loader())
        parsed = _parsed[text]
        return OmegaConf.create({} if parsed is None else parsed)


def install() -> None:
    """Make Hydra's packaged-config reader (``pkg://`` sources: mmexp.conf, hydra.conf) parse each text once."""
    Plugins.instance()  # its first call scans the plugins, executing their modules again: the patch goes after
    importlib_resources_config_source.OmegaConf = _OmegaConfParsingOnce  # type: ignore[misc]
