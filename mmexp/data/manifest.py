"""Read a JSONL/CSV manifest file into raw rows, each with the physical line on which it starts.

Nothing about the file's structure is assumed. Problems with the whole file (not UTF-8, a CSV header read as
one column or naming a column twice, a quote that is never closed) raise one ``ConfigError``; a row whose
structure is broken (wrong number of fields, invalid JSON) comes back marked with ``ERROR`` and its reason, so
``mmexp.data.records`` reports it as a bad row. Line numbers are physical file lines, 1-based: a CSV text
holding a quoted newline spans several lines. A line ends at ``\\n``, ``\\r\\n`` or ``\\r``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmexp.core.errors import ConfigError

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

Row = dict[str, Any]  # one manifest row as read (CSV: all strings; JSONL: any JSON values)
ERROR = "__error__"  # key of a row whose structure is broken: its value is the reason
RAW = "__raw__"  # the raw fields (CSV) or text (JSONL) of such a row, kept for skipped.jsonl
DELIMITER_NAMES = {";": "semicolon (;)", "\t": "tab", "|": "pipe (|)"}


class RowProblem(Exception):
    """Why one row cannot be used; it becomes a ``BadRow`` and the other rows are still read."""


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
    lines = io.StringIO(decode_manifest(raw, manifest), newline="")  # splits at \n, \r\n and \r only
    return list(reader(lines, manifest))


def iter_rows(manifest: Path) -> Iterator[tuple[int, Row]]:
    """``read_rows`` one row at a time, never holding the file (``mmexp.predict`` scores files of any size)."""
    reader = READERS.get(manifest.suffix.lower())
    if not manifest.is_file() or reader is None:
        yield from read_rows(manifest)  # raises its one-line error
        return
    try:
        with open(manifest, encoding="utf-8-sig", newline="") as lines:
            yield from reader(lines, manifest)
    except UnicodeDecodeError:
        decode_manifest(manifest.read_bytes(), manifest)  # names the first bad byte and its line
        raise
    except OSError as e:
        raise ConfigError(f"data.manifest: cannot read {manifest} ({e.strerror or e})") from None


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


def _read_jsonl(lines: Iterable[str], manifest: Path) -> Iterator[tuple[int, Row]]:
    return ((number, _parse_json_line(line)) for number, line in enumerate(lines, start=1) if line.strip())


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


def _read_csv(lines: Iterable[str], manifest: Path) -> Iterator[tuple[int, Row]]:
    records = _csv_records(csv.reader(lines, strict=True), manifest)
    first = next(records, None)
    if first is None:
        return
    names = _header_names(first, manifest)
    yield from ((line, _csv_row(fields, names)) for line, fields in records)


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


# A reader turns the manifest's lines (split at \n, \r\n and \r, line endings kept) into (line, row) pairs.
READERS: dict[str, Callable[[Iterable[str], Path], Iterator[tuple[int, Row]]]] = {
    ".csv": _read_csv,
    ".jsonl": _read_jsonl,
    ".json": _read_jsonl,  # .json: one object per line too
}
