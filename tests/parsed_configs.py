"""Importing this module makes Hydra parse each packaged YAML file once per test process, not once per composition.

A test process composes the training config a few hundred times, and each command a test runs composes it twice
(``@hydra.main``); each composition reads ~24 packaged YAML files (mmexp's groups and Hydra's own) and a third of
its ~0.17 s is parsing them. The files do not change during a session, so their parsed text is kept (keyed by the
text itself, so an edited file is parsed again) and every composition gets fresh OmegaConf nodes
(``OmegaConf.create`` copies the parsed values into new nodes): what Hydra merges, and may mutate, is never shared
between compositions. Only Hydra's reader of packaged configs uses it; everything else calls ``OmegaConf.load``.

Every packaged file is parsed at import, so the commands forked from the warm server (tests/forked_cli.py, which
imports this module) start with all of them parsed, and with Hydra's plugins already scanned.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import IO, Any

import yaml
from hydra._internal.core_plugins import importlib_resources_config_source
from hydra.core.plugins import Plugins
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf._utils import get_yaml_loader

PACKAGES = ("mmexp.conf", "hydra.conf")
_parsed: dict[str, Any] = {}


def _parse(text: str) -> Any:
    if text not in _parsed:
        _parsed[text] = yaml.load(text, Loader=get_yaml_loader())
    return _parsed[text]


class _OmegaConfParsingOnce(OmegaConf):
    @staticmethod
    def load(file_: IO[Any]) -> DictConfig | ListConfig:  # type: ignore[override]
        """``OmegaConf.load`` of an open packaged file, with the YAML parsed once per distinct text."""
        parsed = _parse(file_.read())
        return OmegaConf.create({} if parsed is None else parsed)


def _yaml_files(folder: Traversable) -> list[Traversable]:
    files = []
    for entry in folder.iterdir():
        if entry.is_dir():
            files.extend(_yaml_files(entry))
        elif entry.name.endswith(".yaml"):
            files.append(entry)
    return files


Plugins.instance()  # its first call scans the plugins, executing their modules again: the patch goes after
importlib_resources_config_source.OmegaConf = _OmegaConfParsingOnce  # type: ignore[misc]
for _package in PACKAGES:
    for _file in _yaml_files(resources.files(_package)):
        _parse(_file.read_text(encoding="utf-8"))
