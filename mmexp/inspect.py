"""`python -m mmexp.inspect data=folder data.root=...`: validate and summarize a dataset, no training.

(``mmexp.inspect`` is a module of the package, so it never shadows the standard library's ``inspect``.)
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)
from mmexp.core.cli import run_job
from mmexp.core.config_checks import check_config


def inspect_data(cfg: DictConfig) -> str:
    """Read and validate every row (bad rows are listed, not fatal), split, and summarize."""
    from mmexp.core.build import build_datamodule
    from mmexp.data.summary import summarize

    check_config(cfg)
    datamodule = build_datamodule(cfg.data, cfg.text_encoder, on_bad_record="skip", on_leak="warn")
    datamodule.prepare_data()
    datamodule.setup()
    return summarize(datamodule)


@hydra.main(version_base="1.3", config_path="conf", config_name="inspect")
def main(cfg: DictConfig) -> None:
    print(run_job(lambda: inspect_data(cfg), run_dir=None))


if __name__ == "__main__":
    main()
