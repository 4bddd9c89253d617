"""Make Lightning's log lines go through Hydra's handlers once, instead of printing twice, without its adverts."""

from __future__ import annotations

import logging
import warnings


def quiet_known_warnings() -> None:
    """Lightning 2.6 on torch 2.13 warns about its own use of a deprecated pytree API on every run; torchmetrics
    warns about classes without positive (negative) rows, which the task metrics leave out or report as NaN."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings(
        "ignore", message=r"No (positive|negative) samples (found )?in target", module="torchmetrics"
    )


def not_a_tip(record: logging.LogRecord) -> bool:
    """Lightning advertises its cloud products ("💡 Tip: ... litlogger") in every run's log."""
    return not str(record.msg).startswith("💡 Tip")


def route_lightning_logs() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # where rank_zero_info logs
    if not_a_tip not in rank_zero.filters:
        rank_zero.addFilter(not_a_tip)
