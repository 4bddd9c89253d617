"""Every command that writes a dir (train, eval, predict, export) claims it before anything is written into it
(``mmexp.run.protect.ProtectRunDir``): a refused command leaves its target byte for byte as it was."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mmexp.core.errors import RunDirInUse
from mmexp.run.claim import CLAIM_FILE, Claim, claim_run_dir
from tests.faults.in_process import run_main, tree

FAST = ["debug=fast", "logger=none", "trainer.max_epochs=1", "data.synthetic.n_samples=120"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A run trained through the command line's own path, so it holds Hydra's .hydra/ files and train.log."""
    run = tmp_path_factory.mktemp("claims") / "run"
    assert run_main("train", *FAST, f"hydra.run.dir={run}", f"paths.cache_dir={cache_dir}") is None
    assert (run / "metrics.json").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
    return run


def _reading(command: str, run: Path, target: Path, cache_dir: Path) -> str | None:
    ckpt = run / "checkpoints" / "best.ckpt"
    return run_main(command, f"ckpt_path={ckpt}", f"hydra.run.dir={target}", f"paths.cache_dir={cache_dir}")


@pytest.mark.parametrize("command", ["eval", "predict", "export"])
def test_a_refused_command_into_the_training_run_changes_no_byte(trained: Path, cache_dir: Path, command: str) -> None:
    before = tree(trained)
    time.sleep(0.01)  # a rewrite would show in the modification times
    for target in (trained, trained / "sub"):  # the run itself, or a new folder inside it
        message = _reading(command, trained, target, cache_dir)
        assert tree(trained) == before
        assert message is not None and message.startswith(f"mmexp: error: run dir {target} is the training run")
        assert "\n" not in message


def test_a_second_predict_into_a_dir_a_running_predict_claimed_writes_nothing(
    trained: Path, tmp_path: Path, cache_dir: Path
) -> None:
    """Two predicts started at once into one dir: the loser must not rewrite the winner's record."""
    target = tmp_path / "predictions"
    winner = claim_run_dir(target, command="predict", overrides=["data.root=/rows/a"], resume=False)  # holds it
    try:
        (target / ".hydra").mkdir()
        (target / ".hydra" / "overrides.yaml").write_text("- data.root=/rows/a\n")  # what Hydra wrote for it
        before = tree(target)
        time.sleep(0.01)
        for command in ("predict", "eval"):
            message = _reading(command, trained, target, cache_dir)
            assert tree(target) == before
            assert message == f"mmexp: error: run dir {target} already holds a run; refusing to overwrite it " + (
                "(leave hydra.run.dir unset for a new dir, or give a new one)"  # no resume=auto: only train resumes
            )
    finally:
        winner.release()


def test_a_command_with_a_missing_checkpoint_makes_no_dir(tmp_path: Path, cache_dir: Path) -> None:
    target = tmp_path / "evals" / "new"
    for command in ("eval", "predict", "export"):
        message = run_main(command, f"ckpt_path={tmp_path}/nope.ckpt", f"hydra.run.dir={target}")
        assert not (tmp_path / "evals").exists()
        assert message == (
            f"mmexp: error: ckpt_path={tmp_path}/nope.ckpt: no such file; give a checkpoint such as "
            "outputs/runs/<run>/checkpoints/best.ckpt"
        )
        message = run_main(command, f"hydra.run.dir={target}")  # no ckpt_path at all
        assert not (tmp_path / "evals").exists()
        assert (
            message
            == "mmexp: error: ckpt_path is required: add ckpt_path=<run>/checkpoints/best.ckpt to the command line"
        )


def _race(target: Path) -> tuple[list[tuple[str, Claim]], list[str]]:
    """Two threads claim ``target`` at the same moment; the claims won (by whom) and the refusals."""
    barrier = threading.Barrier(2)
    won: list[tuple[str, Claim]] = []
    lost: list[str] = []

    def claim(name: str) -> None:
        barrier.wait()
        try:
            won.append((name, claim_run_dir(target, command="eval", overrides=[f"who={name}"], resume=False)))
        except RunDirInUse as e:
            lost.append(str(e))

    threads = [threading.Thread(target=claim, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, lost


def test_two_claims_at_once_exactly_one_wins_and_the_loser_writes_nothing(tmp_path: Path) -> None:
    for attempt in range(20):
        target = tmp_path / f"dir{attempt}"
        won, lost = _race(target)
        assert len(won) == 1 and len(lost) == 1, (won, lost)
        (name, held), (message,) = won[0], lost
        assert "already holds a run" in message
        assert [p.name for p in target.iterdir()] == [CLAIM_FILE]  # the loser added nothing
        assert f'"who={name}"' in (target / CLAIM_FILE).read_text()  # nor rewrote the winner's record
        held.release()
