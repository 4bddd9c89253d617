"""Compose the training config outside the CLI exactly as ``@hydra.main`` would (tests, scripts)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)


def compose_train_config(overrides: list[str], *, run_dir: Path) -> DictConfig:
    """The job config of ``python -m mmexp.train <overrides>`` running in ``run_dir``."""
    with initialize_config_module("mmexp.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):  # hydra's own node lives in HydraConfig, not in the job's config
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.name = "train"
        HydraConfig.instance().set_config(cfg)
        del cfg.hydra
    return cfg
