"""Read a JSONL/CSV manifest into validated records, reporting every bad row at once."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from mmexp.core.errors import ConfigError

Row = dict[str, Any]  # one manifest row as read (CSV: all strings; JSONL: any JSON values)


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
    label: str
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


def _read_csv(f: TextIO) -> list[tuple[int, Row]]:
    return [(i + 2, dict(row)) for i, row in enumerate(csv.DictReader(f))]


def _read_jsonl(f: TextIO) -> list[tuple[int, Row]]:
    return [(i + 1, _parse_json_line(line, i + 1)) for i, line in enumerate(f) if line.strip()]


READERS: dict[str, Callable[[TextIO], list[tuple[int, Row]]]] = {
    ".csv": _read_csv,
    ".jsonl": _read_jsonl,
    ".json": _read_jsonl,  # .json: one object per line too
}


def read_rows(manifest: Path) -> list[tuple[int, Row]]:
    """Rows with their 1-based line numbers (CSV: the header is line 1)."""
    if not manifest.is_file():
        raise ConfigError(f"data.manifest: file not found: {manifest} (set data.root / data.manifest)")
    reader = READERS.get(manifest.suffix.lower())
    if reader is None:
        raise ConfigError(f"data.manifest: {manifest} must end in .jsonl or .csv")
    with open(manifest, encoding="utf-8-sig", newline="") as f:
        return reader(f)


def _parse_json_line(line: str, number: int) -> Row:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        return {"__error__": f"invalid JSON ({e.msg})"}
    return row if isinstance(row, dict) else {"__error__": "line is not a JSON object"}


def with_mmf_image_column(columns: Columns, rows: list[tuple[int, Row]]) -> Columns:
    """MMF-style manifests name the image column ``img``; accept them without configuration."""
    first = next((row for _, row in rows if "__error__" not in row), {})
    if columns.image == "image" and "image" not in first and "img" in first:
        return replace(columns, image="img")
    return columns


def parse_records(rows: list[tuple[int, Row]], root: Path, columns: Columns) -> tuple[list[Record], list[BadRow]]:
    """Validate rows cheaply (no image decoding); image content is checked when decoded."""
    columns = with_mmf_image_column(columns, rows)
    records: list[Record] = []
    bad: list[BadRow] = []
    seen_ids: set[str] = set()
    root = root.resolve()
    for line, row in rows:
        reason = _row_problem(row, root, columns, seen_ids)
        if reason:
            bad.append(BadRow(line, reason, row))
            continue
        rid = str(row.get(columns.id) if row.get(columns.id) not in (None, "") else line)
        seen_ids.add(rid)
        records.append(
            Record(
                id=rid,
                image=(root / str(row[columns.image])).resolve(),
                text=row[columns.text],
                label=str(row[columns.label]).strip(),
                line=line,
                group=_optional(row, columns.group),
                split=_optional(row, columns.split),
            )
        )
    return records, bad


def _optional(row: Row, column: str | None) -> str | None:
    value = row.get(column) if column else None
    return None if value in (None, "") else str(value)


def _row_problem(row: Row, root: Path, columns: Columns, seen_ids: set[str]) -> str | None:
    if "__error__" in row:
        return row["__error__"]
    rid = row.get(columns.id)
    if rid not in (None, "") and str(rid) in seen_ids:
        return f"duplicate {columns.id} {rid!r}"
    text = row.get(columns.text)
    if not isinstance(text, str) or not text.strip():
        return f"{columns.text!r} must be a non-empty string (got {text!r})"
    label = row.get(columns.label)
    if label is None or str(label).strip() == "":
        return f"missing {columns.label!r}"
    image = row.get(columns.image)
    if not isinstance(image, str) or not image:
        return f"missing {columns.image!r}"
    path = (root / image).resolve()
    if Path(image).is_absolute() or not path.is_relative_to(root):
        return f"image path {image!r} is outside data.root (paths must be relative to it)"
    if not path.is_file():
        return f"image file not found: {image!r}"
    return None


def format_bad_rows(bad: list[BadRow], manifest: Path, limit: int = 20) -> str:
    lines = [b.describe() for b in bad[:limit]]
    more = f"\n  ... and {len(bad) - limit} more" if len(bad) > limit else ""
    return (
        f"{len(bad)} bad row(s) in {manifest}:\n  "
        + "\n  ".join(lines)
        + more
        + "\nFix the rows, or set data.on_bad_record=skip to train without them."
    )
