"""Lightning's CSVLogger, except that a resumed run continues its metrics.csv instead of deleting it."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from mmexp.core.io import write_text_atomic


class ContinuingWriter(ExperimentWriter):
    """Keeps an existing metrics.csv (Lightning's writer deletes it); new rows append under its header."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))


class ContinuingCSVLogger(CSVLogger):
    """CSVLogger for runs that can be killed and resumed (``resume=auto``) in the same run dir.

    A fresh run dir has no metrics.csv, so a fresh run logs exactly as Lightning's CSVLogger does.
    """

    _experiment: ExperimentWriter | None  # only ever set by ``experiment`` below

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingWriter(log_dir=self.log_dir)
        return self._experiment

    def drop_rows_from_step(self, step: int) -> None:
        """Forget what a killed run logged at ``step`` and later: the resumed run logs those steps again."""
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        if not path.is_file():
            return
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            kept = [row for row in reader if row.get("step") in (None, "") or int(row["step"]) < step]
            fields = reader.fieldnames or []
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        write_text_atomic(path, out.getvalue())
