"""Per-row predictions: every run's ``predictions/val.csv`` and ``predictions/test.csv``, and ``mmexp.predict``
over new rows.

Both write one CSV format: ``id``, ``label`` (the true label, empty when the row has none), ``predicted``,
``confidence``, ``missing`` (``none``, ``image`` or ``text``: the modality the row lacked, removed the way
``mmexp.eval`` removes it), then ``p_<class>`` per class in label-map order. Decisions and confidence follow
the task (``mmexp.training.objective``): multiclass, the arg-max class and its probability; binary, the
class the checkpoint's threshold decides and that class's probability; multilabel, the classes at or above
their thresholds joined by ``task.label_sep`` (empty: none) and the probability of exactly that set when the
classes are independent (the product over classes of p or 1 - p). Probabilities are written with 9
significant digits (float32 round-trips exactly).
``mmexp.predict`` streams: rows are read, decoded, tokenized, scored and written ``batch_size`` at a time.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch

from mmexp.contracts import Batch
from mmexp.core.errors import ConfigError
from mmexp.core.io import write_atomic, write_text_atomic
from mmexp.data.images import decode_images
from mmexp.data.manifest import ERROR, RowProblem, iter_rows
from mmexp.data.records import (
    BadRow,
    Columns,
    ScoringRecord,
    check_scoring_columns,
    explicit_ids,
    scoring_record,
    with_mmf_image_column,
)
from mmexp.data.task import Label, Task, each_class
from mmexp.evaluation.inference import infer, scored_batches
from mmexp.models.missing import remove_modality
from mmexp.training.scored_rows import ScoredRows

if TYPE_CHECKING:
    import lightning as L

    from mmexp.data.datamodule import MultimodalDataModule
    from mmexp.training.classifier import MultimodalClassifier

COLUMNS = ("id", "label", "predicted", "confidence", "missing")
PROBABILITY = "p_"  # prefix of the per-class probability columns


class _Utf8:
    """A text sink over a binary file, for ``csv.writer`` inside ``write_atomic``."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f

    def write(self, text: str) -> int:
        return self.f.write(text.encode("utf-8"))


class PredictionWriter:
    """Writes the header, then rows of scored batches with ``model``'s decisions; counts rows and missing
    modalities."""

    def __init__(self, f: IO[bytes], labels: Sequence[str], model: MultimodalClassifier) -> None:
        self.labels, self.model = list(labels), model
        self.csv = csv.writer(_Utf8(f), lineterminator="\n")
        self.csv.writerow([*COLUMNS, *(PROBABILITY + name for name in self.labels)])
        self.missing: Counter[str] = Counter()

    def in_map_order(self, label: Label | None) -> Label | None:
        """A set of classes in label-map order, as ``predicted`` is written (classes the map lacks last)."""
        if not isinstance(label, tuple):
            return label
        order = {name: i for i, name in enumerate(self.labels)}
        return tuple(sorted(label, key=lambda name: (order.get(name, len(order)), name)))

    def names(self, target: torch.Tensor) -> Label:
        """A class index, or a multi-hot row, as the label it stands for."""
        if target.dim() == 0:
            return self.labels[int(target)]
        return tuple(self.labels[k] for k in torch.nonzero(target > 0.5).flatten().tolist())

    def write(
        self, ids: Sequence[str], true: Sequence[Label | None], probs: torch.Tensor, missing: Sequence[str]
    ) -> None:
        """One row per id; ``probs`` (B, C) are the model's class probabilities."""
        probs = probs.detach().float().cpu()
        thresholds = None if self.model.thresholds is None else self.model.thresholds.cpu()
        decided = self.model.objective.decide(probs, thresholds)
        if decided.dim() == 2:  # multilabel: the chance of exactly the decided set
            confidence = torch.where(decided.bool(), probs, 1 - probs).prod(1)
        else:
            confidence = probs.gather(1, decided.unsqueeze(1)).squeeze(1)
        task = self.model.task
        for i, row in enumerate(probs.tolist()):
            self.csv.writerow(
                [
                    ids[i],
                    task.format(self.in_map_order(true[i])),
                    task.format(self.names(decided[i])),
                    f"{float(confidence[i]):.9g}",
                    missing[i],
                    *(f"{p:.9g}" for p in row),
                ]
            )
        self.missing.update(missing)

    @property
    def rows(self) -> int:
        return sum(self.missing.values())


SPLITS = ("val", "test")  # the splits every run writes predictions/<split>.csv for


def write_split_predictions(
    path: Path,
    trainer: L.Trainer,
    model: MultimodalClassifier,
    datamodule: MultimodalDataModule,
    split: str,
    scored: ScoredRows | None = None,
) -> None:
    """Every row of ``split`` (``val`` or ``test``) scored by ``model`` as ``trainer.test`` left it (the best
    checkpoint's weights, with that checkpoint's decision thresholds), under the trainer's precision, into
    ``path`` (a run's ``predictions/<split>.csv``), in the split's order. Rows in ``scored`` (those
    ``trainer.test`` scored: ``model.test_scored``) are written as they were scored; only the batches holding
    other rows (``trainer.limit_test_batches`` < 1, or val) go through the model. Val predictions let
    ``mmexp.report --ensemble`` choose an ensemble of runs without touching test. Rank zero writes; the others
    return."""
    if not trainer.is_global_zero:
        return
    device, labels, ids = trainer.strategy.root_device, datamodule.label_names, datamodule.info.ids
    rows = datamodule.split_rows[split].tolist()
    parts = [scored] if scored is not None else []
    place = scored.by_row() if scored is not None else {}
    if any(row not in place for row in rows):
        loader = {"val": datamodule.val_dataloader, "test": datamodule.test_dataloader}[split]
        unscored = (b for b in loader() if b.index is None or not all(i in place for i in b.index.tolist()))
        new = infer(model, unscored, device=device, context=trainer.precision_plugin.forward_context)
        assert new.index is not None  # the datamodule's batches carry their rows
        parts.append(ScoredRows(new.index, new.probs, new.labels))
    every = ScoredRows(*(torch.cat([getattr(p, name) for p in parts]) for name in ("index", "probs", "labels")))
    found = every.by_row()  # each row is in one part: the new one holds only rows the first lacked
    order = torch.tensor([found[row] for row in rows], dtype=torch.long)
    probs, true = every.probs[order], every.labels[order]

    def write(f: IO[bytes]) -> None:
        out = PredictionWriter(f, labels, model)
        out.write([ids[row] for row in rows], [out.names(t) for t in true], probs, ["none"] * len(rows))

    write_atomic(path, write)


@dataclass
class Manifest:
    """A manifest checked for scoring: its columns, its ids (the only thing kept per row) and its bad rows."""

    path: Path
    root: Path
    columns: Columns
    first_line_of: dict[str, int]
    task: Task
    bad: list[BadRow] = field(default_factory=list)
    classes: set[str] = field(default_factory=set)  # of the usable rows' labels (rows may have none)
    links: bool = False  # data.follow_symlinks

    def records(self) -> Iterator[ScoringRecord]:
        """The usable rows, read again from the file one at a time."""
        bad_lines = {b.line for b in self.bad}
        for line, row in iter_rows(self.path):
            if line in bad_lines:
                continue
            try:
                yield scoring_record(
                    line, row, self.root, self.columns, self.first_line_of, self.task, follow_symlinks=self.links
                )
            except RowProblem as problem:  # the file or an image changed since it was checked
                raise ConfigError(f"data: {self.path} line {line} changed while being scored: {problem}") from None


def check_manifest(path: Path, root: Path, columns: Columns, task: Task, *, follow_symlinks: bool = False) -> Manifest:
    """Read the manifest twice without decoding anything: its columns and ids, then every row's problems.

    Columns that do not match are one ``ConfigError``; bad rows are listed in ``Manifest.bad``.
    """
    found: set[str] = set()

    def noting_columns() -> Iterator[tuple[int, dict[str, Any]]]:
        for line, row in iter_rows(path):
            if ERROR not in row:
                found.update(row)
            yield line, row

    first_line_of = explicit_ids(noting_columns(), columns)
    columns = with_mmf_image_column(columns, [(0, dict.fromkeys(found))])
    if found:  # no readable row at all: the bad rows say why
        check_scoring_columns(found, columns)
    manifest = Manifest(path, root.resolve(), columns, first_line_of, task, links=follow_symlinks)
    for line, row in iter_rows(path):
        try:
            label = scoring_record(
                line, row, manifest.root, columns, first_line_of, task, follow_symlinks=follow_symlinks
            ).label
        except RowProblem as problem:
            manifest.bad.append(BadRow(line, str(problem), row))
        else:
            manifest.classes.update(each_class([label] if label is not None else []))
    return manifest


@dataclass(frozen=True)
class Inputs:
    """How the checkpoint's model wants its inputs: tokenizer, image size and resize mode."""

    tokenizer: Any
    image_size: int
    resize: str
    max_pixels: int


def to_batch(records: list[ScoringRecord], inputs: Inputs) -> tuple[Batch, dict[int, str]]:
    """The rows as one ``Batch`` with each missing modality removed; images that fail to decode by position."""
    with_image = [i for i, r in enumerate(records) if r.image is not None]
    paths = [r.image for r in records if r.image is not None]
    decoded, failed = decode_images(paths, inputs.image_size, inputs.resize, inputs.max_pixels)
    size = inputs.image_size
    images = torch.zeros(len(records), 3, size, size, dtype=torch.uint8)
    images[with_image] = torch.from_numpy(decoded)
    texts = [r.text or "" for r in records]
    text_ids, text_mask = inputs.tokenizer.encode(texts)
    batch = Batch(
        image=images, text_ids=text_ids, text_mask=text_mask, label=torch.zeros(len(records), dtype=torch.long)
    )
    batch = batch.replace(texts=texts)
    for modality in ("image", "text"):
        rows = torch.tensor([r.missing == modality for r in records])
        if bool(rows.any()):
            batch = remove_modality(batch, modality, rows)
    return batch, {with_image[k]: reason for k, reason in failed.items()}


def score_records(
    out: PredictionWriter,
    records: Iterator[ScoringRecord],
    model: MultimodalClassifier,
    inputs: Inputs,
    *,
    batch_size: int,
    device: torch.device,
    bad_rows: Callable[[list[BadRow]], None],
) -> list[ScoringRecord]:
    """Score ``records`` ``batch_size`` at a time into ``out``; return the rows written. Rows whose image
    fails to decode are left out and handed to ``bad_rows`` (which raises, or records them)."""
    pending: list[tuple[list[ScoringRecord], list[int]]] = []  # per batch: its decoded rows and their positions

    def batches() -> Iterator[Batch]:
        while chunk := list(itertools.islice(records, batch_size)):
            batch, failed = to_batch(chunk, inputs)
            if failed:
                bad_rows([BadRow(chunk[i].line, reason, {"id": chunk[i].id}) for i, reason in sorted(failed.items())])
            keep = [i for i in range(len(chunk)) if i not in failed]
            pending.append(([chunk[i] for i in keep], keep))
            yield batch

    written: list[ScoringRecord] = []
    for scored in scored_batches(model, batches(), device=device):
        rows, keep = pending.pop(0)
        out.write([r.id for r in rows], [r.label for r in rows], scored.probs[keep], [r.missing for r in rows])
        written += rows
    return written


def score_manifest(
    f: IO[bytes],
    manifest: Manifest,
    model: MultimodalClassifier,
    labels: Sequence[str],
    inputs: Inputs,
    *,
    batch_size: int,
    device: torch.device,
    skip_bad: bool,
) -> PredictionWriter:
    """Score the manifest's usable rows ``batch_size`` at a time into ``f``; an image that fails to decode is
    a bad row (listed in ``manifest.bad`` with ``skip_bad``, else one ``ConfigError``)."""

    def bad_rows(rows: list[BadRow]) -> None:
        if not skip_bad:
            raise ConfigError(
                f"data: {manifest.path} line {rows[0].line}: {rows[0].reason}; fix the image, or set "
                "data.on_bad_record=skip to predict without such rows (they go to skipped.jsonl)"
            )
        manifest.bad += rows

    out = PredictionWriter(f, labels, model)
    score_records(out, manifest.records(), model, inputs, batch_size=batch_size, device=device, bad_rows=bad_rows)
    return out


def write_skipped(path: Path, bad: list[BadRow]) -> None:
    lines = [json.dumps({"line": b.line, "reason": b.reason, "row": b.row}, default=str) for b in bad]
    write_text_atomic(path, "".join(line + "\n" for line in lines))
