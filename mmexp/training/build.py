"""Turn config groups into objects: each group's target with its options, completed by the builder with what
is known only at run time (sizes, the built encoders, the task); no YAML needs ``_partial_: true``."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from mmexp.core.config_io import resolved_copy
from mmexp.core.errors import ConfigError
from mmexp.core.moved_targets import current

if TYPE_CHECKING:
    from lightning.pytorch.callbacks import Callback

    from mmexp.data.datamodule import MultimodalDataModule
    from mmexp.data.task import Task
    from mmexp.training.classifier import MultimodalClassifier

TOKENIZER = "tokenizer"  # text_encoder.tokenizer: a text encoder's own tokenizer, run by the data side
TASK_TARGET = "mmexp.data.task.Task"  # conf/task/*.yaml; a run recorded before the task group had it: the same


def instantiate(node: Any, *, config_key: str | None = None, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, but errors a user caused reach them as one ConfigError.

    A ConfigError raised by the target is unwrapped; an option the target does not take (``+split.fodl=3``)
    becomes a ConfigError naming it (``config_key``: the node's place in the config, when it was copied out).
    """
    node = current(node)  # an old run dir's config.yaml may name a class that moved
    try:
        built = hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, ConfigError):
            raise e.__cause__ from None
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(e.__cause__))
        if isinstance(e.__cause__, TypeError) and unknown:
            where = re.search(r"full_key: (\S+)", str(e))
            raise not_an_option(where.group(1) if where else config_key, unknown.group(1)) from None
        raise
    if isinstance(built, functools.partial):  # completed later: check its options now, not mid-run
        key = config_key if config_key is not None else node._get_full_key("") if isinstance(node, DictConfig) else ""
        check_options(built, key=key)
    return built


def build_partial(node: Any, *, config_key: str | None = None, **kwargs: Any) -> functools.partial[Any]:
    """``node``'s target with its options (checked now), to be completed by the builder with run-time values.

    The builder makes it partial, so a YAML or override without ``_partial_: true`` builds the same as one with
    it (a run recorded with it still builds).
    """
    factory = instantiate(node, config_key=config_key, _partial_=True, **kwargs)
    assert isinstance(factory, functools.partial)
    return factory


def build_task(node: DictConfig | None) -> Task:
    """The ``task`` group, built like the others (``conf/task/*.yaml``); a run config recorded before the group
    had a ``_target_`` builds the same, and one recorded before tasks existed (no node) is multiclass."""
    from mmexp.data.task import Task

    if node is None:
        return Task()
    if "_target_" not in node:
        node = resolved_copy(node)
        node._target_ = TASK_TARGET
    task = instantiate(node, config_key="task")
    assert isinstance(task, Task)
    return task


def not_an_option(key: str | None, name: str) -> ConfigError:
    return ConfigError(
        f"{key + '.' if key else ''}{name} is not an option here: remove it, or check its spelling "
        "against the YAML of its config group (python -m mmexp.train --cfg job shows them all)"
    )


def check_options(factory: functools.partial[Any], *, key: str) -> None:
    """Every option given to a ``_partial_`` target is a parameter its constructor declares."""
    unknown = unknown_options(factory.func, factory.keywords)
    if unknown:
        raise not_an_option(key, unknown[0])


def unknown_options(target: Any, names: Iterable[str]) -> list[str]:
    """The ``names`` that ``target``'s signature has no parameter for (none when it takes ``**kwargs``)."""
    params = inspect.signature(target).parameters
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return sorted(set(names) - set(params))


def without(node: DictConfig, key: str) -> DictConfig:
    """A copy of ``node`` without ``key`` (a key the node's target does not take)."""
    copy = resolved_copy(node)
    copy.pop(key, None)
    return copy


def build_datamodule(
    data: DictConfig, text_encoder: DictConfig, *, task: DictConfig | None = None, **overrides: Any
) -> MultimodalDataModule:
    """The datamodule of ``data``, tokenizing texts the way ``text_encoder`` reads them and reading labels the
    way ``task`` (a run config's ``task`` node; None: multiclass) defines them.

    A text encoder with a tokenizer of its own (``text_encoder.tokenizer``) gets its texts tokenized by
    that one; the others read word ids from the word tokenizer of ``data.text``.
    """
    if text_encoder.get(TOKENIZER) is not None:
        overrides.setdefault("text", instantiate(text_encoder[TOKENIZER]))
    factory = build_partial(data, **overrides)  # the Task object passes as is (not as a config)
    return factory(task=build_task(task))


def build_model(
    cfg: DictConfig, *, num_classes: int, labels: Sequence[str] | None = None, **text_inputs: int
) -> MultimodalClassifier:
    """Encoders and fusion need sizes known only after the data is read; a binary task's positive class is
    found in the label map ``labels`` (None: the second class).

    ``text_inputs`` are what the text encoder's tokenizer says it needs (``tokenizer.encoder_kwargs()``:
    ``vocab_size`` for word-level encoders, nothing for pretrained ones).
    """
    text_encoder = build_text_encoder(cfg.text_encoder, **text_inputs)
    scheduler = build_partial(cfg.scheduler) if cfg.get("scheduler") else None
    augment = instantiate(cfg.augment, _convert_="all") if cfg.get("augment") else None  # augment=none: empty
    model = build_partial(cfg.model, _convert_="all")  # plain dicts, so checkpoints load with weights_only
    task = build_task(cfg.get("task"))
    return model(
        task=task,
        positive=task.positive_index(labels) if task.binary and labels is not None else None,
        image_encoder=instantiate(cfg.image_encoder),
        text_encoder=text_encoder,
        fusion=build_partial(cfg.fusion),
        num_classes=num_classes,
        optimizer=build_partial(cfg.optimizer) if cfg.get("optimizer") else None,  # a model bundle predicts only
        scheduler=scheduler,
        augment=augment,
    )


def build_text_encoder(node: DictConfig, **text_inputs: int) -> Any:
    """The text encoder of ``node`` (its ``tokenizer`` key goes to the data side, not to the encoder)."""
    if TOKENIZER not in node:
        return build_partial(node)(**text_inputs)
    return build_partial(without(node, TOKENIZER), config_key=node._get_full_key(""))(**text_inputs)


def instantiate_each(group: DictConfig | None) -> list[Any]:
    return [instantiate(node) for node in (group or {}).values() if node and "_target_" in node]


def build_callbacks(cfg: DictConfig, *, has_logger: bool) -> list[Callback]:
    """The configured callbacks, plus a Rich progress bar when the trainer shows one (a terminal), the
    model summary when it prints one (``trainer.enable_model_summary``), and the stamp of the model-defining
    config every checkpoint carries (checked when the run is rebuilt from its config.yaml).

    LearningRateMonitor raises without a logger, so it is dropped when logging is off.
    """
    from lightning.pytorch.callbacks import LearningRateMonitor

    from mmexp.core.model_config import config_stamp
    from mmexp.training.callbacks import ModelConfigStamp
    from mmexp.training.terminal import EpochProgressBar, SummaryWithoutFlops

    callbacks = [
        c for c in instantiate_each(cfg.get("callbacks")) if has_logger or not isinstance(c, LearningRateMonitor)
    ]
    callbacks.append(ModelConfigStamp(config_stamp(cfg)))
    if cfg.trainer.get("enable_progress_bar") and not cfg.trainer.get("fast_dev_run"):
        callbacks.append(EpochProgressBar())
    if cfg.trainer.get("enable_model_summary", True):
        callbacks.append(SummaryWithoutFlops())
    return callbacks


def build_tokenizer(config: DictConfig, state: dict[str, Any]) -> Any:
    """The text encoder's own tokenizer, else the word tokenizer of ``data.text``, with its fitted state."""
    from mmexp.data.tokenizers import WordTokenizer

    node = config.text_encoder.get(TOKENIZER) or config.data.get("text")
    tokenizer = instantiate(node) if node is not None else WordTokenizer()
    tokenizer.load_state_dict(state)
    return tokenizer
