"""Make Lightning's log lines go through Hydra's handlers once, instead of printing twice."""

from __future__ import annotations

import logging


def route_lightning_logs() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
