"""Issue 25, class 2: a run that died without updating run_info.json (SIGKILL, the OOM killer, SIGBUS) is shown
as interrupted, not "running"; the claim's flock, which the kernel drops when its process dies, tells which."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from mmexp.core.claim_probe import CLAIM_FILE_NAME, claim_holder_alive
from mmexp.reporting.runs import load_run
from mmexp.run.claim import CLAIM_FILE, claim_run_dir
from mmexp.run.run_info import start_info
from tests.conftest import REPO

# claims the dir as `train` does, records it as running, then dies the way SIGBUS or the OOM killer ends a run
CLAIM_AND_DIE = """
import json, os, signal, sys
from pathlib import Path
from mmexp.run.claim import claim_run_dir
from mmexp.run.run_info import start_info
run = Path(sys.argv[1])
claim_run_dir(run, command="train", overrides=["seed=3"], resume=False)
(run / "run_info.json").write_text(json.dumps(start_info(seed=3, overrides=["seed=3"])))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_run_whose_process_died_is_reported_as_interrupted(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    died = subprocess.run([sys.executable, "-c", CLAIM_AND_DIE, str(run)], env=env, timeout=60, check=False)
    assert died.returncode == -signal.SIGKILL
    assert json.loads((run / "run_info.json").read_text())["status"] == "running"  # all the file can say
    assert claim_holder_alive(run) is False
    loaded = load_run(run)
    assert loaded.status == "interrupted" and not loaded.ok
    assert loaded.problem is not None and "process ended without recording it" in loaded.problem


def test_a_run_still_going_is_reported_as_running(tmp_path: Path) -> None:
    run = tmp_path / "run"
    claim = claim_run_dir(run, command="train", overrides=[], resume=False)  # this process: alive
    try:
        (run / "run_info.json").write_text(json.dumps(start_info(seed=1, overrides=[])))
        assert claim_holder_alive(run) is True
        assert load_run(run).status == "running"
    finally:
        claim.release()
    assert claim_holder_alive(run) is False and load_run(run).status == "interrupted"


def test_a_run_without_a_claim_file_keeps_its_recorded_status(tmp_path: Path) -> None:
    """A run from before claim files (or one made on another host) cannot be probed: its record is shown."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_info.json").write_text(json.dumps(start_info(seed=1, overrides=[])))
    assert claim_holder_alive(run) is None and load_run(run).status == "running"
    (run / CLAIM_FILE).write_text(json.dumps({"command": "train", "overrides": [], "host": "another-host"}))
    assert claim_holder_alive(run) is None and load_run(run).status == "running"


def test_the_report_and_the_claim_name_the_same_file() -> None:
    assert CLAIM_FILE == CLAIM_FILE_NAME
