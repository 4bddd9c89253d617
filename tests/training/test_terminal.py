"""What a user sees in a terminal: 1-based epochs, log lines on lines of their own, no adverts, no fake FLOPs."""

from __future__ import annotations

import os
import pty
import re
import shlex
import sys
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(*args: str, cwd: Path) -> str:
    """``python -m mmexp.train <args>`` on a pseudo-terminal (so the Rich bar is on); its output, escapes removed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a training run that sees a terminal
        os.chdir(cwd)
        os.environ.update(COLUMNS="160", WANDB_MODE="offline")
        os.execv(sys.executable, [sys.executable, "-m", "mmexp.train", *args])
    return terminal_output(pid, fd)


def terminal_output(pid: int, fd: int) -> str:
    """What the ``pty.fork`` child ``pid`` wrote to its terminal ``fd`` until it exited (successfully: asserted),
    escapes removed and line ends as ``\n``."""
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, b"".join(chunks)[-3000:]
    return ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r\n", "\n")


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_terminal_output_reads_well(tmp_path: Path) -> None:
    out = run_in_terminal(
        "trainer.max_epochs=2",
        "data.synthetic.n_samples=200",
        "logger=csv",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "Epoch 0/" not in out  # the bar counts as the log lines do
    for epoch in (1, 2):
        line = f"[mmexp.train][INFO] - epoch {epoch}/2:"
        assert line in out
        start = out.index(line) - len("[2026-11-23 23:57:54,135]")
        assert out[start - 1] in "\r\n", out[start - 80 : start + 80]  # a log line starts a line of its own
    assert "Tip" not in out and "litlogger" not in out
    assert "Total Flops" not in out and "FLOPs per sample: metrics.json" in out
    # the run ends with its answer, not Lightning's unrounded table and device lines
    for noise in ("Test metric", "DataLoader 0", "GPU available", "TPU available", "already configured", "eval mode"):
        assert noise not in out, noise
    (run,) = (tmp_path / "outputs" / "runs").iterdir()
    end = out[out.index("run done: ") :].splitlines()
    assert end[0].endswith(f"run done: outputs/runs/{run.name}")
    val, test = end[1].split(), end[2].split()
    assert [val[0], *val[1::2], test[0], *test[1::2]] == ["val", "f1_macro", "acc", "test", "f1_macro", "acc"], end
    numbers = val[2::2] + test[2::2]
    assert all(re.fullmatch(r"[01](\.\d{1,4})?", n) for n in numbers), end  # rounded: 4 significant digits
    command = shlex.split(end[4])  # a dir name with "=" is quoted for Hydra: one shell word either way
    assert end[3] == "next:" and command[:3] == ["python", "-m", "mmexp.eval"], end
    assert command[3].startswith("ckpt_path=") and f"{run.name}/checkpoints/best.ckpt" in command[3], end
