"""A training run's config as eval and predict read it, from wherever they are started.

config.yaml keeps ``data.root`` as it was typed; a relative one is relative to the directory training ran in,
which Hydra records in the run's ``.hydra/hydra.yaml`` (``hydra.runtime.cwd``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mmexp.core.config_io import load_config
from mmexp.core.errors import ConfigError

log = logging.getLogger("mmexp")
HYDRA_FILES = (Path(".hydra") / "first_run" / "hydra.yaml", Path(".hydra") / "hydra.yaml")  # first: the original


def training_config(train_dir: Path, *, own_data: bool) -> DictConfig:
    """``<train_dir>/config.yaml``; with ``own_data`` (the command reads the run's own data) a relative
    ``data.root`` that is not found from here is taken from where training ran, or refused in one line that
    names that directory and the fix."""
    cfg = load_config(train_dir / "config.yaml")
    root = OmegaConf.select(cfg, "data.root", default=None, throw_on_resolution_failure=False)
    if not own_data or not isinstance(root, str) or Path(root).expanduser().is_absolute() or Path(root).is_dir():
        return cfg
    ran_in, data_option = _recorded(train_dir)
    if ran_in is not None and (ran_in / root).is_dir():
        log.info("data.root=%s is relative to %s, where the run %s was trained: reading %s", root, ran_in,
                 train_dir, ran_in / root)  # fmt: skip
        cfg.data.root = str(ran_in / root)
        return cfg
    where = f"where training ran ({ran_in})" if ran_in else "where training ran (not recorded in its .hydra/)"
    raise ConfigError(
        f"data.root={root} in {train_dir / 'config.yaml'} is relative to the directory {where} and is not found "
        f"there nor from here ({Path.cwd()}); run from that directory, or give the data with an absolute path: "
        f"data={data_option or '<its data option>'} data.root=<absolute path of {root}>"
    )


def _recorded(train_dir: Path) -> tuple[Path | None, str | None]:
    """The directory the run was trained from and its data option, as Hydra recorded them."""
    for name in HYDRA_FILES:
        try:
            hydra = OmegaConf.load(train_dir / name)
        except (OSError, ValueError):
            continue
        cwd = OmegaConf.select(hydra, "hydra.runtime.cwd", default=None, throw_on_resolution_failure=False)
        choice = OmegaConf.select(hydra, "hydra.runtime.choices.data", default=None, throw_on_resolution_failure=False)
        if isinstance(cwd, str):
            return Path(cwd), str(choice) if choice else None
    return None, None
