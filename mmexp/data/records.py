"""Read a JSONL/CSV manifest into validated records, reporting every bad row at once.

Nothing about the file's structure is assumed. Problems with the whole file (not UTF-8, a CSV header
read as one column or naming a column twice, a quote that is never closed, a required column that no
row has) raise one ``ConfigError``; problems with a row (wrong number of fields, invalid JSON, a
missing-like label, a duplicate id, ...) become ``BadRow`` entries. Line numbers are physical file
lines, 1-based, where the row starts: a CSV text holding a quoted newline spans several lines. A line
ends at ``\\n``, ``\\r\\n`` or ``\\r``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmexp.core.errors import ConfigError
from mmexp.data.labels import InvalidLabel, normalize_label

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

Row = dict[str, Any]  # one manifest row as read (CSV: all strings; JSONL: any JSON values)
ERROR = "__error__"  # key of a row whose structure is broken: its value is the reason
RAW = "__raw__"  # the raw fields (CSV) or text (JSONL) of such a row, kept for skipped.jsonl
DELIMITER_NAMES = {";": "semicolon (;)", "\t": "tab", "|": "pipe (|)"}


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


class RowProblem(Exception):
    """Why one row cannot be used; it becomes a ``BadRow`` and the other rows are still read."""


# ---- reading: bytes -> text -> rows with physical line numbers ----


def read_rows(manifest: Path) -> list[tuple[int, Row]]:
    """Rows with the physical line on which each starts (CSV: the header is line 1)."""
    if not manifest.is_file():
        raise ConfigError(f"data.manifest: file not found: {manifest} (set data.root / data.manifest)")
    reader = READERS.get(manifest.suffix.lower())
    if reader is None:
        raise ConfigError(f"data.manifest: {manifest} must end in .jsonl or .csv")
    try:
        raw = manifest.read_bytes()
    except OSError as e:
        raise ConfigError(f"data.manifest: cannot read {manifest} ({e.strerror or e})") from None
    return reader(decode_manifest(raw, manifest), manifest)


def decode_manifest(raw: bytes, manifest: Path) -> str:
    """UTF-8 (a leading BOM is dropped); any other encoding is one error naming the first bad byte."""
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = bom + e.start
        raise ConfigError(
            f"data.manifest: {manifest} is not UTF-8: byte 0x{raw[offset]:02x} at byte offset {offset} "
            f"(line {line_of_offset(raw, offset)}) is not valid UTF-8. Re-save the file as UTF-8 "
            "(spreadsheets: 'CSV UTF-8'; pandas: to_csv(..., encoding='utf-8'))"
        ) from None


def line_of_offset(raw: bytes, offset: int) -> int:
    """The 1-based line holding byte ``offset``, counting \\n, \\r\\n and \\r as one line break each."""
    head = raw[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


def _read_jsonl(text: str, manifest: Path) -> list[tuple[int, Row]]:
    lines = io.StringIO(text, newline="")  # splits at \n, \r\n and \r only, as the CSV reader does
    return [(number, _parse_json_line(line)) for number, line in enumerate(lines, start=1) if line.strip()]


def _parse_json_line(line: str) -> Row:
    try:
        row = _load_json(line)
    except RowProblem as e:
        return {ERROR: str(e), RAW: line.rstrip("\r\n")}
    if not isinstance(row, dict):
        return {ERROR: "line is not a JSON object", RAW: line.rstrip("\r\n")}
    return row


def _load_json(line: str) -> object:
    """The line's JSON value; every way ``json.loads`` can fail on hostile text is a ``RowProblem``."""
    try:
        return json.loads(line, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise RowProblem(f"invalid JSON ({e.msg})") from None
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise RowProblem("invalid JSON (a number with too many digits)") from None
    except RecursionError:
        raise RowProblem("invalid JSON (nested too deeply)") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object naming a key twice would let the last value win silently."""
    twice = repeated(key for key, _ in pairs)
    if twice:
        raise RowProblem(f"key(s) {', '.join(map(repr, twice))} appear more than once in the object")
    return dict(pairs)


def repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, sorted (linear: a hostile row may hold thousands of keys)."""
    return sorted(name for name, count in Counter(names).items() if count > 1)


def _read_csv(text: str, manifest: Path) -> list[tuple[int, Row]]:
    records = _csv_records(csv.reader(io.StringIO(text, newline=""), strict=True), manifest)
    first = next(records, None)
    if first is None:
        return []
    names = _header_names(first, manifest)
    return [(line, _csv_row(fields, names)) for line, fields in records]


def _csv_records(reader: CsvReader, manifest: Path) -> Iterator[tuple[int, list[str] | str]]:
    """Non-blank CSV records with the physical line each starts on (``line_num`` is where it ends).

    A record the parser rejects comes as a reason string instead of its fields.
    """
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if "end of data" in str(e):
                raise ConfigError(
                    f"data.manifest: {manifest} line {start}: a quoted field opened here is never closed, so the "
                    'rest of the file was read into it; close the quote (a quote inside a text is written "")'
                ) from None
            yield start, f'malformed CSV ({e}); a quote inside a quoted text must be doubled ("")'
            continue
        if fields:
            yield start, fields


def _header_names(first: tuple[int, list[str] | str], manifest: Path) -> list[str]:
    """Column names, refusing a header that cannot be what the file means."""
    line, fields = first
    if isinstance(fields, str):
        raise ConfigError(f"data.manifest: {manifest} line {line}: the header is not valid CSV: {fields}")
    names = [name.strip() for name in fields]
    if len(names) == 1:
        raise ConfigError(_one_column_message(names[0], line, manifest))
    twice = repeated(name for name in names if name)
    if twice:
        raise ConfigError(
            f"data.manifest: {manifest} line {line}: the header names column(s) {', '.join(map(repr, twice))} "
            "more than once, so one copy would silently win; rename or drop the copies"
        )
    return names


def _one_column_message(header: str, line: int, manifest: Path) -> str:
    found = [name for delimiter, name in DELIMITER_NAMES.items() if delimiter in header]
    looks = f"; it looks {found[0]}-delimited" if found else ""
    shown = header if len(header) <= 80 else header[:77] + "..."
    return (
        f"data.manifest: {manifest} line {line}: the header was read as one column ({shown!r}){looks}. "
        "mmexp reads comma-separated CSV: save the file with ',' as the delimiter"
    )


def _csv_row(fields: list[str] | str, names: list[str]) -> Row:
    """A row keyed by column name (columns with an empty name are dropped), or a broken-row reason."""
    if isinstance(fields, str):
        return {ERROR: fields}
    if len(fields) != len(names):
        hint = "; quote texts that contain commas" if len(fields) > len(names) else ""
        return {ERROR: f"{len(fields)} fields, header has {len(names)}{hint}", RAW: fields}
    return {name: value for name, value in zip(names, fields, strict=True) if name}


READERS: dict[str, Callable[[str, Path], list[tuple[int, Row]]]] = {
    ".csv": _read_csv,
    ".jsonl": _read_jsonl,
    ".json": _read_jsonl,  # .json: one object per line too
}


# ---- validation: rows -> records + bad rows ----


def with_mmf_image_column(columns: Columns, rows: list[tuple[int, Row]]) -> Columns:
    """MMF-style manifests name the image column ``img``; accept them without configuration."""
    first = next((row for _, row in rows if ERROR not in row), {})
    if columns.image == "image" and "image" not in first and "img" in first:
        return replace(columns, image="img")
    return columns


def parse_records(rows: list[tuple[int, Row]], root: Path, columns: Columns) -> tuple[list[Record], list[BadRow]]:
    """Validate rows cheaply (no image decoding); image content is checked when decoded."""
    columns = with_mmf_image_column(columns, rows)
    check_required_columns(rows, columns)
    root = root.resolve()
    first_line_of = explicit_ids(rows, columns)
    records: list[Record] = []
    bad: list[BadRow] = []
    for line, row in rows:
        try:
            records.append(_record(line, row, root, columns, first_line_of))
        except RowProblem as problem:
            bad.append(BadRow(line, str(problem), row))
    return records, bad


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


def explicit_ids(rows: list[tuple[int, Row]], columns: Columns) -> dict[str, int]:
    """Each id written in the manifest, with the first line that uses it."""
    first: dict[str, int] = {}
    for line, row in rows:
        if ERROR in row:
            continue
        try:
            rid = _id_of(row.get(columns.id), columns.id)
        except RowProblem:
            continue
        if rid is not None:
            first.setdefault(rid, line)
    return first


def _record(line: int, row: Row, root: Path, columns: Columns, first_line_of: dict[str, int]) -> Record:
    """The record of one row, or ``RowProblem`` with the first reason it cannot be used."""
    if ERROR in row:
        raise RowProblem(row[ERROR])
    rid = _row_id(line, row, columns, first_line_of)
    text = row.get(columns.text)
    if not isinstance(text, str) or not text.strip():
        raise RowProblem(f"{columns.text!r} must be a non-empty string (got {text!r})")
    label = _category(row.get(columns.label), columns.label)
    if label is None:
        got = row.get(columns.label)
        raise RowProblem(f"missing {columns.label!r}" + ("" if got in (None, "") else f" (got {got!r})"))
    return Record(
        id=rid,
        image=_image_path(row.get(columns.image), root, columns.image),
        text=text,
        label=label,
        line=line,
        group=_category(row.get(columns.group), columns.group) if columns.group else None,
        split=_optional(row, columns.split),
    )


def _row_id(line: int, row: Row, columns: Columns, first_line_of: dict[str, int]) -> str:
    """The row's own id, or its line number when it has none; either must be unique in the file."""
    rid = _id_of(row.get(columns.id), columns.id)
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


def _id_of(value: object, name: str) -> str | None:
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


def _image_path(image: object, root: Path, name: str) -> Path:
    """The image file under ``root``; a path that is absolute, escapes root or does not exist is refused."""
    if not isinstance(image, str) or not image:
        raise RowProblem(f"missing {name!r}")
    try:
        path = (root / image).resolve()
        if Path(image).is_absolute() or not path.is_relative_to(root):
            raise RowProblem(f"image path {image!r} is outside data.root (paths must be relative to it)")
        found, directory = path.is_file(), path.is_dir()
    except (OSError, ValueError) as e:  # a NUL byte, a name too long for the file system
        raise RowProblem(f"image path {image[:80]!r} cannot be used ({e})") from None
    if directory:
        raise RowProblem(f"image path {image!r} is a directory, not an image file")
    if not found:
        raise RowProblem(f"image file not found: {image!r}")
    return path


def _optional(row: Row, column: str | None) -> str | None:
    value = row.get(column) if column else None
    return None if value in (None, "") else str(value)


def format_bad_rows(bad: list[BadRow], manifest: Path, limit: int = 20) -> str:
    lines = [b.describe() for b in bad[:limit]]
    more = f"\n  ... and {len(bad) - limit} more" if len(bad) > limit else ""
    return (
        f"{len(bad)} bad row(s) in {manifest}:\n  "
        + "\n  ".join(lines)
        + more
        + "\nFix the rows, or set data.on_bad_record=skip to train without them."
    )
