"""`python -m mmexp.inspect data=folder data.root=...`: validate and summarize a dataset, no training.

(``mmexp.inspect`` is a module of the package, so it never shadows the standard library's ``inspect``.) The job
is ``mmexp.app.inspect``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from mmexp.app.cli import command_line, run_job
from mmexp.app.inspect import inspect_data
from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)

__all__ = ["inspect_data", "main"]


@command_line  # exits without a last GC
@hydra.main(version_base="1.3", config_path="pkg://mmexp.conf", config_name="inspect")
def main(cfg: DictConfig) -> None:
    print(run_job(lambda: inspect_data(cfg), run_dir=None))


if __name__ == "__main__":
    main()
