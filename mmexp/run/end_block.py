"""How a finished run answers: its dir, its key metrics rounded, and the commands a user types next.

Replaces Lightning's test table (unrounded floats, test only): metrics.json holds every number, the terminal
gets the few that answer "how did it do?" and where to go from here.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmexp.run.protect import process_rank

log = logging.getLogger("mmexp.train")
KEY_METRICS = ("f1_macro", "acc")  # shown beside the optimized metric, where the task has them
DIGITS = 4  # significant digits


def shown_path(path: Path) -> str:
    """``path`` as a user would type it: relative to the working directory when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def override(key: str, path: str) -> str:
    """``key=path`` as one shell word Hydra parses back to ``path`` (quoted when the path holds characters its
    override grammar reads, e.g. ``,`` or ``=``)."""
    if all(c.isalnum() or c in "/._-:+@~" for c in path):
        return f"{key}={path}"
    quoted = f"{key}='{path}'"  # Hydra's quoting; the shell's around it
    return f'"{quoted}"' if not any(c in path for c in "'\"$`\\!") else shlex.quote(quoted)


def _value(value: Any) -> str:
    return f"{value:.{DIGITS}g}" if isinstance(value, float) else str(value)


def metric_names(metrics: Mapping[str, Any], optimized: str | None) -> list[str]:
    """The optimized metric (``val/f1_macro`` -> ``f1_macro``) first, then ``KEY_METRICS``, where recorded."""
    names = [optimized.split("/", 1)[-1]] if optimized else []
    names += [n for n in KEY_METRICS if n not in names]
    recorded = {key.split("/", 1)[-1] for split in ("val", "test") for key in metrics.get(split, {})}
    return [n for n in names if n in recorded]


def metrics_lines(metrics: Mapping[str, Any], optimized: str | None, *, width: int = 5) -> list[str]:
    """One line per split: ``val   f1_macro 0.9875  acc 0.9876`` (the split name padded to ``width``)."""
    names = metric_names(metrics, optimized)
    lines = []
    for split in ("val", "test"):
        values = metrics.get(split, {})
        cells = [f"{n} {_value(values[f'{split}/{n}'])}" for n in names if f"{split}/{n}" in values]
        if cells:
            lines.append(f"{split:<{width}} " + "  ".join(cells))
    return lines


def end_block(run_dir: Path, metrics: Mapping[str, Any], *, optimized: str | None) -> str:
    """The lines a single run ends with (see the module docstring)."""
    run = shown_path(run_dir)
    lines = [f"run done: {run}", *(f"  {line}" for line in metrics_lines(metrics, optimized))]
    best = metrics.get("best_checkpoint")
    commands = []
    if best:
        ckpt = override("ckpt_path", shown_path(Path(best)))
        commands += [
            f"python -m mmexp.eval {ckpt}",
            f"python -m mmexp.predict {ckpt} data=folder data.root=<folder of new rows>",
        ]
    commands.append(f"python -m mmexp.report {shlex.quote(run)}")
    lines += ["next:", *(f"  {command}" for command in commands)]
    return "\n".join(lines)


def job_line(run_dir: Path, metrics: Mapping[str, Any], *, optimized: str | None) -> str:
    """A sweep job's one line (the sweep ends with its report): ``job done: <dir>: val ...; test ...``."""
    return f"job done: {shown_path(run_dir)}: " + "; ".join(metrics_lines(metrics, optimized, width=0))


def log_run_end(run_dir: Path, metrics: Mapping[str, Any], *, optimized: str | None, sweep_job: bool) -> None:
    """A run ends with ``end_block``; a sweep job with ``job_line`` (the sweep ends with its report). Rank zero only."""
    if process_rank() == 0:
        log.info((job_line if sweep_job else end_block)(run_dir, metrics, optimized=optimized))
