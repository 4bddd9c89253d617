"""The private Lightning APIs mmexp relies on still exist with the shape its code expects (an upgrade that moves
one fails here, by name, instead of an override that silently stops being called)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger

from mmexp.training import csv_logger, resilience
from mmexp.training.lightning_private import OVERRIDDEN_HOOKS, PRIVATE_ATTRIBUTES


@pytest.mark.parametrize(("cls", "name", "params"), OVERRIDDEN_HOOKS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_overridden_hook_exists_with_the_expected_parameters(cls: type, name: str, params: tuple[str, ...]) -> None:
    hook = getattr(cls, name, None)
    assert callable(hook), f"lightning no longer has {cls.__name__}.{name}: update mmexp/training/lightning_private.py"
    assert tuple(inspect.signature(hook).parameters)[1:] == params


@pytest.mark.parametrize(("cls", "name"), PRIVATE_ATTRIBUTES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_private_attribute_exists_on_an_instance(cls: type, name: str, tmp_path: Path) -> None:
    assert cls is CSVLogger  # the only class listed; build another here when one is added
    assert hasattr(CSVLogger(str(tmp_path)), name)


def test_the_rng_states_round_trip_through_the_compat_functions() -> None:
    import random

    state = resilience.RngStateInCheckpoint()
    saved = state.state_dict()
    first = random.random()
    state.load_state_dict(saved)
    assert random.random() == first


def test_no_module_imports_a_private_lightning_name_but_the_compat_module() -> None:
    """Private names enter through lightning_private only (the subclasses' overrides are listed there)."""
    package = Path(csv_logger.__file__).parents[1]
    offenders = [
        f"{path.relative_to(package)}: {alias.name}"
        for path in package.rglob("*.py")
        if path.name != "lightning_private.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lightning")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert offenders == []
