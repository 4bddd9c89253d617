"""Loggers: build them from conf/logger/, give them the run's params, summary and files, close them."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from mmexp.training.build import instantiate_each

log = logging.getLogger(__name__)


def build_loggers(cfg: DictConfig) -> list[Logger]:
    nodes = (cfg.get("logger") or {}).values()
    mlflow_uris = {
        str(n.get("tracking_uri") or "") for n in nodes if n and str(n.get("_target_")).endswith("MLFlowLogger")
    }
    with ExitStack() as stack:
        for uri in mlflow_uris:
            stack.enter_context(mlflow_store(uri))
        loggers = instantiate_each(cfg.get("logger"))
        for logger in loggers:
            if isinstance(logger, MLFlowLogger):
                _ = logger.experiment  # the experiment and the run, created while the store is locked
    return loggers


@contextmanager
def mlflow_store(uri: str) -> Iterator[None]:
    """Open an MLflow store, serialized across the jobs of a sweep when it is a SQLite database.

    The default store is SQLite: the first job creates its tables and the experiment, and two jobs doing
    that at once would collide (the experiment name is unique), so a file lock beside the database orders
    them. A file store (``file:`` URI or a path) still works; MLflow 3 opens one only when asked to.
    """
    if not uri.startswith("sqlite:///"):
        if "://" not in uri or uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        yield
        return
    import mlflow  # noqa: F401  (configures MLflow's loggers on import; quieted after that)
    from filelock import FileLock

    for name in ("alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)  # schema-creation chatter on first use
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{database}.lock"):
        yield


def log_config(loggers: list[Logger], params: dict[str, Any]) -> None:
    """The run's params (``logged_config.experiment_params``), once per logger, before training. TensorBoard
    gets them at the end instead, with the summary (``log_summary``): its HPARAMS tab pairs them with results."""
    for logger in loggers:
        if not isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params)


def summary_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The best checkpoint's val and test metrics, under their names in metrics.json (``val/f1_macro``)."""
    return {
        key: float(value)
        for part in ("val", "test")
        for key, value in metrics[part].items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


@rank_zero_only  # DDP ranks > 0 have placeholder experiments (no W&B summary to update)
def log_summary(loggers: list[Logger], params: dict[str, Any], metrics: dict[str, Any], *, step: int) -> None:
    """Every dashboard's summary of the run is metrics.json's: the best checkpoint's val and test metrics.

    Logged at the last step (after the last epoch's point), where a dashboard's "latest value" is read: the
    MLflow run table, TensorBoard's HPARAMS tab; W&B's summary is set directly. The CSV logger gets nothing:
    metrics.csv holds the curves (one val row per epoch) and metrics.json beside it is the summary.
    """
    summary = summary_metrics(metrics)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics=summary, step=step)
        elif isinstance(logger, WandbLogger):
            logger.experiment.summary.update(summary)
        elif isinstance(logger, CSVLogger):
            continue
        else:
            logger.log_metrics(summary, step=step)


# files or dirs of the run dir
RUN_ARTIFACTS = ("config.yaml", "metrics.json", "predictions/val.csv", "predictions/test.csv", "model")


@rank_zero_only
def log_artifacts(loggers: list[Logger], run_dir: Path, names: tuple[str, ...] = RUN_ARTIFACTS) -> None:
    """Copy the run's files to MLflow's artifact store (a dir keeps its name; missing ones are skipped), so the
    MLflow UI shows the config, metrics and predictions beside the run. More artifacts: add to ``names``."""
    for logger in loggers:
        if not isinstance(logger, MLFlowLogger):
            continue
        for name in names:
            path = run_dir / name
            parent = str(Path(name).parent) if Path(name).parent != Path(".") else None
            if path.is_dir():
                logger.experiment.log_artifacts(logger.run_id, str(path), artifact_path=name)
            elif path.is_file():
                logger.experiment.log_artifact(logger.run_id, str(path), artifact_path=parent)


def validate_unlogged(trainer: Any, model: Any, datamodule: Any, ckpt_path: str | None) -> list[dict[str, float]]:
    """Validate the best checkpoint after fit with the loggers detached: its numbers reach the dashboards once,
    from ``log_summary`` at the run's last step, not at a step Lightning picks (a kink that is not an epoch)."""
    attached = trainer.loggers
    trainer.loggers = []
    try:
        return list(trainer.validate(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False))
    finally:
        trainer.loggers = attached


def close_loggers(loggers: list[Logger], status: str) -> None:
    """Flush and close every logger, so offline W&B runs and MLflow runs are complete on disk."""
    for logger in loggers:
        logger.finalize(status)
        if isinstance(logger, WandbLogger):
            logger.experiment.finish(exit_code=0 if status == "success" else 1)


def confusion_figure(matrix: list[list[int]], labels: list[str]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 2.5 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set(
        xticks=range(len(labels)),
        yticks=range(len(labels)),
        xlabel="predicted",
        ylabel="true",
        title="test confusion matrix",
    )
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticklabels(labels)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def log_confusion_matrix(loggers: list[Logger], matrix: list[list[int]] | None, labels: list[str]) -> None:
    image_loggers = [lg for lg in loggers if isinstance(lg, (TensorBoardLogger, WandbLogger, MLFlowLogger))]
    if not image_loggers or not matrix:
        return
    try:
        fig = confusion_figure(matrix, labels)
    except ImportError:
        log.info("matplotlib is not installed: the confusion matrix is logged in metrics.json only")
        return
    for logger in image_loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure("test/confusion_matrix", fig, close=False)
        elif isinstance(logger, WandbLogger):
            logger.log_image("test/confusion_matrix", [fig])
        else:
            logger.experiment.log_figure(logger.run_id, fig, "test_confusion_matrix.png")
    import matplotlib.pyplot as plt

    plt.close(fig)
