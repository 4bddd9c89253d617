"""The export job: checkpoint -> a model file for serving plus its preprocessing spec, in a new dir.

    python -m mmexp.export ckpt_path=outputs/runs/<run>/checkpoints/best.ckpt format=onnx|torchscript|bundle

The export lands in ``<run dir>/model/`` (run dir: outputs/exports/<timestamp>_<overrides>/); the training run
dir is only read. Each format is one function ``(ckpt_path, out_dir) -> out_dir`` in ``EXPORTERS``; the work
happens in ``mmexp.serving`` (docs/export.md), where torch is imported, so ``--help`` and config errors are fast.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmexp.app.cli import task_overrides
from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)
from mmexp.core.errors import ConfigError, RunDirInUse
from mmexp.evaluation.evaluate import locate_run
from mmexp.portable.bundle import write_bundle
from mmexp.serving.export import write_onnx, write_torchscript

log = logging.getLogger("mmexp.export")
EXPORTERS: dict[str, Callable[[Path, Path], Path]] = {
    "onnx": write_onnx,
    "torchscript": write_torchscript,
    "bundle": write_bundle,  # the model bundle a run writes as model/ (mmexp.load)
}
MODEL_DIR = "model"  # inside the export's run dir: the folder to copy to a server


def export(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.ckpt_path`` in ``cfg.format`` into ``<cfg.paths.run_dir>/model``; return where it went."""
    exporter = EXPORTERS.get(str(cfg.format))
    if exporter is None:
        raise ConfigError(f"format={cfg.format}: expected one of {', '.join(EXPORTERS)}")
    if cfg.get("embed_backbones"):
        if cfg.format != "bundle":
            raise ConfigError(f"embed_backbones=true applies to format=bundle only (format={cfg.format} embeds always)")
        exporter = functools.partial(write_bundle, embed_backbones=True)
    run_dir = Path(cfg.paths.run_dir)
    ckpt_path, train_dir = locate_run(cfg.ckpt_path)
    if run_dir.resolve().is_relative_to(train_dir) or (run_dir / "run_info.json").exists():
        raise RunDirInUse(
            f"run dir {run_dir} is inside the training run or already holds a run; mmexp.export writes to a new "
            "dir only (leave hydra.run.dir unset, or give a fresh one)"
        )
    from mmexp.run.recorder import RunRecorder

    recorder = RunRecorder(run_dir, cfg, overrides=task_overrides())
    recorder.start(device="cpu")
    out = exporter(ckpt_path, run_dir / MODEL_DIR)
    recorder.finish(status="completed")
    log.info("export: %s -> %s", cfg.format, out)
    return {"format": str(cfg.format), "model_dir": str(out)}
