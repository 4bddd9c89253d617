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

from omegaconf import DictConfig

from mmexp.core.training_config import training_config
from mmexp.evaluation.checkpoint_pairing import load_weights
from mmexp.evaluation.evaluate import data_node, load_checkpoint, locate_run
from mmexp.training.build import build_datamodule, build_model, build_tokenizer

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
        config = self.config
        datamodule = build_datamodule(data or config.data, config.text_encoder, task=config.get("task"))
        datamodule.load_state_dict(self.data_state)
        return datamodule

    def tokenizer(self) -> Tokenizer:
        """The text encoder's own tokenizer, else the word tokenizer of ``data.text``, with its fitted state."""
        tokenizer: Tokenizer = build_tokenizer(self.config, self.data_state)
        return tokenizer

    def model(self, config: DictConfig | None = None) -> MultimodalClassifier:
        """The checkpoint's model in eval mode, built from ``config`` (default: the run's; a bundle passes
        its model part); weights that do not fit are one ``ConfigError``."""
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


def for_command(cfg: DictConfig) -> tuple[TrainedRun, MultimodalDataModule]:
    """The run of an eval or predict command's ``cfg.ckpt_path`` and the prepared datamodule of the data it
    reads (``data_node``)."""
    run = TrainedRun.load(cfg.ckpt_path, trust=cfg.trust_checkpoint, own_data=cfg.get("data") is None)
    datamodule = run.datamodule(data_node(cfg, run.config))
    datamodule.prepare_data()
    return run, datamodule
