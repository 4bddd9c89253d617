"""Turn config groups into objects, completing the ``_partial_`` ones with run-time sizes."""

from __future__ import annotations

from typing import Any

import hydra
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, RichProgressBar
from omegaconf import DictConfig

from mmexp.errors import ConfigError
from mmexp.models.classifier import MultimodalClassifier


def instantiate(node: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, but a ConfigError raised by the target reaches the user unwrapped."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, ConfigError):
            raise e.__cause__ from None
        raise


def build_model(cfg: DictConfig, *, vocab_size: int, num_classes: int) -> MultimodalClassifier:
    """Encoders and fusion need sizes known only after the data is read: vocab and classes."""
    text_encoder = instantiate(cfg.text_encoder)(vocab_size=vocab_size)
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    model = instantiate(cfg.model, _convert_="all")  # plain dicts, so checkpoints load with weights_only
    return model(image_encoder=instantiate(cfg.image_encoder), text_encoder=text_encoder,
                 fusion=instantiate(cfg.fusion), num_classes=num_classes,
                 optimizer=instantiate(cfg.optimizer), scheduler=scheduler)


def instantiate_each(group: DictConfig | None) -> list[Any]:
    return [instantiate(node) for node in (group or {}).values() if node and "_target_" in node]


def build_callbacks(cfg: DictConfig, *, has_logger: bool) -> list[Callback]:
    """The configured callbacks, plus a Rich progress bar when the trainer shows one (a terminal).

    LearningRateMonitor raises without a logger, so it is dropped when logging is off.
    """
    callbacks = [c for c in instantiate_each(cfg.get("callbacks"))
                 if has_logger or not isinstance(c, LearningRateMonitor)]
    if cfg.trainer.get("enable_progress_bar") and not cfg.trainer.get("fast_dev_run"):
        callbacks.append(RichProgressBar())
    return callbacks
