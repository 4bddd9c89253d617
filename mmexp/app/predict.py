"""The prediction job: checkpoint + a manifest of new rows -> predictions.csv in a new dir.

    python -m mmexp.predict ckpt_path=outputs/runs/<run>/checkpoints/best.ckpt data=folder data.root=/new/rows

Labels are optional; a row without its image or its text is scored with that modality removed and flagged.
The rows stream through ``mmexp.evaluation.predictions`` ``batch_size`` at a time; the training run dir is
only read. Heavy imports (torch) happen inside ``predict`` so ``--help`` and config errors are fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmexp.app.cli import task_overrides
from mmexp.app.config_checks import check_config
from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)
from mmexp.core.errors import ConfigError, RunDirInUse
from mmexp.data.label_pairing import unknown_classes
from mmexp.data.records import format_bad_rows
from mmexp.evaluation.evaluate import locate_run, pick_device

log = logging.getLogger("mmexp.predict")


def check_output_dir(run_dir: Path, train_dir: Path) -> None:
    """A new dir, outside the training run dir (which ``mmexp.predict`` only reads)."""
    if run_dir.resolve().is_relative_to(train_dir) or (run_dir / "run_info.json").exists():
        raise RunDirInUse(
            f"run dir {run_dir} is inside the training run or already holds a run; mmexp.predict writes to a "
            "new dir only (leave hydra.run.dir unset, or give a fresh one)"
        )


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.data``'s manifest (default: the training run's) with ``cfg.ckpt_path`` into
    ``<cfg.paths.run_dir>/predictions.csv``; return the rows scored, missing a modality and skipped."""
    check_config(cfg)
    size = cfg.batch_size
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ConfigError(f"batch_size={cfg.batch_size!r} is invalid: expected null or a positive integer")
    run_dir = Path(cfg.paths.run_dir)
    _, train_dir = locate_run(cfg.ckpt_path)
    check_output_dir(run_dir, train_dir)

    from mmexp.core.io import write_atomic
    from mmexp.core.log_setup import quiet_known_warnings
    from mmexp.evaluation import predictions as pr
    from mmexp.evaluation.trained_run import for_command
    from mmexp.run.recorder import RunRecorder

    quiet_known_warnings()
    recorder = RunRecorder(run_dir, cfg, overrides=task_overrides())
    # the data read with the training run's tokenization, image size and resize; a relative data.root of the run's
    # own data: see training_config
    run, datamodule = for_command(cfg)
    manifest = pr.check_manifest(
        datamodule.manifest,
        datamodule.data_root,
        datamodule.columns,
        datamodule.task,
        follow_symlinks=datamodule.follow_symlinks,
    )
    skip_bad = datamodule.on_bad_record == "skip"
    if manifest.bad and not skip_bad:
        raise ConfigError(format_bad_rows(manifest.bad, manifest.path, action="predict"))
    labels = datamodule.label_names
    unknown = unknown_classes(manifest.classes, labels, source=manifest.path)
    if unknown:  # the rows are still scored; their label column just cannot be compared with the predictions
        log.warning("%s; their rows are scored, but their labels cannot be compared with the predictions", unknown)
    model = run.model()
    device = pick_device(str(cfg.device))
    recorder.start(device=str(device))
    inputs = pr.Inputs(datamodule.tokenizer, datamodule.image_size, datamodule.resize, datamodule.max_image_pixels)
    path = run_dir / "predictions.csv"
    written: list[pr.PredictionWriter] = []

    def write(f: Any) -> None:
        scored = pr.score_manifest(
            f,
            manifest,
            model.to(device),
            labels,
            inputs,
            batch_size=datamodule.eval_batch_size,
            device=device,
            skip_bad=skip_bad,
        )
        written.append(scored)

    write_atomic(path, write)
    if manifest.bad:
        pr.write_skipped(run_dir / "skipped.jsonl", manifest.bad)
        log.warning("predict: skipped %d bad row(s) of %s (see skipped.jsonl)", len(manifest.bad), manifest.path)
    missing = {m: written[0].missing[m] for m in ("none", "image", "text")}
    rows = written[0].rows
    log.info(
        "predict: %d rows (%d without image, %d without text) -> %s", rows, missing["image"], missing["text"], path
    )
    recorder.finish(status="completed")
    return {"rows": rows, "missing": missing, "skipped": len(manifest.bad), "predictions": str(path)}
