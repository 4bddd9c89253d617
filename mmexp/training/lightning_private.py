"""Every private Lightning API mmexp uses, in one place: the functions it calls and the hooks it overrides.

Why: private names change between Lightning releases without a deprecation. Importing them only from here,
and listing the overridden hooks with the parameters mmexp's overrides expect, lets one test
(tests/training/test_lightning_private.py) fail on an upgrade that moves or reshapes any of them, naming it,
instead of a silently skipped override (a renamed hook is never called) or a crash mid-run.
Checked against lightning 2.6.6, the version CI installs.
"""

from __future__ import annotations

from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table

collect_rng_states = _collect_rng_states  # torch/numpy/python RNG states, as Lightning's own resume saves them
set_rng_states = _set_rng_states
format_summary_table = _format_summary_table  # the model summary's table, without the rows mmexp leaves out

# (class, private method mmexp's subclasses override or call, its parameters after self)
OVERRIDDEN_HOOKS: tuple[tuple[type, str, tuple[str, ...]], ...] = (
    (RichProgressBar, "_get_train_description", ("current_epoch",)),  # training/terminal.py: epochs 1..N
    (RichProgressBar, "_init_progress", ("trainer",)),  # log lines above the bar
    (RichProgressBar, "_stop_progress", ()),
    (ExperimentWriter, "_check_log_dir_exists", ()),  # training/csv_logger.py: a resumed run keeps metrics.csv
)
# private attributes mmexp's subclasses read or set
PRIVATE_ATTRIBUTES: tuple[tuple[type, str], ...] = (
    (CSVLogger, "_experiment"),  # the writer instance, created lazily by ``experiment``
    (CSVLogger, "_fs"),
)
