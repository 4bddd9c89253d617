"""mmexp: a Hydra-configured Lightning experiment runner for image + text classification.

The Python API (docs/portable.md) loads lazily, so ``import mmexp`` stays light: ``mmexp.fit(overrides,
data=...)`` (also spelled ``mmexp.train(...)``) -> ``Run``; ``mmexp.load(path)`` -> ``Predictor``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmexp.core.version import __version__

if TYPE_CHECKING:
    from mmexp.api import Run, fit, load
    from mmexp.portable.predictor import Predictor

__all__ = ["Predictor", "Run", "__version__", "fit", "load"]
_API = {"fit": "mmexp.api", "load": "mmexp.api", "Run": "mmexp.api", "Predictor": "mmexp.portable.predictor"}


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use; ``train`` is the (callable) module mmexp.train."""
    if name == "train":
        return importlib.import_module("mmexp.train")
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'mmexp' has no attribute {name!r}")
