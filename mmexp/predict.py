"""Hydra entry point: checkpoint + a manifest of new rows -> predictions.csv in a new dir.

    python -m mmexp.predict ckpt_path=outputs/runs/<run>/checkpoints/best.ckpt data=folder data.root=/new/rows

The job itself is ``mmexp.app.predict``; the training run dir is only read.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from mmexp.app.cli import command_line, run_job
from mmexp.app.predict import predict
from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)

__all__ = ["main", "predict"]


@command_line  # quotes run dirs (they hold '=') for Hydra's parser; exits without a last GC
@hydra.main(version_base="1.3", config_path="pkg://mmexp.conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    run_job(lambda: predict(cfg), run_dir=Path(cfg.paths.run_dir))


if __name__ == "__main__":
    main()
