"""Long steps show progress: a Rich bar with rows/s and time left on a terminal, a line per ~10 % in a log."""

from __future__ import annotations

import logging
import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from mmexp.core import progress as progress_module
from tests.training.test_terminal import terminal_output

STEP = """
import logging, sys, time
from mmexp.core.progress import progress
handlers = [logging.StreamHandler(sys.stdout), logging.FileHandler(sys.argv[1])]
logging.basicConfig(level=logging.INFO, handlers=handlers, format="[%(name)s] %(message)s")
rows, pause = int(sys.argv[2]), float(sys.argv[3])
with progress("demo: encoding", rows, logger=logging.getLogger("demo")) as shown:
    for _ in range(rows):
        time.sleep(pause)
        shown.advance(1)
logging.getLogger("demo").info("demo: encoded %d rows", rows)
"""


def run_step(script: Path, log_file: Path, rows: int, pause: float, *, terminal: bool) -> str:
    """The step in a child process, on a pseudo-terminal or a plain pipe; its output, escapes removed."""
    args = [sys.executable, str(script), str(log_file), str(rows), str(pause)]
    env = {**os.environ, "COLUMNS": "120", "PYTHONUNBUFFERED": "1"}
    if not terminal:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout + done.stderr
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, args, env)
    return terminal_output(pid, fd)


@pytest.fixture
def step_script(tmp_path: Path) -> Path:
    script = tmp_path / "step.py"
    script.write_text(textwrap.dedent(STEP))
    return script


def tenth_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "demo: encoding:" in line and "rows/s" in line]


def test_a_terminal_gets_a_bar_and_the_log_file_gets_a_line_per_tenth(tmp_path: Path, step_script: Path) -> None:
    out = run_step(step_script, tmp_path / "log", rows=30, pause=0.07, terminal=True)  # ~2.1 s; shown after 1 s
    assert "demo: encoding" in out and "rows/s" in out and "/30" in out, out
    assert "0:00:0" in out  # elapsed and time left, as Lightning's bar shows them
    assert not tenth_lines(out), out  # on the terminal the bar, not log lines
    assert "[demo] demo: encoded 30 rows" in out  # the step's own line still prints
    lines = tenth_lines((tmp_path / "log").read_text())
    assert 3 <= len(lines) <= 6, lines  # 50 %..90 % (nothing in the first second)
    assert all(" left" in line for line in lines)


def test_a_pipe_gets_one_line_per_tenth_and_a_fast_step_nothing(tmp_path: Path, step_script: Path) -> None:
    out = run_step(step_script, tmp_path / "log", rows=30, pause=0.07, terminal=False)
    lines = tenth_lines(out)
    assert 3 <= len(lines) <= 6, out
    assert lines == tenth_lines((tmp_path / "log").read_text())  # the same lines in the log file
    assert "━" not in out and "\r" not in out  # no bar drawn into a pipe
    percents = [int(line.split("(")[1].split(" %")[0]) for line in lines]
    assert percents == sorted(set(percents)) and percents[-1] == 90, lines  # 100 % is the step's own line
    assert "rows/s" in lines[0] and " left" in lines[0]
    fast = run_step(step_script, tmp_path / "log2", rows=30, pause=0.0, terminal=False)
    assert not tenth_lines(fast) and "demo: encoded 30 rows" in fast


def test_feature_extraction_image_decoding_latency_and_data_generation_report_progress(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from mmexp.contracts import EncoderOutput
    from mmexp.data.image_cache import decode_into
    from mmexp.data.synthetic import SyntheticSpec, ensure_synthetic
    from mmexp.data.tensors import DatasetTensors
    from mmexp.evaluation.complexity import latency_seconds
    from mmexp.training import feature_cache
    from tests.data_factory import clean_rows

    monkeypatch.setattr(progress_module, "SHOW_AFTER_S", 0.0)
    caplog.set_level(logging.INFO)
    rows = 40
    tensors = DatasetTensors(
        images=torch.zeros(rows, 3, 4, 4, dtype=torch.uint8),
        text_ids=torch.zeros(rows, 3, dtype=torch.long),
        text_mask=torch.ones(rows, 3, dtype=torch.bool),
        labels=torch.zeros(rows, dtype=torch.long),
        texts=["x"] * rows,
        ids=[str(i) for i in range(rows)],
    )
    inputs = feature_cache.DatasetInputs(
        tensors=tensors,
        image_key="k",
        cache_dir=tmp_path,
        batch_size=4,
    )
    out = EncoderOutput(torch.zeros(4, 2), torch.zeros(4, 3, 2), torch.ones(4, 3, dtype=torch.bool))
    cache = feature_cache.compute_features(
        lambda batch: out,
        inputs,
        device=torch.device("cpu"),
        budget_bytes=1e9,
        context=torch.no_grad(),
        what="feature cache: text encoder Demo: computing",
    )
    assert cache is not None and len(cache.pooled) == rows
    monkeypatch.setattr("mmexp.data.image_cache.CHUNK", 2)
    paths = [tmp_path / row["image"] for row in clean_rows(tmp_path, 10)]
    decode_into(np.zeros((10, 3, 8, 8), dtype=np.uint8), paths, 8, "squash")
    latency_seconds(lambda: None, torch.device("cpu"), runs=9, warmup=1)
    ensure_synthetic(SyntheticSpec(n_samples=20, image_size=8), tmp_path / "synthetic")
    text = caplog.text
    assert "feature cache: text encoder Demo: computing: 4/40 rows (10 %)" in text
    assert "data: decoding images: 2/10 images (20 %)" in text
    assert "complexity: timing inference: 1/10 batches (10 %)" in text
    assert "data: writing the built-in dataset: 2/20 rows (10 %)" in text
