"""Run a ``python -m mmexp.<command>`` in this process, through its ``@hydra.main`` and Hydra callbacks, so a test
sees what the command line does (claims, one-line errors) without paying a subprocess's torch import."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra


def run_main(command: str, *args: str) -> str | None:
    """The message ``python -m mmexp.<command> <args>`` exits with ('' for a plain exit), or None when it returns."""
    main = importlib.import_module(f"mmexp.{command}").main
    saved, root = sys.argv, logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sys.argv = [f"mmexp.{command}", *args]
    try:
        main()
    except SystemExit as exited:
        return "" if exited.code is None else str(exited.code)
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()
        for handler in set(root.handlers) - set(handlers):  # Hydra's job logging (a file in the run dir)
            handler.close()
        root.handlers[:], root.level = handlers, level
    return None


def tree(folder: Path) -> dict[str, tuple[bool, bytes | None, int]]:
    """Every path under ``folder`` (and the folder itself) with its bytes (files) and modification time."""
    paths = [folder, *sorted(folder.rglob("*"))]
    return {
        str(p.relative_to(folder)): (p.is_dir(), None if p.is_dir() else p.read_bytes(), p.stat().st_mtime_ns)
        for p in paths
    }
