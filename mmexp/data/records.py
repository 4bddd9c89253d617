"""Validate manifest rows into records, reporting every bad row at once with its physical line number.

Reading the file (encoding, CSV/JSONL structure, line numbers) is ``mmexp.data.manifest``; this module checks
each row (text, label, id, image path) and turns it into a ``Record`` or a ``BadRow``. Problems with the whole
file raise one ``ConfigError`` (a required column that no row has).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from mmexp.core.errors import ConfigError
from mmexp.data.label_syntax import check_separators
from mmexp.data.labels import InvalidLabel, normalize_label
from mmexp.data.manifest import ERROR, Row, RowProblem
from mmexp.data.task import Label, Task, written_list


@dataclass(frozen=True)
class Columns:
    """Manifest column names (MMF-style manifests use ``img`` for the image column)."""

    id: str = "id"
    image: str = "image"
    text: str = "text"
    label: str = "label"
    group: str | None = "group"
    split: str | None = "split"


@dataclass(frozen=True)
class Record:
    id: str
    image: Path
    text: str
    label: Label
    line: int
    group: str | None = None
    split: str | None = None


@dataclass
class BadRow:
    line: int
    reason: str
    row: Row = field(default_factory=dict)

    def describe(self) -> str:
        return f"line {self.line}: {self.reason}"


# ---- validation: rows -> records + bad rows ----


def with_mmf_image_column(columns: Columns, rows: list[tuple[int, Row]]) -> Columns:
    """MMF-style manifests name the image column ``img``; accept them without configuration."""
    first = next((row for _, row in rows if ERROR not in row), {})
    if columns.image == "image" and "image" not in first and "img" in first:
        return replace(columns, image="img")
    return columns


def parse_records(
    rows: list[tuple[int, Row]],
    root: Path,
    columns: Columns,
    task: Task | None = None,
    *,
    follow_symlinks: bool = False,
) -> tuple[list[Record], list[BadRow]]:
    """Validate rows cheaply (no image decoding); image content is checked when decoded. ``task`` reads the
    label (multilabel: a list, or a cell split on ``task.label_sep``); multi-label sets that look joined by
    another separator are one ``ConfigError`` (``mmexp.data.label_syntax``). ``follow_symlinks``: an image path
    may resolve outside ``root`` through a symbolic link inside it (``data.follow_symlinks``)."""
    task = task or Task()
    columns = with_mmf_image_column(columns, rows)
    check_required_columns(rows, columns)
    root = root.resolve()
    first_line_of = explicit_ids(rows, columns)
    records: list[Record] = []
    bad: list[BadRow] = []
    for line, row in rows:
        try:
            records.append(_record(line, row, root, columns, first_line_of, task, follow_symlinks))
        except RowProblem as problem:
            bad.append(BadRow(line, str(problem), row))
    if task.multilabel and task.checks_lookalikes:
        raw = {line: row.get(columns.label) for line, row in rows}
        split = {line for line, value in raw.items() if isinstance(value, str) and written_list(value.strip()) is None}
        check_separators([(r.line, _set(r.label), r.line in split) for r in records], task.label_sep)
    return records, bad


def _set(label: Label) -> tuple[str, ...]:
    return label if isinstance(label, tuple) else (label,)


def check_required_columns(rows: list[tuple[int, Row]], columns: Columns) -> None:
    """A column no row has is a naming problem (data.*_col), not one bad row per line."""
    readable = [row for _, row in rows if ERROR not in row]
    if not readable:
        return
    found = sorted({key for row in readable for key in row})
    for option, name in (("image_col", columns.image), ("text_col", columns.text), ("label_col", columns.label)):
        if not any(name in row for row in readable):
            raise ConfigError(
                f"data.manifest: no row has a {name!r} column (columns found: {', '.join(map(repr, found))}); "
                f"rename the column or set data.{option}"
            )


def explicit_ids(rows: Iterable[tuple[int, Row]], columns: Columns) -> dict[str, int]:
    """Each id written in the manifest, with the first line that uses it."""
    first: dict[str, int] = {}
    for line, row in rows:
        if ERROR in row:
            continue
        try:
            rid = id_of(row.get(columns.id), columns.id)
        except RowProblem:
            continue
        if rid is not None:
            first.setdefault(rid, line)
    return first


def _record(
    line: int, row: Row, root: Path, columns: Columns, first_line_of: dict[str, int], task: Task, follow_symlinks: bool
) -> Record:
    """The record of one row, or ``RowProblem`` with the first reason it cannot be used."""
    if ERROR in row:
        raise RowProblem(row[ERROR])
    rid = _row_id(line, row, columns, first_line_of)
    text = row.get(columns.text)
    if not isinstance(text, str) or not text.strip():
        raise RowProblem(f"{columns.text!r} must be a non-empty string (got {text!r})")
    label = _label(row.get(columns.label), columns.label, task)
    if label is None:
        got = row.get(columns.label)
        raise RowProblem(f"missing {columns.label!r}" + ("" if got in (None, "") else f" (got {got!r})"))
    return Record(
        id=rid,
        image=_image_path(row.get(columns.image), root, columns.image, follow_symlinks),
        text=text,
        label=label,
        line=line,
        group=_category(row.get(columns.group), columns.group) if columns.group else None,
        split=_optional(row, columns.split),
    )


def _row_id(line: int, row: Row, columns: Columns, first_line_of: dict[str, int]) -> str:
    """The row's own id, or its line number when it has none; either must be unique in the file."""
    rid = id_of(row.get(columns.id), columns.id)
    if rid is not None:
        if first_line_of[rid] != line:
            raise RowProblem(f"duplicate {columns.id} {rid!r} (first on line {first_line_of[rid]})")
        return rid
    if str(line) in first_line_of:
        raise RowProblem(
            f"no {columns.id}, and its line number {line} (the id it would get) is the {columns.id} of line "
            f"{first_line_of[str(line)]}; give this row an {columns.id}"
        )
    return str(line)


def id_of(value: object, name: str) -> str | None:
    """An id as text (JSON 7 and "7" are the same id); None when the row has none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise RowProblem(f"{name!r} must be a string or an integer (got {value!r})")


def _category(value: object, name: str) -> str | None:
    """A label or group value as its canonical name (see ``mmexp.data.labels``); None when missing."""
    try:
        return normalize_label(value)
    except InvalidLabel as e:
        raise RowProblem(f"{name!r} {e}") from None


def _label(value: object, name: str, task: Task) -> Label | None:
    """The row's label as the task reads it; None when missing."""
    try:
        return task.parse_label(value)
    except InvalidLabel as e:
        raise RowProblem(f"{name!r} {e}") from None


def _image_path(image: object, root: Path, name: str, follow_symlinks: bool = False) -> Path:
    """The image file under ``root`` (resolved); a path that is absolute, escapes root or does not exist is refused.
    A relative path that leaves root only through a symbolic link inside it is allowed by ``follow_symlinks``."""
    if not isinstance(image, str) or not image:
        raise RowProblem(f"missing {name!r}")
    try:
        path = (root / image).resolve()
        written = Path(os.path.normpath(root / image))  # the path as written, ".." applied, links not followed
        if Path(image).is_absolute() or not written.is_relative_to(root):
            raise RowProblem(f"image path {image!r} is outside data.root (paths must be relative to it)")
        if not path.is_relative_to(root) and not follow_symlinks:
            raise RowProblem(_through_link(image, root))
        found, directory = path.is_file(), path.is_dir()
    except (OSError, ValueError) as e:  # a NUL byte, a name too long for the file system
        raise RowProblem(f"image path {image[:80]!r} cannot be used ({e})") from None
    if directory:
        raise RowProblem(f"image path {image!r} is a directory, not an image file")
    if not found:
        raise RowProblem(f"image file not found: {image!r}")
    return path


def _through_link(image: str, root: Path) -> str:
    """Why a relative path resolves outside ``root``: the first symbolic link on the way that leads out."""
    here = root
    for part in Path(image).parts:
        here = here / part
        if here.is_symlink() and not here.resolve().is_relative_to(root):
            link = here.relative_to(root)
            return (
                f"image path {image!r} resolves outside data.root through the symbolic link {str(link)!r} "
                f"(-> {here.resolve()}); set data.follow_symlinks=true to allow links that leave data.root"
            )
    return f"image path {image!r} resolves outside data.root (through a symbolic link); set data.follow_symlinks=true"


def _optional(row: Row, column: str | None) -> str | None:
    value = row.get(column) if column else None
    return None if value in (None, "") else str(value)


# ---- rows to score (mmexp.predict): the label is optional, and so is one of image and text ----


@dataclass(frozen=True)
class ScoringRecord:
    """A row to predict: ``label`` None when unlabeled, ``image`` / ``text`` None when the row has none."""

    id: str
    image: Path | None
    text: str | None
    label: Label | None
    line: int

    @property
    def missing(self) -> str:
        """The modality the row lacks: ``image``, ``text`` or ``none``."""
        return "image" if self.image is None else "text" if self.text is None else "none"


def check_scoring_columns(found: Iterable[str], columns: Columns) -> None:
    """The id, image and text columns must exist (in the CSV header, or in some JSONL row): one line if not."""
    found = sorted(set(found))
    wanted = (("id_col", columns.id), ("image_col", columns.image), ("text_col", columns.text))
    absent = [f"{name!r} (data.{option})" for option, name in wanted if name not in found]
    if absent:
        raise ConfigError(
            f"data.manifest: the columns do not match: no {', '.join(absent)} column; columns found: "
            f"{', '.join(map(repr, found)) or 'none'}; rename the columns or set the data.*_col options"
        )


def scoring_record(
    line: int,
    row: Row,
    root: Path,
    columns: Columns,
    first_line_of: dict[str, int],
    task: Task | None = None,
    *,
    follow_symlinks: bool = False,
) -> ScoringRecord:
    """The row to score, or ``RowProblem``: an empty or absent image or text is missing, not a problem, but a
    row needs one of them; a label, when present, must be valid. ``root`` is resolved."""
    if ERROR in row:
        raise RowProblem(row[ERROR])
    rid = _row_id(line, row, columns, first_line_of)
    text = row.get(columns.text)
    if text is not None and not isinstance(text, str):
        raise RowProblem(f"{columns.text!r} must be a string (got {text!r})")
    image = row.get(columns.image)
    path = None if image in (None, "") else _image_path(image, root, columns.image, follow_symlinks)
    if path is None and not (text and text.strip()):
        raise RowProblem(f"neither {columns.image!r} nor {columns.text!r}: nothing to predict from")
    label = _label(row.get(columns.label), columns.label, task or Task())
    return ScoringRecord(id=rid, image=path, text=text if text and text.strip() else None, label=label, line=line)


def format_bad_rows(
    bad: list[BadRow],
    manifest: Path | str,
    limit: int = 20,
    *,
    action: str | None = "train",
    describe: Callable[[BadRow], str] = BadRow.describe,
    option: str = "data.on_bad_record",
) -> str:
    """The bad rows as one error: the first ``limit`` with their lines, and how to ``action`` without them
    (None: no row is usable, so skipping cannot help). A DataFrame's rows are named by its index (``describe``)
    and skipped by the Python API's own ``option``."""
    lines = [describe(b) for b in bad[:limit]]
    more = f"\n  ... and {len(bad) - limit} more" if len(bad) > limit else ""
    fix = (
        f"Fix the rows: every row is bad, so {option}=skip cannot help."
        if action is None
        else f"Fix the rows, or set {option}=skip to {action} without them."
    )
    return f"{len(bad)} bad row(s) in {manifest}:\n  " + "\n  ".join(lines) + more + "\n" + fix
