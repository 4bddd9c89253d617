"""mmexp.app.cli.command_line: what every ``python -m mmexp.<command>`` does before Hydra reads its arguments."""

from __future__ import annotations

import atexit
import gc
import sys
from collections.abc import Callable
from typing import Any

import pytest

from mmexp.app.cli import command_line


def test_a_command_quotes_path_overrides_and_exits_without_a_last_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    at_exit: list[Callable[..., Any]] = []
    monkeypatch.setattr(atexit, "register", at_exit.append)
    monkeypatch.setattr(sys, "argv", ["mmexp.train", "hydra.run.dir=out/0_fusion=concat", "seed=1"])
    seen: list[list[str]] = []
    command_line(lambda: seen.append(sys.argv[1:]))()
    assert seen == [['hydra.run.dir="out/0_fusion=concat"', "seed=1"]]
    assert at_exit == [gc.freeze]
