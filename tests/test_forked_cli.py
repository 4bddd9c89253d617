"""The warm commands of tests/forked_cli.py: real child processes of one fork server per test session."""

from __future__ import annotations

import os
from multiprocessing import forkserver
from pathlib import Path

from tests.forked_cli import SHARED_SERVER, ForkedCommand


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_command_is_a_child_of_the_shared_server_and_returns_its_exit_code(tmp_path: Path) -> None:
    command = ForkedCommand("timeit", ["-n", "1", "-r", "1", "import time; time.sleep(0.5)"], cwd=tmp_path, env={})
    parent = parent_of(command._child.pid)  # type: ignore[arg-type]
    done = command.wait(timeout=60)
    assert done.returncode == 0 and "1 loop" in done.stdout, done.stderr
    shared = os.environ.get(SHARED_SERVER)  # set under xdist: the controller started the one server
    assert parent == (int(shared.split()[0]) if shared else forkserver._forkserver._forkserver_pid)
    assert parent != os.getpid()
    failed = ForkedCommand("timeit", ["-n", "1", "-r", "1", "1/0"], cwd=tmp_path, env={}).wait(timeout=60)
    assert failed.returncode == 1 and "ZeroDivisionError" in failed.stdout + failed.stderr
