"""``python -m <module> <args>`` in a real child process that starts warm: forked from a server that has imported
torch, Lightning, Hydra and mmexp once, so a test pays ~0.3 s for a command instead of ~5 s of imports.

The child is a process of its own, as ``subprocess.run`` gives: its own pid (a test may SIGTERM or SIGKILL it),
signal handlers, rlimits, working dir, environment, stdout and stderr, and its exit code or killing signal as
the return code. What it shares with the server is only what imports left in memory. Tests about the interpreter
itself (what ``import mmexp`` loads, a bundle loaded by a fresh process, a command under ``setpriv``) start
``sys.executable`` themselves; DDP's second rank is a fresh interpreter too (Lightning starts it).

Under xdist one server serves every worker: the controller starts it before the workers (``start_shared_server``)
and names it in ``SHARED_SERVER``; a server per worker would import the same ~7 s of modules once per worker.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
from multiprocessing.context import ForkServerContext
from pathlib import Path

#: imported once by the fork server: every command's heavy imports (its own job modules import the rest lazily)
PRELOAD = [
    "torch",
    "lightning.pytorch",
    "hydra.main",
    "mmexp.app.train",
    "mmexp.app.config_checks",
    "mmexp.training.build",
    "mmexp.training.classifier",
    "mmexp.data.datamodule",
    "mmexp.evaluation.trained_run",
    "mmexp.app.evaluate",
    "mmexp.app.predict",
    "mmexp.reporting.cli",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "tests.forked_cli",
    "tests.parsed_configs",  # every packaged YAML parsed, Hydra's plugins scanned
]
SHARED_SERVER = "MMEXP_TESTS_FORKSERVER"  # "<pid> <socket address>" of the server xdist's workers share
_context: list[ForkServerContext] = []


def _forkserver() -> ForkServerContext:
    if not _context:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        if SHARED_SERVER in os.environ:
            _use_shared_server(os.environ[SHARED_SERVER])
        _context.append(context)
    return _context[0]


def start_shared_server() -> None:
    """Start the fork server now and name it to the processes this one starts next (xdist's workers).

    It lives as long as this process: multiprocessing's server exits when its starter's end of the "alive" pipe
    closes. The server's torch gets one thread, as each worker's does (they share the cores)."""
    from multiprocessing import forkserver

    if sys.version_info >= (3, 14):  # its requests carry the starter's authkey: each worker keeps a server of its own
        return
    os.environ["OMP_NUM_THREADS"] = "1"
    _forkserver()
    forkserver.ensure_running()
    server = forkserver._forkserver
    os.environ[SHARED_SERVER] = f"{server._forkserver_pid} {server._forkserver_address}"


def _use_shared_server(shared: str) -> None:
    """Send this process's fork requests to the server another process started (multiprocessing's own client
    code, given that server's socket). The server is not this process's child, so it is not waited on, and the
    "alive" descriptor each request hands the child (only used if the child starts a fork server itself) is
    /dev/null: the starter's pipe keeps the server alive."""
    from multiprocessing import forkserver, resource_tracker

    pid, address = shared.split(" ", 1)
    server = forkserver._forkserver
    server._forkserver_pid = int(pid)
    server._forkserver_address = address
    server._forkserver_alive_fd = os.open(os.devnull, os.O_WRONLY)
    server.ensure_running = resource_tracker.ensure_running  # type: ignore[method-assign]


class ForkedCommand:
    """``python -m module args`` started in a child of the warm fork server; ``wait`` is ``Popen.communicate``."""

    def __init__(self, module: str, args: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.args = [sys.executable, "-m", module, *args]
        self._folder = tempfile.TemporaryDirectory(prefix="mmexp-forked-")
        self._out, self._err = Path(self._folder.name) / "stdout", Path(self._folder.name) / "stderr"
        target_args = (module, args, str(cwd), env, str(self._out), str(self._err))
        self._child = _forkserver().Process(target=_run_module, args=target_args)
        self._child.start()

    def poll(self) -> int | None:
        """The return code, or None while the command runs (``Popen.poll``)."""
        return self._child.exitcode

    def wait(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """What ``subprocess.run(self.args, text=True, capture_output=True, timeout=timeout)`` returns."""
        self._child.join(timeout)
        try:
            out, err = self._out.read_text(), self._err.read_text()
            if self._child.exitcode is None:
                self._child.kill()
                self._child.join()
                raise subprocess.TimeoutExpired(self.args, timeout, out, err)
            return subprocess.CompletedProcess(self.args, self._child.exitcode, out, err)
        finally:
            self._folder.cleanup()


def run_forked(
    module: str, args: list[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """What ``subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, text=True,
    capture_output=True, timeout=timeout)`` returns, run in a child of the warm fork server."""
    return ForkedCommand(module, args, cwd=cwd, env=env).wait(timeout)


def _run_module(module: str, args: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    """In the child: become ``python -m module args`` (cwd, environment, argv, sys.path[0], fds 1 and 2), run it,
    and exit as the interpreter would (atexit handlers, flushed streams, the SystemExit code or 1 and a traceback)."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(file, fd)
        os.close(file)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=True)  # type: ignore[union-attr]  # as -u / PYTHONUNBUFFERED
    sys.argv = [module, *args]
    sys.path.insert(0, cwd)  # `python -m` puts the working dir first
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exited:
        code = _exit_status(exited.code)
    except BaseException:  # the interpreter prints any uncaught exception and exits 1
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_status(code: object) -> int:
    """The exit status the interpreter gives ``SystemExit(code)``: None is 0, an int itself, else printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
