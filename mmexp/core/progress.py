"""Progress of long steps outside Lightning's loops (frozen features, image decoding, latency and corruption passes).

On a terminal: a Rich bar like the epoch bar (``training/terminal.py``) with rows/s, elapsed and time left,
removed when the step ends (the step's own log line says what it did), and one line per ~10 % in the log file
only. Otherwise (a pipe, a log file, Slurm): one log line per ~10 % wherever the log goes. Either way only once
the step has run ``SHOW_AFTER_S``: a step that ends sooner shows nothing, so fast steps and the test suite stay
quiet. DDP ranks other than zero show nothing: every rank does the same work.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress

SHOW_AFTER_S = 1.0  # seconds before a bar or a log line appears
STEPS = 10  # log lines per step when not on a terminal (one per 10 %)
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID")  # as mmexp.run.protect.process_rank reads them

Redirected = list[tuple[logging.StreamHandler[TextIO], TextIO]]


def on_terminal() -> bool:
    """The rule the Trainer's bar follows (``mmexp_isatty``): a bar when stdout is a terminal."""
    return sys.stdout.isatty()


def _rank_zero() -> bool:
    return all(os.environ.get(key, "0") == "0" for key in RANK_VARIABLES)


def redirect_log_handlers() -> Redirected:
    """While a Rich bar is live, Rich replaces sys.stdout/stderr with proxies that print above it; a log handler
    configured earlier still holds the real stream, so point it at the proxy meanwhile (undo: ``restore``)."""
    real = {id(sys.__stdout__): sys.stdout, id(sys.__stderr__): sys.stderr}
    redirected: Redirected = []
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and id(handler.stream) in real:
            redirected.append((handler, handler.stream))
            handler.setStream(real[id(handler.stream)])
    return redirected


def restore(redirected: Redirected) -> None:
    for handler, stream in redirected:
        handler.setStream(stream)


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


class StepProgress:
    """Counts the rows of one step; shows a bar or logs lines (see the module docstring). Use ``progress()``."""

    def __init__(
        self,
        what: str,
        total: int,
        *,
        unit: str,
        logger: logging.Logger,
        terminal: bool,
        show_after: float | None = None,
    ) -> None:
        self.what, self.total, self.unit, self.logger = what, max(total, 0), unit, logger
        self.terminal, self.show_after = terminal, SHOW_AFTER_S if show_after is None else show_after
        self.done, self.start = 0, time.perf_counter()
        self.next_line = 1  # the next tenth to log
        self.quiet = not _rank_zero() or self.total == 0
        self._bar: RichProgress | None = None
        self._redirected: Redirected = []

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def seconds_left(self) -> float:
        rate = self.rate()
        return (self.total - self.done) / rate if rate else 0.0

    def advance(self, rows: int = 1) -> None:
        self.done = min(self.done + rows, self.total)
        if self.quiet or time.perf_counter() - self.start < self.show_after:
            return
        if self.terminal:
            self._update_bar()
        self._log_lines()

    def _log_lines(self) -> None:
        tenth = self.done * STEPS // self.total if self.total else 0
        if tenth < self.next_line or self.done >= self.total:  # the step's own line reports its end
            return
        self.next_line = tenth + 1
        percent, left = 100 * self.done // self.total, _duration(self.seconds_left())
        args = (self.what, self.done, self.total, self.unit, percent, self.rate(), self.unit, left)
        message = "%s: %d/%d %s (%d %%), %.1f %s/s, %s left"
        if not self.terminal:
            self.logger.info(message, *args)
        elif self.logger.isEnabledFor(logging.INFO):  # the bar is on screen: the lines go to the log file only
            record = self.logger.makeRecord(self.logger.name, logging.INFO, __file__, 0, message, args, None)
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
                    handler.handle(record)

    def _update_bar(self) -> None:
        if self._bar is None:
            self._bar = self._start_bar()
        left = str(timedelta(seconds=round(self.seconds_left())))
        self._bar.update(self._bar.task_ids[0], completed=self.done, rate=f"{self.rate():.1f} {self.unit}/s", left=left)

    def _start_bar(self) -> RichProgress:
        from rich import get_console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        bar = RichProgress(  # Lightning's columns: description, bar, done/total, elapsed • left, speed
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(self.unit),
            TimeElapsedColumn(),
            TextColumn("• {task.fields[left]}"),
            TextColumn("{task.fields[rate]}"),
            console=get_console(),  # the console Lightning's bar draws on
            transient=True,
            get_time=time.perf_counter,
        )
        bar.add_task(self.what, total=self.total, completed=self.done, rate="", left="-:--:--")
        bar.tasks[0].start_time = self.start  # elapsed counts from the step's start, not the bar's
        bar.start()
        self._redirected = redirect_log_handlers()
        return bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            restore(self._redirected)
            self._bar, self._redirected = None, []


@contextmanager
def progress(
    what: str, total: int, *, unit: str = "rows", logger: logging.Logger, terminal: bool | None = None
) -> Iterator[StepProgress]:
    """Show the progress of ``total`` ``unit`` of work; call ``.advance(n)`` as rows finish.

    ``what`` names the step as the caller's log lines do ("feature cache: text encoder MiniLM"); the lines go
    to ``logger``, so they land in the run's log file beside the step's own lines.
    """
    step = StepProgress(what, total, unit=unit, logger=logger, terminal=on_terminal() if terminal is None else terminal)
    try:
        yield step
    finally:
        step.close()
