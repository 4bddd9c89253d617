"""Make Lightning's log lines go through Hydra's handlers once, instead of printing twice, without its noise."""

from __future__ import annotations

import logging
import warnings


def quiet_known_warnings() -> None:
    """Lightning 2.6 on torch 2.13 warns about its own use of a deprecated pytree API on every run; torchmetrics
    warns about classes without positive (negative) rows, which the task metrics leave out or report as NaN;
    Lightning warns at every fit that "Found 307 module(s) in eval mode", which is a frozen pretrained encoder
    keeping itself in eval mode on purpose (``training/feature_cache.py``)."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
    warnings.filterwarnings(
        "ignore", message=r"No (positive|negative) samples (found )?in target", module="torchmetrics"
    )


NOISE = (
    "💡 Tip",  # adverts for Lightning's cloud products ("... litlogger")
    "GPU available:",  # "GPU available: False, used: False": the device is in run_info.json; an unused GPU still warns
    "TPU available:",
    "HPU available:",
    "Trainer already configured with model summary callbacks",  # mmexp's own summary (training/terminal.py)
    "LOCAL_RANK:",  # "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]"
)


def not_noise(record: logging.LogRecord) -> bool:
    """Lightning's info lines that every run printed and no user acts on; its warnings are kept."""
    return record.levelno > logging.INFO or not str(record.msg).startswith(NOISE)


def route_lightning_logs() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    # where rank_zero_info logs, and where the CUDA accelerator logs "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]"
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
        source = logging.getLogger(name)
        if not_noise not in source.filters:
            source.addFilter(not_noise)
