"""Property-based fuzzing of the manifest reader (issue 14, classes 1 and 2).

The promise: ``read_rows`` + ``parse_records`` return exactly the valid rows and report every invalid one
as a ``BadRow`` at the PHYSICAL line where it starts, and raise nothing but ``ConfigError`` (a whole-file
problem), whatever the structure, quoting, line endings, encoding and label values of the file.
The oracle below is written from the documented rules, not from the reader's code.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmexp.core.errors import ConfigError
from mmexp.data.labels import InvalidLabel, sorted_labels
from mmexp.data.manifest import read_rows
from mmexp.data.records import Columns, parse_records
from mmexp.data.task import TASKS, Task

FIELDS = ["id", "image", "text", "label"]
BREAK = re.compile(r"\r\n|\r|\n")  # the documented line breaks
# The fast suite replays the same 200 examples per property (derandomize: CI never fails by luck); explore
# further with e.g. MMEXP_FUZZ_EXAMPLES=5000 (new random examples each run).
EXPLORE = int(os.environ.get("MMEXP_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXPLORE or 200,
    derandomize=not EXPLORE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# (JSON value, the class it must become or None for "missing"); CSV writes the value as text
LABELS: list[tuple[object, str | None]] = [
    ("cat", "cat"),
    (" cat\t", "cat"),
    ("Cat", "Cat"),
    ("a,b", "a,b"),
    ('say "hi"', 'say "hi"'),
    ("ñandú 🐦", "ñandú 🐦"),
    ("1", "1"),
    ("1.0", "1"),
    ("+1.00", "1"),
    ("2.50", "2.5"),
    ("1e1", "10"),
    ("-0", "0"),
    ("inf", "inf"),
    ("", None),
    ("  ", None),
    ("NaN", None),
    ("nan", None),
    ("None", None),
    ("null", None),
    ("N/A", None),
    ("<NA>", None),
]
JSON_ONLY_LABELS: list[tuple[object, str | None]] = [
    (1, "1"),
    (1.0, "1"),
    (2.5, "2.5"),
    (10, "10"),
    (True, "true"),
    (None, None),
    (float("nan"), None),
]
TEXT_CHARS = st.sampled_from([*"ab ,;\"'\t\n\r", "\r\n", "\u2028", "\x85", "é", "中", "🙂"])
IDS = st.sampled_from(["a", "b", "1", "2", "3", "4", "5", "x y", None, ""])


@dataclass(frozen=True)
class Spec:
    """One intended row: its values and, if any, the structural defect to write it with."""

    id: object
    text: str
    label: tuple[object, str | None]
    image: str
    broken: str | None  # None | "extra" | "fewer" (CSV) | "json" (JSONL)


def specs(fmt: str) -> st.SearchStrategy[list[Spec]]:
    labels = st.sampled_from(LABELS + (JSON_ONLY_LABELS if fmt == "jsonl" else []))
    random_labels = st.text(st.sampled_from("xyz_"), min_size=1, max_size=4).map(lambda s: ("L" + s, "L" + s))
    broken = st.sampled_from(["extra", "fewer"] if fmt == "csv" else ["json", "dupkey", "array"])
    ids = IDS if fmt == "csv" else st.one_of(IDS, st.sampled_from([1, 2, 3]))
    spec = st.builds(
        Spec,
        id=ids,
        text=st.one_of(st.lists(TEXT_CHARS, max_size=8).map("".join), st.just("plain text")),
        label=st.one_of(labels, random_labels),
        image=st.sampled_from(["img/0.png", "img/0.png", "img/1.png", "img/missing.png"]),
        broken=st.one_of(st.none(), st.none(), st.none(), broken),
    )
    return st.lists(spec, min_size=1, max_size=8)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with two image files (the reader checks existence only, never content)."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "img").mkdir()
    for name in ("0.png", "1.png"):
        (root / "img" / name).write_bytes(b"")
    return root


# ---- writing a manifest, remembering where each row starts ----


def line_after(text: str) -> int:
    """The physical line on which the next character of a file starting with ``text`` lies."""
    return len(BREAK.findall(text)) + 1


def csv_line(fields: list[str], quoting: int, end: str) -> str:
    """One CSV record ending in ``end``; written with a \\r\\n terminator first, so that any field holding
    \\r or \\n is quoted (the csv writer quotes only the characters of its own terminator)."""
    out = io.StringIO()
    csv.writer(out, quoting=quoting, lineterminator="\r\n").writerow(fields)
    return out.getvalue().removesuffix("\r\n") + end


def write_csv(rows: list[Spec], order: list[str], quoting: int, end: str, blanks: list[bool]) -> tuple[str, list[int]]:
    text, starts = csv_line(order, quoting, end), []
    for spec, blank in zip(rows, blanks, strict=True):
        if blank:
            text += end
        starts.append(line_after(text))
        values = {"id": "" if spec.id is None else str(spec.id), "image": spec.image, "text": spec.text}
        values["label"] = "" if spec.label[0] is None else str(spec.label[0])
        fields = [values[name] for name in order]
        if spec.broken == "extra":
            fields.append("more")
        elif spec.broken == "fewer":
            fields.pop()
        text += csv_line(fields, quoting, end)
    return text, starts


def write_jsonl(
    rows: list[Spec], order: list[str], ascii_only: bool, end: str, blanks: list[bool]
) -> tuple[str, list[int]]:
    text, starts = "", []
    for spec, blank in zip(rows, blanks, strict=True):
        if blank:
            text += end
        starts.append(line_after(text))
        values = {"id": spec.id, "image": spec.image, "text": spec.text, "label": spec.label[0]}
        line = json.dumps({name: values[name] for name in order}, ensure_ascii=ascii_only)
        if spec.broken == "json":
            line = line[: len(line) // 2]
        elif spec.broken == "dupkey":
            line = line[:-1] + ', "label": "other"}'
        elif spec.broken == "array":
            line = json.dumps(list(values.values()))
        text += line + end
    return text, starts


# ---- the oracle ----


def expected(rows: list[Spec], starts: list[int]) -> tuple[list[tuple[str, str, str, int]], list[int]]:
    """(id, text, label, line) of every valid row and the lines of the invalid ones, from the rules."""
    ids = [None if s.id in (None, "") else str(s.id) for s in rows]
    first: dict[str, int] = {}
    for spec, rid, line in zip(rows, ids, starts, strict=True):
        if spec.broken is None and rid is not None:
            first.setdefault(rid, line)
    good, bad = [], []
    for spec, rid, line in zip(rows, ids, starts, strict=True):
        own = rid if rid is not None else str(line)
        valid = (
            spec.broken is None
            and first.get(own, line) == line
            and spec.text.strip() != ""
            and spec.label[1] is not None
            and spec.image != "img/missing.png"
        )
        if valid:
            good.append((own, spec.text, str(spec.label[1]), line))
        else:
            bad.append(line)
    return good, bad


def read(root: Path, name: str, raw: bytes) -> tuple[list[tuple[str, str, str, int]], list[int]]:
    path = root / name
    path.write_bytes(raw)
    records, bad = parse_records(read_rows(path), root, Columns())
    return [(r.id, r.text, r.label, r.line) for r in records], [b.line for b in bad]


LAYOUT = {
    "order": st.permutations(FIELDS),
    "end": st.sampled_from(["\n", "\r\n", "\r"]),
    "blanks": st.lists(st.booleans(), min_size=8, max_size=8),
    "bom": st.booleans(),
}


@FUZZ
@given(rows=specs("csv"), quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]), **LAYOUT)
def test_csv_rows_are_read_exactly_with_physical_lines(
    root: Path, rows: list[Spec], order: list[str], quoting: int, end: str, blanks: list[bool], bom: bool
) -> None:
    text, starts = write_csv(rows, list(order), quoting, end, blanks[: len(rows)])
    raw = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    assert read(root, "manifest.csv", raw) == expected(rows, starts)


@FUZZ
@given(rows=specs("jsonl"), ascii_only=st.booleans(), **LAYOUT)
def test_jsonl_rows_are_read_exactly_with_physical_lines(
    root: Path, rows: list[Spec], order: list[str], ascii_only: bool, end: str, blanks: list[bool], bom: bool
) -> None:
    text, starts = write_jsonl(rows, list(order), ascii_only, end, blanks[: len(rows)])
    raw = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    assert read(root, "manifest.jsonl", raw) == expected(rows, starts)


def first_invalid_utf8(raw: bytes) -> int | None:
    try:
        raw.decode("utf-8")  # a UTF-8 BOM is a valid character here, so the offset counts it
    except UnicodeDecodeError as e:
        return e.start
    return None


@FUZZ
@given(
    rows=specs("csv"),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"]),
    end=st.sampled_from(["\n", "\r\n"]),
)
def test_any_encoding_is_read_as_utf8_or_refused_once_with_its_line(
    root: Path, rows: list[Spec], encoding: str, end: str
) -> None:
    text, starts = write_csv(rows, FIELDS, csv.QUOTE_MINIMAL, end, [False] * len(rows))
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:
        raw = text.encode(encoding, errors="replace")  # the file is still in that encoding, with ? for the rest
    bad_byte = first_invalid_utf8(raw)
    if bad_byte is None:
        body = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        result = read(root, "manifest.csv", raw)  # must not raise
        if body == text:
            assert result == expected(rows, starts)
        return
    with pytest.raises(ConfigError) as err:
        read(root, "manifest.csv", raw)
    line = len(BREAK.findall(raw[:bad_byte].decode("utf-8"))) + 1
    assert f"byte offset {bad_byte} (line {line})" in str(err.value)


MUTATIONS = st.lists(
    st.tuples(st.integers(0, 10_000), st.sampled_from(['"', ",", "\n", "\r", ";", "{", "}", "\\", "", "\x00"])),
    min_size=1,
    max_size=6,
)


@FUZZ
@given(rows=specs("csv"), fmt=st.sampled_from(["csv", "jsonl"]), mutations=MUTATIONS)
def test_mangled_files_raise_only_config_error_and_report_lines_in_the_file(
    root: Path, rows: list[Spec], fmt: str, mutations: list[tuple[int, str]]
) -> None:
    if fmt == "csv":
        text, _ = write_csv(rows, FIELDS, csv.QUOTE_MINIMAL, "\n", [False] * len(rows))
    else:
        text, _ = write_jsonl(rows, FIELDS, False, "\n", [False] * len(rows))
    for position, insert in mutations:  # insert a character, or ("") delete one
        at = position % (len(text) + 1)
        text = text[:at] + insert + text[at + (insert == "") :]
    try:
        good, bad = read(root, f"manifest.{fmt}", text.encode("utf-8"))
    except ConfigError:
        return
    lines = [line for *_, line in good] + bad
    assert len(set(lines)) == len(lines)  # one verdict per row
    assert all(1 <= line <= line_after(text) for line in lines)


TOKENS = ["id", "image", "text", "label", "img/0.png", "null", "NaN", "\x00", "\ufeff"]
SYNTAX = st.sampled_from([*'{}[]",:;\n\r\t \\.-+eE0123456789', *TOKENS])
ARBITRARY = st.one_of(
    st.binary(max_size=200),
    st.tuples(st.sampled_from(["", ",".join(FIELDS) + "\n"]), st.lists(SYNTAX, max_size=60).map("".join)).map(
        lambda parts: "".join(parts).encode("utf-8")
    ),
)


@FUZZ
@given(raw=ARBITRARY, fmt=st.sampled_from(["csv", "jsonl"]), task=st.sampled_from(TASKS))
def test_arbitrary_content_raises_only_config_error(root: Path, raw: bytes, fmt: str, task: str) -> None:
    path = root / f"manifest.{fmt}"
    path.write_bytes(raw)
    with contextlib.suppress(ConfigError):
        parse_records(read_rows(path), root, Columns(), Task(name=task))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)
LIST_LIKE = st.text(alphabet="[]|'\", a1e.\t{}()-", max_size=24)  # cells that look like written lists, or not


@FUZZ
@given(value=JSON_VALUES | LIST_LIKE, name=st.sampled_from(TASKS))
def test_any_label_value_is_a_label_missing_or_one_invalid_label_error(value: object, name: str) -> None:
    """Whatever a manifest holds in the label column, a task reads a label, "missing", or one ``InvalidLabel``
    (a bad row): never another exception, never a class named with the separator or an empty name."""
    task = Task(name=name)
    try:
        label = task.parse_label(value)
    except InvalidLabel:
        return
    if label is None:
        return
    if name != "multilabel":
        assert isinstance(label, str) and label
        return
    assert isinstance(label, tuple) and len(set(label)) == len(label)
    assert all(isinstance(n, str) and n and task.label_sep not in n for n in label)
    assert list(label) == sorted_labels(label)


# ---- label cells under every task: separators and list look-alikes (issue 25, class 5) ----

NAMES = ["a", "b", "Drama", "none", "NA", "x y", "[deleted]", "Kitchen, Dining", "k;l", "p|q"]
SEPARATORS = (";", ",", "|")


@dataclass(frozen=True)
class Cell:
    """One row's intended classes and how the label cell is written."""

    names: tuple[str, ...]
    writer: str  # sep (task.label_sep) | other (another separator) | json | pandas | bare ([a, b]) | list (JSONL)
    other: str


def write_cell(cell: Cell, sep: str, fmt: str) -> object:
    names = list(cell.names)
    if cell.writer == "list" and fmt == "jsonl":
        return names
    if cell.writer in ("json", "list"):  # a list in a CSV cell is JSON text
        return json.dumps(names)
    if cell.writer == "pandas":
        return repr(names)
    if cell.writer == "bare":
        return "[" + ", ".join(names) + "]"
    return (cell.other if cell.writer == "other" else sep).join(names)


def effective(cell: Cell, sep: str, fmt: str) -> str:
    """The writer as read: another separator equal to task.label_sep is that one; a list in CSV is JSON text."""
    if cell.writer == "other" and cell.other == sep:
        return "sep"
    return "json" if cell.writer == "list" and fmt == "csv" else cell.writer


CELLS = st.builds(
    Cell,
    names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True).map(tuple),
    writer=st.sampled_from(["sep", "sep", "other", "json", "pandas", "bare", "list"]),
    other=st.sampled_from(SEPARATORS),
)


def expected_label(cell: Cell, how: str, task: Task) -> object:
    """What a cell written with a documented syntax reads as: a label, "bad", or None when the rules leave it open
    (names holding a separator, a bare bracket list)."""
    plain = not any(mark in name for name in cell.names for mark in SEPARATORS)
    if task.multilabel:
        if how not in ("sep", "json", "pandas", "list") or not plain:
            return None
        if how == "sep" and len(cell.names) == 1 and cell.names[0].lower() in ("none", "na"):
            return "bad"  # a whole cell "none" is a missing label; inside a set it is a class
        return tuple(sorted_labels(cell.names))
    if how in ("json", "pandas", "list"):
        return "bad"  # a list is no single class
    if how == "sep" and len(cell.names) == 1 and plain:
        return "bad" if cell.names[0].lower() in ("none", "na") else cell.names[0]
    return None


@FUZZ
@given(
    cells=st.lists(CELLS, min_size=1, max_size=8),
    name=st.sampled_from(TASKS),
    sep=st.sampled_from(["|", ";"]),
    fmt=st.sampled_from(["csv", "jsonl"]),
)
def test_label_cells_are_read_as_meant_or_refused_naming_a_row(
    root: Path, cells: list[Cell], name: str, sep: str, fmt: str
) -> None:
    """Under every task and separator, label cells written as sets, lists or look-alikes are either refused as a
    whole (multilabel only: one ``ConfigError`` naming a row's line, the separator fix and the way out), or read
    so that: documented spellings give the meant label; a written list is never a single class; no list
    look-alike survives as a class name; every label round-trips through ``Task.format``; and no multi-label class
    read from a plain cell is another class joined to something by a separator other than ``task.label_sep``."""
    task = Task(name=name, label_sep=sep)
    rows = [
        {"id": f"r{i}", "image": "img/0.png", "text": "t", "label": write_cell(c, sep, fmt)}
        for i, c in enumerate(cells)
    ]
    first = 2 if fmt == "csv" else 1
    path = root / f"labels.{fmt}"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        path.write_text(out.getvalue(), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    lines = [first + i for i in range(len(cells))]  # no cell holds a line break
    try:
        records, bad = parse_records(read_rows(path), root, Columns(), task)
    except ConfigError as e:
        message = str(e)
        assert name == "multilabel", message
        meant = [expected_label(c, effective(c, sep, fmt), task) for c in cells]
        assert None in meant, message  # a file written only in documented spellings is never refused
        found = re.search(r"on line (\d+)", message)
        assert found and int(found.group(1)) in lines, message
        assert "task.label_sep" in message and "task.label_lookalikes=allow" in message
        return
    got: dict[int, object] = {r.line: r.label for r in records} | {b.line: "bad" for b in bad}
    assert sorted(got) == lines
    for cell, line in zip(cells, lines, strict=True):
        meant = expected_label(cell, effective(cell, sep, fmt), task)
        if meant is not None:
            assert got[line] == meant, (cell, got[line])
    classes = {n for r in records for n in ((r.label,) if isinstance(r.label, str) else r.label)}
    for record in records:
        assert task.parse_label(task.format(record.label)) == record.label
    for n in classes:
        bracket = n.startswith("[") and n.endswith("]")
        assert not (bracket and any(mark in n for mark in (*SEPARATORS, '"', "'"))), n
    if task.multilabel:
        plain = {r.line for r in records if isinstance(rows[r.line - first]["label"], str)} - {
            line for line, c in zip(lines, cells, strict=True) if effective(c, sep, fmt) in ("json", "pandas")
        }
        for record in records:
            for n in record.label if record.line in plain else ():
                for other in SEPARATORS:
                    pieces = [p.strip() for p in n.split(other)] if other != sep else []
                    assert not (len(pieces) > 1 and any(p in classes for p in pieces)), (n, classes)
