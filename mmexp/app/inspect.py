"""The inspect job of ``python -m mmexp.inspect``: validate and summarize a dataset, no training."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

from omegaconf import DictConfig

from mmexp.app.config_checks import check_config
from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)


def inspect_data(cfg: DictConfig, overrides: Sequence[str] | None = None) -> str:
    """Read and validate every row (bad rows are listed, not fatal), split, and summarize.

    Writes nothing: no decoded-image cache, and the built-in dataset, when it is not cached yet, is
    generated into a temporary folder that is removed afterwards. ``overrides``: the command's, as typed (None:
    Hydra's record of them, when composed by Hydra); the suggested first run carries those about data, task,
    split and paths.
    """
    from hydra.core.hydra_config import HydraConfig

    from mmexp.data.summary import summarize
    from mmexp.data.synthetic import synthetic_cached
    from mmexp.training.build import build_datamodule

    check_config(cfg)
    if overrides is None and HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
    with tempfile.TemporaryDirectory(prefix="mmexp-inspect-") as scratch:
        datamodule = build_datamodule(
            cfg.data, cfg.text_encoder, task=cfg.get("task"), on_bad_record="skip", on_leak="warn", image_cache=False
        )
        if datamodule.synthetic is not None and not synthetic_cached(datamodule.synthetic, datamodule.cache_dir):
            datamodule.cache_dir = scratch
        datamodule.skipped_note = "listed below; a training run lists the rows it skips in skipped.jsonl of its run dir"
        datamodule.prepare_data()
        datamodule.setup()
        return summarize(datamodule, overrides)
