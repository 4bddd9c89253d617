"""A full disk or a read-only dir ends a run with one line naming the path and the cause, nothing half-written.

The failures are real operating-system errors raised where mmexp writes: a file size limit (RLIMIT_FSIZE, so
the kernel refuses the write inside torch's checkpoint writer with EFBIG, exactly as a full disk refuses it
with ENOSPC), ENOSPC from ``fsync`` (how a full network or delayed-allocation disk reports it), and a dir
without write permission (as root, the command runs without the capabilities that override permissions).
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from tests.conftest import FAST_DATA, REPO, run_cli

RUN = ["debug=fast", FAST_DATA, "logger=csv", "trainer.max_epochs=2", "trainer.limit_train_batches=3"]


class FileSizeLimit(Callback):
    """Once training starts, no file this process writes may grow past ``limit_bytes`` (SIGXFSZ ignored, so
    the write fails with EFBIG instead of killing the process). The data caches are written before."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes

    def on_train_start(self, trainer, pl_module) -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


class DiskFullFrom(Callback):
    """From epoch ``epoch`` on, ``fsync`` of a file whose name contains ``name`` fails with ENOSPC."""

    def __init__(self, epoch: int, name: str) -> None:
        self.epoch, self.name = epoch, name

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch != self.epoch:
            return
        fsync, name = os.fsync, self.name

        def full(fd: int) -> None:
            if name in os.readlink(f"/proc/self/fd/{fd}"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            fsync(fd)

        os.fsync = full


def _cli(tmp_path: Path, cache_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("mmexp.train", f"paths.cache_dir={cache_dir}", *args, cwd=tmp_path, extra_path=REPO)


def _error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``mmexp: error:`` line of a failed command, which printed no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output and "unexpected pos" not in output, output[-3000:]
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("mmexp: error:")]
    return line


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_a_checkpoint_the_disk_cannot_take_is_one_line_and_no_partial_file(tmp_path: Path, cache_dir: Path) -> None:
    run = tmp_path / "run"
    limit = [
        "+callbacks.limit._target_=tests.faults.test_os_errors.FileSizeLimit",
        "+callbacks.limit.limit_bytes=500000",
    ]
    line = _error_line(_cli(tmp_path, cache_dir, *RUN, *limit, f"hydra.run.dir={run}"))
    assert re.search(rf"file too large while writing {re.escape(str(run))}/checkpoints/(best|last)\.ckpt", line), line
    assert list((run / "checkpoints").iterdir()) == []  # the temp file is gone, no half checkpoint
    assert json.loads((run / "run_info.json").read_text())["status"] == "failed"


def test_disk_full_while_writing_last_ckpt_keeps_the_previous_one(tmp_path: Path, cache_dir: Path) -> None:
    run = tmp_path / "run"
    full = ["+callbacks.full._target_=tests.faults.test_os_errors.DiskFullFrom", "+callbacks.full.epoch=1"]
    result = _cli(tmp_path, cache_dir, *RUN, *full, "+callbacks.full.name=last.ckpt", f"hydra.run.dir={run}")
    line = _error_line(result)
    assert f"no space left on device while writing {run}/checkpoints/last.ckpt" in line
    assert "free some space" in line
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 0  # the previous epoch's checkpoint, whole
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def _without_root_powers() -> list[str]:
    """root writes into a 0o555 dir anyway: run the command as root without the capabilities that override
    file permissions (util-linux ``setpriv``); a normal user needs nothing."""
    if os.getuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only dir cannot be made read-only for this test")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def test_read_only_output_dir_is_one_line(cache_dir: Path) -> None:
    limited = _without_root_powers()
    base = Path(tempfile.mkdtemp(prefix="mmexp-readonly-"))
    try:
        (base / "outputs").mkdir(mode=0o555)
        (base / "outputs").chmod(0o555)
        run = base / "outputs" / "run"
        env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
        result = subprocess.run(
            [
                *limited,
                sys.executable,
                "-m",
                "mmexp.train",
                "debug=fast",
                f"paths.cache_dir={cache_dir}",
                f"hydra.run.dir={run}",
            ],
            cwd=base,
            env=env,
            text=True,
            capture_output=True,
            timeout=120,
        )
        line = _error_line(result)
        assert f"permission denied while creating the run dir {run}" in line
        assert "choose a writable paths.output_dir" in line
        assert not run.exists()
    finally:
        (base / "outputs").chmod(0o755)
        shutil.rmtree(base)
