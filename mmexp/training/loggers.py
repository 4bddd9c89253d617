"""Loggers: build them from conf/logger/, log the confusion matrix as an image, close them."""

from __future__ import annotations

import logging
import os
from typing import Any

from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from omegaconf import DictConfig

from mmexp.core.build import instantiate_each

log = logging.getLogger(__name__)


def build_loggers(cfg: DictConfig) -> list[Logger]:
    # logger=mlflow uses a local file store (no server), which MLflow 3 opens only when asked to.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return instantiate_each(cfg.get("logger"))


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


def log_confusion_matrix(loggers: list[Logger], matrix: list[list[int]], labels: list[str]) -> None:
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
