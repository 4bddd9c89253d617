"""The training job: compose -> instantiate -> fit -> test the best checkpoint -> metrics.json.

``python -m mmexp.train`` (mmexp/train.py) and ``mmexp.fit`` run it.

Heavy imports (torch, lightning) happen inside ``train`` so ``--help`` and config errors are fast.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmexp.app.cli import config_choices, task_overrides
from mmexp.app.config_checks import check_config
from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)
from mmexp.core.errors import OutputError, output_error, run_dir_in_use
from mmexp.run.claim import CLAIM_FILE, Claim, claim_run_dir
from mmexp.run.protect import process_rank
from mmexp.run.resume import (
    checkpoint_step,
    completed_metrics,
    forget_logged_after,
    resume_checkpoint,
    resume_requested,
    run_config,
)
from mmexp.run.start_checkpoint import check_start_checkpoint

log = logging.getLogger("mmexp.train")
OUTPUT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)  # only writing raises these
HYDRA_MADE = frozenset({".hydra", "train.log"})  # what Hydra writes into a sweep job's dir before claiming


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one experiment in ``cfg.paths.run_dir``; return the metrics written to metrics.json.

    With ``resume=auto`` the run in that dir continues from its last.ckpt (or starts over without one) with
    the config it was started with; a run that already completed is returned as it is.
    """
    check_config(cfg)
    run_dir = Path(cfg.paths.run_dir)
    resume = resume_requested(cfg)
    check_start_checkpoint(cfg.get("ckpt_path"))  # before the run dir changes (from Python: before it is claimed)
    claim = _claim_if_unclaimed(run_dir, resume=resume)
    try:
        done = completed_metrics(run_dir) if resume else None
        if done is not None:
            log.info("run %s already completed; nothing to do", run_dir)
            return done
        return _run(cfg, run_dir, resume=resume)
    except OSError as e:  # a write outside mmexp's own writers (a logger's file): still one line
        if isinstance(e, OutputError) or e.errno not in OUTPUT_ERRNOS:
            raise
        raise output_error(e, e.filename or run_dir, action="writing" if e.filename else "writing into") from e
    finally:
        if claim is not None:
            claim.release()


def _claim_if_unclaimed(run_dir: Path, *, resume: bool) -> Claim | None:
    """Called from Python (tests, scripts), ``train`` claims its dir itself; the CLI claimed it already in
    its Hydra callback, and DDP ranks > 0 run in rank zero's dir."""
    if process_rank() != 0 or (run_dir / CLAIM_FILE).exists():
        return None
    return claim_run_dir(run_dir, command="train", overrides=task_overrides(), resume=resume, expected=HYDRA_MADE)


def _run(cfg: DictConfig, run_dir: Path, *, resume: bool) -> dict[str, Any]:
    """Fit, test the best checkpoint, write metrics.json (see ``train``)."""
    previous = run_config(run_dir) if resume else None
    composed, cfg = cfg, previous if previous is not None else cfg
    resume_from = resume_checkpoint(run_dir) if resume else None
    start_step = checkpoint_step(resume_from) if resume_from else 0  # a damaged file: one error, nothing changed
    if previous is not None:
        log.info("resuming %s from %s", run_dir, resume_from or "its start (it had no checkpoint yet)")

    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.utilities import rank_zero_only

    from mmexp.core.log_setup import quiet_known_warnings, route_lightning_logs
    from mmexp.evaluation.complexity import model_complexity, reset_peak_memory
    from mmexp.evaluation.predictions import SPLITS, write_split_predictions
    from mmexp.portable.bundle import save_run_bundle
    from mmexp.run.recorder import RunRecorder
    from mmexp.training.build import build_callbacks, build_datamodule, build_model, instantiate
    from mmexp.training.callbacks import EpochTimer
    from mmexp.training.feature_cache import features_attached
    from mmexp.training.logged_config import experiment_params
    from mmexp.training.loggers import (
        build_loggers,
        close_loggers,
        log_artifacts,
        log_config,
        log_confusion_matrix,
        log_summary,
        validate_unlogged,
    )

    # DDP children re-run this entry point in the same run dir. (Lightning sets .rank on the function.)
    rank_zero = rank_zero_only.rank == 0  # type: ignore[attr-defined]
    if rank_zero and not resume and (run_dir / "run_info.json").exists():
        raise run_dir_in_use(run_dir)
    route_lightning_logs()
    quiet_known_warnings()
    if cfg.get("num_threads"):
        torch.set_num_threads(cfg.num_threads)
    resumed = previous is not None and (run_dir / "run_info.json").exists()
    recorder = RunRecorder(
        run_dir,
        cfg,
        overrides=task_overrides(),
        choices=config_choices(),
        write=rank_zero,
        resumed=resumed,
        composed=composed,
    )
    reset_peak_memory()  # this run's peak, not the process's (a sweep's jobs share one process)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg.data, cfg.text_encoder, task=cfg.get("task"))
    datamodule.prepare_data()
    datamodule.setup("fit")
    recorder.write_data_artifacts(datamodule.info, datamodule.tokenizer)
    model = build_model(
        cfg, num_classes=datamodule.num_classes, labels=datamodule.label_names, **datamodule.tokenizer.encoder_kwargs()
    )
    loggers = build_loggers(cfg)
    if previous is not None and rank_zero:
        forget_logged_after(loggers, start_step)
    timer = EpochTimer()  # training seconds per epoch, for the complexity figures
    callbacks = [*build_callbacks(cfg, has_logger=bool(loggers)), timer]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    params = experiment_params(
        recorder.flat_config(), choices=recorder.info["choices"], overrides=recorder.info["overrides"]
    )
    log_config(loggers, params)
    recorder.start(device=str(trainer.strategy.root_device))
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from or cfg.get("ckpt_path"))
        epochs = trainer.current_epoch
        checkpoint = trainer.checkpoint_callback
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        val = validate_unlogged(trainer, model, datamodule, best or None)  # not one more point on the val/* curves
        test = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)  # no table
    except BaseException:
        close_loggers(loggers, "failed")
        raise
    complexity = model_complexity(
        model,
        next(iter(datamodule.test_dataloader())),
        latency_runs=3,
        device=trainer.strategy.root_device,
        epoch_seconds=timer.seconds,
        cost_cache=Path(cfg.paths.cache_dir) / "costs",  # each encoder measured once per machine and input shape
    )
    metrics = recorder.write_metrics(
        val=val[0],
        test=test[0],
        details=model.test_details,
        best_checkpoint=best,
        labels=datamodule.label_names,
        epochs=epochs,
        complexity=complexity,
        thresholds=model.decision_thresholds(datamodule.label_names),
    )
    with features_attached(trainer, model):  # the cached features (every row): no second pass of a frozen backbone
        for split in SPLITS:  # test: the rows trainer.test scored are written as it scored them, not scored again
            scored = model.test_scored if split == "test" else None
            write_split_predictions(run_dir / "predictions" / f"{split}.csv", trainer, model, datamodule, split, scored)
    if rank_zero:  # model/: what prediction needs, loadable anywhere (mmexp.portable.bundle)
        save_run_bundle(run_dir, cfg, model, datamodule, best=best)
    log_confusion_matrix(loggers, metrics["confusion_matrix"], datamodule.label_names)
    log_summary(loggers, params, metrics, step=trainer.global_step)
    log_artifacts(loggers, run_dir)
    close_loggers(loggers, "success")
    recorder.finish(status="completed")
    return metrics
