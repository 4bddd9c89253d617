"""Hydra entry point: checkpoint -> rebuilt model + its data -> eval.json and robustness.json in a new run dir.

    python -m mmexp.eval ckpt_path=outputs/runs/<run>/checkpoints/best.ckpt
    python -m mmexp.eval ckpt_path=... data=folder data.root=/other/data [split=stratified]

The job itself is ``mmexp.app.evaluate``; a failed evaluation is recorded in its own
run_info.json, never in the training run dir.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from mmexp.app.cli import command_line, run_job
from mmexp.app.evaluate import evaluate
from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)
from mmexp.evaluation.evaluate import load_checkpoint

__all__ = ["evaluate", "load_checkpoint", "main"]


@command_line  # quotes run dirs (they hold '=') for Hydra's parser; exits without a last GC
@hydra.main(version_base="1.3", config_path="pkg://mmexp.conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    run_job(lambda: evaluate(cfg), run_dir=Path(cfg.paths.run_dir))


if __name__ == "__main__":
    main()
