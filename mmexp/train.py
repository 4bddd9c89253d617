"""Hydra entry point: compose -> instantiate -> fit -> test the best checkpoint -> metrics.json.

Heavy imports (torch, lightning) happen inside ``train`` so ``--help`` and config errors are fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)
from mmexp.core.cli import run_job, task_overrides
from mmexp.core.config_checks import check_config
from mmexp.core.config_io import load_config
from mmexp.core.errors import run_dir_in_use
from mmexp.run.resume import forget_logged_after_checkpoint, resume_checkpoint

log = logging.getLogger("mmexp.train")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one experiment in ``cfg.paths.run_dir``; return the metrics written to metrics.json.

    With ``resume=auto`` and a last.ckpt in the run dir, the run continues from it with the
    config it was started with (its config.yaml), in the same directory.
    """
    check_config(cfg)
    run_dir = Path(cfg.paths.run_dir)
    resume_from = resume_checkpoint(cfg)
    if resume_from:
        cfg = load_config(run_dir / "config.yaml")
        log.info("resuming %s from %s", run_dir, resume_from)

    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.utilities import rank_zero_only

    from mmexp.core.build import build_callbacks, build_datamodule, build_model, instantiate
    from mmexp.core.log_setup import quiet_known_warnings, route_lightning_logs
    from mmexp.evaluation.complexity import model_complexity
    from mmexp.run.recorder import RunRecorder
    from mmexp.training.callbacks import EpochTimer
    from mmexp.training.loggers import build_loggers, close_loggers, log_confusion_matrix

    # DDP children re-run this entry point in the same run dir. (Lightning sets .rank on the function.)
    rank_zero = rank_zero_only.rank == 0  # type: ignore[attr-defined]
    if rank_zero and not resume_from and (run_dir / "run_info.json").exists():
        raise run_dir_in_use(run_dir)
    route_lightning_logs()
    quiet_known_warnings()
    if cfg.get("num_threads"):
        torch.set_num_threads(cfg.num_threads)
    recorder = RunRecorder(run_dir, cfg, overrides=task_overrides(), write=rank_zero, resumed=bool(resume_from))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg.data, cfg.text_encoder)
    datamodule.prepare_data()
    datamodule.setup("fit")
    recorder.write_data_artifacts(datamodule.info, datamodule.tokenizer)
    model = build_model(cfg, num_classes=datamodule.num_classes, **datamodule.tokenizer.encoder_kwargs())
    loggers = build_loggers(cfg)
    if resume_from and rank_zero:
        forget_logged_after_checkpoint(loggers, resume_from)
    timer = EpochTimer()  # training seconds per epoch, for the complexity figures
    callbacks = [*build_callbacks(cfg, has_logger=bool(loggers)), timer]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(recorder.flat_config())
    recorder.start(device=str(trainer.strategy.root_device))
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from or cfg.get("ckpt_path"))
        epochs = trainer.current_epoch
        checkpoint = trainer.checkpoint_callback
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        val = trainer.validate(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        test = trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
    except BaseException:
        close_loggers(loggers, "failed")
        raise
    complexity = model_complexity(
        model,
        next(iter(datamodule.test_dataloader())),
        latency_runs=3,
        device=trainer.strategy.root_device,
        epoch_seconds=timer.seconds,
    )
    metrics = recorder.write_metrics(
        val=val[0],
        test=test[0],
        details=model.test_details,
        best_checkpoint=best,
        labels=datamodule.label_names,
        epochs=epochs,
        complexity=complexity,
    )
    log_confusion_matrix(loggers, metrics["confusion_matrix"], datamodule.label_names)
    close_loggers(loggers, "success")
    recorder.finish(status="completed")
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """CLI: returns the optimized metric so Hydra sweepers (e.g. Optuna) can use it.

    A failing job is recorded as failed in its run_info.json; in a sweep the other jobs go on
    (the job returns NaN, which Optuna records as a failed trial).
    """
    run_dir = Path(cfg.paths.run_dir)
    resume = (
        f"checkpoints/last.ckpt was written; continue with `python -m mmexp.train hydra.run.dir={run_dir} resume=auto`"
    )
    no_metrics: dict[str, Any] = {}  # a failed sweep job: main returns NaN
    metrics = run_job(lambda: train(cfg), run_dir=run_dir, on_sweep_failure=no_metrics, on_interrupt=resume)
    if not metrics:
        return float("nan")
    value = OmegaConf.select(cfg, "optimized_metric")
    return metrics["val"].get(value) if value else None


if __name__ == "__main__":
    main()
