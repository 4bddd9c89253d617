"""Shared fixtures: compose the real configs and run the real entry point in-process."""

from __future__ import annotations

import copy
import gc
import os
import re
import subprocess
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from omegaconf import DictConfig

os.environ.setdefault("WANDB_MODE", "offline")
REPO = Path(__file__).resolve().parents[1]
if os.environ.get("PYTEST_XDIST_WORKER"):  # n xdist workers share the cores: one torch thread each, not n x cores
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"  # and the same in the processes the tests start (`run_cli`)
    torch.set_num_threads(1)


@pytest.hookimpl(trylast=True)  # after pytest-cov starts measuring: mmexp's import is measured too
def pytest_sessionstart(session: pytest.Session) -> None:
    """In each process that runs tests (not xdist's controller, which imports this file but only hands out tests
    and so imports no torch, Hydra or mmexp: ~1.5 s before the workers start)."""
    if not session.config.pluginmanager.hasplugin("dsession"):
        import tests.parsed_configs  # noqa: F401  (Hydra parses each packaged YAML once per test process)


def pytest_xdist_setupnodes(config: pytest.Config, specs: list[Any]) -> None:
    """xdist's controller, before it starts the workers: one warm fork server for all their commands."""
    from tests.forked_cli import start_shared_server

    start_shared_server()


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """No full collection of a heap of torch, Lightning and Hydra objects at the end: pytest collects twice after
    the last test to report exceptions raised in finalizers (~1 s each per process; each test's were reported
    after that test already), and the interpreter once more at exit (as every mmexp command skips it:
    mmexp.app.cli.command_line)."""
    gc.freeze()


SHARED = re.compile(r"scope=\"(module|package|class)\"")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope``, narrowed: the tests of a file that defines a module-scoped fixture (often a trained run)
    run on one worker, so that fixture is built once; every other test goes to whichever worker is free."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    shared = {
        str(p.relative_to(REPO / "tests")) for p in (REPO / "tests").rglob("test_*.py") if SHARED.search(p.read_text())
    }

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::")[0]
            return path if path.removeprefix("tests/") in shared else nodeid

    return SharedFixtureScheduling(config, log)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One built-in dataset cache for the whole session (generation is deterministic)."""
    return tmp_path_factory.mktemp("cache")


FAST_DATA = "data.synthetic.n_samples=300"


def compose_cfg(out: Path, cache_dir: Path, *overrides: str, run_dir: Path | None = None) -> DictConfig:
    """Compose train.yaml as @hydra.main would, with outputs under ``out`` and the run in out/run.

    A ``debug=fast`` or ``debug=fast_dev_run`` run on the built-in data reads 300 rows (``FAST_DATA``, 210 / 45 /
    45) unless the test picks the data or its size: it trains on 1-2 batches either way, and reading, fitting and
    scoring 2,000 rows is most of such a run's time."""
    small = bool({"debug=fast", "debug=fast_dev_run"} & set(overrides)) and not any(
        o.startswith(("data=", "data.synthetic.n_samples", "experiment=")) for o in overrides
    )
    from mmexp.app.compose import compose_train_config

    return compose_train_config(
        [f"paths.output_dir={out}", f"paths.cache_dir={cache_dir}", *([FAST_DATA] if small else []), *overrides],
        run_dir=run_dir or out / "run",
    )


def compose_command(name: str, out: Path, cache_dir: Path, *overrides: str, run_dir: Path) -> DictConfig:
    """Compose ``<name>.yaml`` (eval, predict) as @hydra.main would, with its output dir at ``run_dir``."""
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    with initialize_config_module("mmexp.conf", version_base="1.3"):
        cfg = compose(
            name,
            overrides=[f"paths.output_dir={out}", f"paths.cache_dir={cache_dir}", *overrides],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.name = name
        HydraConfig.instance().set_config(cfg)
        del cfg.hydra
    return cfg


def composed(*overrides: str) -> DictConfig:
    """``python -m mmexp.train <overrides>``'s config, for tests that build parts from it (an encoder, a fusion):
    composed once per test process for each list of overrides, a copy each call. Composition takes ~0.13 s, and
    parametrized tests share their overrides (every encoder pair meets each fusion)."""
    return copy.deepcopy(_composed(overrides))


@cache
def _composed(overrides: tuple[str, ...]) -> DictConfig:
    from mmexp.app.compose import compose_train_config

    return compose_train_config(list(overrides), run_dir=Path("unused"))


@pytest.fixture
def make_cfg(tmp_path: Path, cache_dir: Path) -> Callable[..., DictConfig]:
    """Compose train.yaml with overrides; run dir and outputs go to tmp_path."""
    return partial(compose_cfg, tmp_path, cache_dir)


def run_cli(*args: str, cwd: Path, timeout: int = 300, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m mmexp.train`` (or another module) as a user would, in a process of its own: forked from a warm
    interpreter (tests/forked_cli.py). Tests of the interpreter's own start run ``sys.executable`` themselves.

    ``extra_path`` goes on PYTHONPATH, e.g. the repo root so ``tests.callbacks_for_tests`` imports.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    from tests.forked_cli import run_forked

    return run_forked(args[0], list(args[1:]), cwd=cwd, env=env, timeout=timeout)


def quiet_cpu_trainer(**options: Any) -> Any:
    """A one-process CPU ``lightning.Trainer`` that logs, draws and summarizes nothing: for tests that score a
    model themselves to compare with what a run wrote."""
    import lightning as L

    return L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False, **options
    )


def cover_fast(cases: list[tuple[Any, ...]], *axes: Callable[[tuple[Any, ...]], Any]) -> list[Any]:
    """``cases`` for ``parametrize``: the first case with an unseen value on some axis stays in the fast suite,
    the rest are marked slow. The fast suite still meets every value of every axis (every encoder, every
    fusion); ``-m slow`` runs the full cross product."""
    seen: list[set[Any]] = [set() for _ in axes]
    out: list[Any] = []
    for case in cases:
        values = [axis(case) for axis in axes]
        new = any(v not in s for v, s in zip(values, seen, strict=True))
        for v, s in zip(values, seen, strict=True):
            s.add(v)
        out.append(case if new else pytest.param(*case, marks=pytest.mark.slow))
    return out
