"""Make Lightning's log lines go through Hydra's handlers once, instead of printing twice."""

from __future__ import annotations

import logging
import warnings


def quiet_known_warnings() -> None:
    """Lightning 2.6 on torch 2.13 warns about its own use of a deprecated pytree API on every run."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def route_lightning_logs() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
