"""``TrainedRun``: a training run rebuilt from one of its checkpoints, the one way every command does it.

``mmexp.eval``, ``mmexp.predict``, ``mmexp.export`` and the model bundle of a checkpoint (``mmexp.load``)
locate the run dir (``<run>/checkpoints/<name>.ckpt``), read its config.yaml, load the checkpoint (checked
against that config), and build the datamodule and the model from them with the checkpoint's vocabulary,
label map and weights. The training run dir is only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mmexp.core.config_io import resolved_copy
from mmexp.core.errors import ConfigError
from mmexp.core.training_config import training_config

if TYPE_CHECKING:
    from mmexp.data.datamodule import MultimodalDataModule
    from mmexp.data.tokenizers import Tokenizer
    from mmexp.training.classifier import MultimodalClassifier

DATA_STATE = "MultimodalDataModule"  # the checkpoint key of the datamodule's state: vocabulary and label map


@dataclass(frozen=True)
class TrainedRun:
    """A checkpoint, its training run dir and config, and the checkpoint's contents (CPU tensors)."""

    checkpoint_path: Path
    run_dir: Path
    config: DictConfig  # the training run's config.yaml
    checkpoint: dict[str, Any]

    @classmethod
    def load(cls, ckpt_path: str | Path, *, trust: bool = False, own_data: bool = False) -> TrainedRun:
        """The run of ``ckpt_path``; ``trust`` unpickles more than tensors (``trust_checkpoint=true``);
        ``own_data``: the caller reads the run's own data, so a relative ``data.root`` is found where
        training ran (``training_config``)."""
        from mmexp.evaluation.evaluate import load_checkpoint, locate_run

        ckpt_file, run_dir = locate_run(str(ckpt_path))
        config = training_config(run_dir, own_data=own_data)
        return cls(ckpt_file, run_dir, config, load_checkpoint(ckpt_file, trust=trust))

    @property
    def data_state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.checkpoint[DATA_STATE]
        return state

    @property
    def labels(self) -> list[str]:
        """The label map the model was trained with."""
        return list(self.data_state["labels"])

    def datamodule(self, data: DictConfig | None = None) -> MultimodalDataModule:
        """The datamodule of ``data`` (default: the run's own ``data``) holding the checkpoint's vocabulary
        and label map, which its ``setup()`` keeps; not prepared nor set up."""
        from mmexp.core.build import build_datamodule

        config = self.config
        datamodule = build_datamodule(data or config.data, config.text_encoder, task=config.get("task"))
        datamodule.load_state_dict(self.data_state)
        return datamodule

    def tokenizer(self) -> Tokenizer:
        """The text encoder's own tokenizer, else the word tokenizer of ``data.text``, with its fitted state."""
        from mmexp.portable.bundle import build_tokenizer

        tokenizer: Tokenizer = build_tokenizer(self.config, self.data_state)
        return tokenizer

    def model(self, config: DictConfig | None = None) -> MultimodalClassifier:
        """The checkpoint's model in eval mode, built from ``config`` (default: the run's; a bundle passes
        its model part); weights that do not fit are one ``ConfigError``."""
        from mmexp.core.build import build_model
        from mmexp.evaluation.checkpoint_pairing import load_weights

        labels = self.labels
        built = build_model(
            config or self.config, num_classes=len(labels), labels=labels, **self.tokenizer().encoder_kwargs()
        )
        load_weights(built, self.checkpoint, self.checkpoint_path)
        return built.eval()

    @property
    def source(self) -> dict[str, Any]:
        """Where the model comes from, as exports and bundles record it."""
        return {
            "checkpoint": str(self.checkpoint_path),
            "epoch": self.checkpoint.get("epoch"),
            "run_dir": str(self.run_dir),
        }


def split_chosen() -> bool:
    """True when the command line picked a split option (``split=<name>``), not eval.yaml's every-row split."""
    return HydraConfig.initialized() and HydraConfig.get().runtime.choices.get("split") is not None


def data_node(cfg: DictConfig, train_cfg: DictConfig) -> DictConfig:
    """The data config an eval or predict command ``cfg`` reads: the user's ``data=...``, else the run's own.

    Tokenization and image size always come from training (the model was fitted to them); caches go
    to this run's ``paths.cache_dir``; the training data's leakage check already ran at training time.
    The run's own data is read whole and its test rows are then taken by the ids in its split.json.
    """
    user_data = cfg.get("data") is not None
    if not user_data and split_chosen():
        raise ConfigError(
            "split=... selects rows of a dataset given with data=... (e.g. data=folder "
            "data.root=/path); without data=, the checkpoint's own test split is evaluated"
        )
    node = resolved_copy(cfg.data if user_data else train_cfg.data)
    node.text, node.image_size = train_cfg.data.text, train_cfg.data.image_size  # the word tokenizer's spec
    node.resize = train_cfg.data.get("resize", "squash")  # images made square as the model saw them
    node.eval_batch_size = cfg.batch_size or train_cfg.data.get("eval_batch_size") or train_cfg.data.batch_size
    node.cache_dir = cfg.paths.cache_dir
    if user_data and node.get("synthetic"):  # the built-in data labelled for the run's task
        from mmexp.data.task import task_of

        node.synthetic.task = task_of(train_cfg.get("task")).name
    if not user_data:  # every row is read; the run's own test rows are picked by id (recorded_split)
        node.split = {"_target_": "mmexp.data.splits.AllRowsSplit"}
        node.on_leak = "ignore"
    return node


def for_command(cfg: DictConfig) -> tuple[TrainedRun, MultimodalDataModule]:
    """The run of an eval or predict command's ``cfg.ckpt_path`` and the prepared datamodule of the data it
    reads (``data_node``)."""
    run = TrainedRun.load(cfg.ckpt_path, trust=cfg.trust_checkpoint, own_data=cfg.get("data") is None)
    datamodule = run.datamodule(data_node(cfg, run.config))
    datamodule.prepare_data()
    return run, datamodule
