"""Hydra entry point: checkpoint -> a model file for serving plus its preprocessing spec, in a new dir.

    python -m mmexp.export ckpt_path=outputs/runs/<run>/checkpoints/best.ckpt format=onnx|torchscript|bundle

The export lands in ``<run dir>/model/`` (run dir: outputs/exports/<timestamp>_<overrides>/); the training run
dir is only read. The job is ``mmexp.app.export``; the work happens in ``mmexp.serving`` (docs/export.md), where
torch is imported, so ``--help`` and config errors are fast.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from mmexp.app.cli import command_line, run_job
from mmexp.app.export import EXPORTERS, export
from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)

__all__ = ["EXPORTERS", "export", "main"]


@command_line  # quotes run dirs (they hold '=') for Hydra's parser; exits without a last GC
@hydra.main(version_base="1.3", config_path="pkg://mmexp.conf", config_name="export")
def main(cfg: DictConfig) -> None:
    run_job(lambda: export(cfg), run_dir=Path(cfg.paths.run_dir))


if __name__ == "__main__":
    main()
