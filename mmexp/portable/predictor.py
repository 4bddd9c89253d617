"""``Predictor``: a loaded model bundle that scores pandas DataFrames, as ``mmexp.predict`` scores a manifest.

Rows are checked like a manifest's rows to score (label optional; a row may lack its image or its text: it
is scored with that modality removed and flagged), decoded, tokenized and scored ``batch_size`` at a time
through ``mmexp.evaluation.predictions``, so the numbers equal the CLI's and the run's ``predictions/test.csv``.
"""

from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path
from typing import Any

from mmexp.core.errors import ConfigError
from mmexp.data.manifest import RowProblem
from mmexp.data.records import BadRow, Columns, ScoringRecord, check_scoring_columns, explicit_ids, scoring_record
from mmexp.data.task import Task
from mmexp.portable.bundle import Bundle, BundleError
from mmexp.portable.frames import FrameRows, frame_rows, require_pandas

log = logging.getLogger("mmexp.predictor")
FIXED = ("id", "label", "predicted", "confidence", "missing")


class Predictor:
    """The model of a bundle, ready to score rows (``mmexp.load`` makes one)."""

    def __init__(self, bundle: Bundle, *, device: str = "cpu") -> None:
        from mmexp.evaluation.evaluate import pick_device
        from mmexp.evaluation.predictions import Inputs
        from mmexp.training.build import build_model, build_task, build_tokenizer

        meta = bundle.meta
        self.path = bundle.path
        self.labels: list[str] = list(meta["labels"])
        self.task: Task = build_task(bundle.config.get("task"))
        self.columns = Columns(**meta["inputs"]["columns"])
        tokenizer = build_tokenizer(bundle.config, bundle.tokenizer_state)
        self.model = build_model(
            bundle.config, num_classes=len(self.labels), labels=self.labels, **tokenizer.encoder_kwargs()
        )
        try:
            self.model.load_state_dict(bundle.state_dict)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[-1].strip()[:200]
            raise BundleError(
                f"{bundle.path}: weights.pt does not fit the model its config.yaml builds ({first}); was the "
                "bundle written by another mmexp, or edited?"
            ) from None
        self.device = pick_device(device)
        self.model.to(self.device).eval()
        image = meta["image"]
        self.inputs = Inputs(tokenizer, int(image["size"]), str(image["resize"]), int(image["max_pixels"]))

    def __repr__(self) -> str:
        return f"Predictor({str(self.path)!r}, task={self.task.name}, labels={self.labels})"

    def predictions(
        self, data: Any, *, root: str | Path | None = None, batch_size: int = 256, on_bad_record: str = "error"
    ) -> Any:
        """Every row scored, as ``mmexp.predict`` writes them: ``id``, ``label``, ``predicted``, ``confidence``,
        ``missing``, then ``p_<class>``; indexed like ``data``. ``on_bad_record=skip`` leaves bad rows out."""
        pandas = require_pandas()
        if on_bad_record not in ("error", "skip"):
            raise ConfigError(f"on_bad_record must be 'error' or 'skip' (got {on_bad_record!r})")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} is invalid: expected a positive integer")
        with tempfile.TemporaryDirectory(prefix="mmexp-frame-") as tmp:
            frame = frame_rows(data, self.columns, root=root, images_dir=Path(tmp))
            records, bad = self._records(frame)
            if bad and on_bad_record == "error":
                raise ConfigError(frame.error(bad, action="predict"))
            text, scored = self._score(frame, records, bad, batch_size=batch_size, skip=on_bad_record == "skip")
        if bad:
            log.warning("predict: left out %d bad row(s) of %s", len(bad), "the DataFrame")
        table = pandas.read_csv(io.StringIO(text), dtype={c: str for c in FIXED}, keep_default_na=False)
        table.index = pandas.Index([frame.label(r.line) for r in scored], name=getattr(data.index, "name", None))
        return table

    def predict(self, data: Any, **options: Any) -> Any:
        """The predicted label of every row (a pandas Series indexed like ``data``; multilabel: the classes
        joined by ``task.label_sep``)."""
        return self.predictions(data, **options)["predicted"]

    def predict_proba(self, data: Any, **options: Any) -> Any:
        """Class probabilities (a pandas DataFrame indexed like ``data``, one column per class)."""
        table = self.predictions(data, **options)
        return table[[f"p_{name}" for name in self.labels]].set_axis(self.labels, axis=1)

    def _records(self, frame: FrameRows) -> tuple[list[ScoringRecord], list[BadRow]]:
        found = {key for _, row in frame.rows for key in row}
        check_scoring_columns(found, self.columns)
        first_line_of = explicit_ids(frame.rows, self.columns)
        records, bad = [], []
        for line, row in frame.rows:
            try:
                records.append(scoring_record(line, row, frame.root, self.columns, first_line_of, self.task))
            except RowProblem as problem:
                bad.append(BadRow(line, str(problem), row))
        return records, bad

    def _score(
        self, frame: FrameRows, records: list[ScoringRecord], bad: list[BadRow], *, batch_size: int, skip: bool
    ) -> tuple[str, list[ScoringRecord]]:
        """The CSV text of the scored rows and those rows; an image that fails to decode is a bad row."""
        from mmexp.evaluation.predictions import PredictionWriter, score_records

        def bad_rows(failures: list[BadRow]) -> None:
            if not skip:
                raise ConfigError(frame.error(failures, action="predict"))
            bad.extend(failures)

        buffer = io.BytesIO()
        out = PredictionWriter(buffer, self.labels, self.model)
        scored = score_records(
            out, iter(records), self.model, self.inputs, batch_size=batch_size, device=self.device, bad_rows=bad_rows
        )
        return buffer.getvalue().decode("utf-8"), scored
