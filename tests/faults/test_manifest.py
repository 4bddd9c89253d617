"""Issue 14, classes 1 and 2: the manifest reader checks the structure it reads, and labels are normalized.

Every test goes through the public entry points (``read_rows`` + ``parse_records``, or the datamodule) and
fails on e1fcb3c, where the reader trusted the file's structure and took labels as raw strings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from mmexp.core.errors import ConfigError
from mmexp.data.datamodule import MultimodalDataModule
from mmexp.data.labels import sorted_labels
from mmexp.data.manifest import read_rows
from mmexp.data.records import BadRow, Columns, Record, parse_records
from mmexp.data.splits import stratified_split
from tests.data_factory import clean_rows, write_manifest

REPO = Path(__file__).resolve().parents[2]
HEADER = "id,image,text,label\n"


def read(root: Path, content: str | bytes, fmt: str = "csv") -> tuple[list[Record], list[BadRow]]:
    """Write ``content`` as root/manifest.<fmt> (next to an image a.png) and read it as the datamodule does."""
    (root / "a.png").touch()
    path = root / f"manifest.{fmt}"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return parse_records(read_rows(path), root, Columns())


def jsonl(*rows: dict[str, object]) -> str:
    return "".join(json.dumps({"image": "a.png", "text": "t", **row}) + "\n" for row in rows)


def bad_lines(bad: list[BadRow]) -> dict[int, str]:
    return {b.line: b.reason for b in bad}


# ---- class 1: structure ----


def test_row_with_more_fields_than_the_header_is_bad_not_a_new_class(tmp_path: Path) -> None:
    records, bad = read(tmp_path, HEADER + "r1,a.png,fine,cat\nr2,a.png,red, round and big,dog\nr3,a.png,ok,dog\n")
    assert [r.id for r in records] == ["r1", "r3"] and {r.label for r in records} == {"cat", "dog"}
    assert bad_lines(bad) == {3: "5 fields, header has 4; quote texts that contain commas"}


def test_row_with_fewer_fields_than_the_header_is_bad(tmp_path: Path) -> None:
    records, bad = read(tmp_path, HEADER + "r1,a.png,fine,cat\nr2,a.png,no label\n")
    assert [r.id for r in records] == ["r1"]
    assert bad_lines(bad) == {3: "3 fields, header has 4"}


def test_duplicate_header_name_is_one_error_naming_the_column(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 1: the header names column\(s\) 'label' more than once"):
        read(tmp_path, "id,image,text,label,label\nr1,a.png,t,cat,dog\n")


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab")])
def test_header_read_as_one_column_is_one_error_not_a_message_per_row(
    tmp_path: Path, delimiter: str, name: str
) -> None:
    rows = "".join(f"r{i}{delimiter}a.png{delimiter}text {i}{delimiter}cat\n" for i in range(50))
    with pytest.raises(ConfigError) as err:
        read(tmp_path, HEADER.replace(",", delimiter) + rows)
    message = str(err.value)
    assert "header was read as one column" in message and f"looks {name}" in message
    assert "line 2" not in message  # no per-row spam


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_non_utf8_byte_is_one_error_with_line_offset_and_fix(tmp_path: Path, fmt: str) -> None:
    good = HEADER + "r1,a.png,fine,cat\n" if fmt == "csv" else jsonl({"id": "r1", "label": "cat"})
    content = good.encode() + "r2,a.png,café,dog\n".encode("cp1252")  # é is byte 0xe9 in cp1252
    offset = len(good.encode()) + len("r2,a.png,caf")
    with pytest.raises(ConfigError) as err:
        read(tmp_path, content, fmt)
    message = str(err.value)
    line = 3 if fmt == "csv" else 2
    assert f"manifest.{fmt} is not UTF-8: byte 0xe9 at byte offset {offset} (line {line})" in message
    assert "Re-save the file as UTF-8" in message


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    records, bad = read(tmp_path, b"\xef\xbb\xbf" + (HEADER + "r1,a.png,t,cat\n").encode())
    assert not bad and [r.id for r in records] == ["r1"]


def test_bad_rows_carry_physical_line_numbers_after_quoted_newlines(tmp_path: Path) -> None:
    content = (
        HEADER
        + 'r1,a.png,"a text\nover two lines",cat\n'  # lines 2-3
        + 'r2,a.png,"three\r\nlines\rhere",cat\n'  # lines 4-6 (\r\n and \r are line breaks)
        + "\n"  # line 7: blank
        + "r3,a.png,,cat\n"  # line 8: empty text
        + 'r4,a.png,"again\n\n",None\n'  # lines 9-11: missing-like label
        + "r5,a.png,t,dog\n"  # line 12
    )
    records, bad = read(tmp_path, content)
    assert [(r.id, r.line) for r in records] == [("r1", 2), ("r2", 4), ("r5", 12)]
    assert sorted(bad_lines(bad)) == [8, 9]


def test_filled_id_that_equals_an_explicit_id_is_reported(tmp_path: Path) -> None:
    # line 1 has no id, so it would be id "1", which line 3 names explicitly; explicit ids win
    records, bad = read(tmp_path, jsonl({"label": "a"}, {"id": "x", "label": "a"}, {"id": 1, "label": "b"}), "jsonl")
    assert [(r.id, r.line) for r in records] == [("x", 2), ("1", 3)]
    assert list(bad_lines(bad)) == [1] and "line number 1 (the id it would get) is the id of line 3" in bad[0].reason


def test_filled_id_colliding_with_an_earlier_explicit_id_is_reported(tmp_path: Path) -> None:
    records, bad = read(tmp_path, HEADER + "3,a.png,t,cat\n,a.png,t,dog\n")
    assert [r.id for r in records] == ["3"] and list(bad_lines(bad)) == [3]


def test_quote_never_closed_is_one_error_not_swallowed_rows(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 3: a quoted field opened here is never closed"):
        read(tmp_path, HEADER + 'r1,a.png,t,cat\nr2,a.png,"oops,dog\nr3,a.png,t,cat\nr4,a.png,t,dog\n')


def test_text_after_a_closing_quote_is_a_bad_row_not_glued_text(tmp_path: Path) -> None:
    records, bad = read(tmp_path, HEADER + 'r1,a.png,"he said "hi" twice",cat\nr2,a.png,t,cat\n')
    assert [r.id for r in records] == ["r2"] and list(bad_lines(bad)) == [2]
    assert "must be doubled" in bad[0].reason


def test_json_object_naming_a_key_twice_is_a_bad_row(tmp_path: Path) -> None:
    content = '{"id": "r1", "image": "a.png", "text": "t", "label": "cat", "label": "dog"}\n'
    content += jsonl({"id": "r2", "label": "cat"})
    records, bad = read(tmp_path, content, "jsonl")
    assert [r.id for r in records] == ["r2"]
    assert bad_lines(bad) == {1: "key(s) 'label' appear more than once in the object"}


def test_column_no_row_has_is_one_error(tmp_path: Path) -> None:
    rows = "".join(f"r{i},a.png,text {i},cat\n" for i in range(30))
    with pytest.raises(ConfigError, match=r"no row has a 'label' column .*set data.label_col"):
        read(tmp_path, "id,image,text,labels\n" + rows)


def test_hostile_values_are_bad_rows_not_crashes(tmp_path: Path) -> None:
    lines = [
        '{"id": "big", "image": "a.png", "text": "t", "label": ' + "9" * 5000 + "}",  # int too long to convert
        "[" * 100_000,  # nesting deeper than the recursion limit
        json.dumps({"id": "nul", "image": "a\u0000.png", "text": "t", "label": "cat"}),
        json.dumps({"id": "long", "image": "x" * 5000 + ".png", "text": "t", "label": "cat"}),
        json.dumps({"id": "inf", "image": "a.png", "text": "t", "label": float("inf")}),
        json.dumps({"id": "obj", "image": "a.png", "text": "t", "label": {"a": 1}}),
        json.dumps({"id": "ok", "image": "a.png", "text": "t", "label": "cat"}),
    ]
    records, bad = read(tmp_path, "\n".join(lines) + "\n", "jsonl")
    assert [r.id for r in records] == ["ok"] and sorted(bad_lines(bad)) == [1, 2, 3, 4, 5, 6]


# ---- class 2: labels ----

MISSING_LIKE = ["NaN", "nan", "None", "null", "NULL", "N/A", "<NA>", " "]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_missing_like_labels_are_bad_rows_not_classes(tmp_path: Path, fmt: str) -> None:
    values: list[object] = [*MISSING_LIKE, "cat"]
    if fmt == "jsonl":
        values += [None, float("nan")]
        content = jsonl(*({"id": f"r{i}", "label": v} for i, v in enumerate(values)))
    else:
        content = HEADER + "".join(f"r{i},a.png,t,{v}\n" for i, v in enumerate(values))
    records, bad = read(tmp_path, content, fmt)
    assert [r.label for r in records] == ["cat"]
    first = 2 if fmt == "csv" else 1
    assert len(bad) == len(values) - 1 and all(b.reason.startswith("missing 'label'") for b in bad)
    assert [b.line for b in bad] == [first + i for i, v in enumerate(values) if v != "cat"]


def test_numeric_spellings_of_one_value_are_one_class(tmp_path: Path) -> None:
    spellings: list[object] = [1, 1.0, "1", "1.00", " 1 ", 2, "2.0", 2.0, "+2", 10, "10", 1e1]
    rows = [{**row, "label": spellings[i % len(spellings)]} for i, row in enumerate(clean_rows(tmp_path, n=48))]
    write_manifest(tmp_path, rows)
    dm = MultimodalDataModule(
        split=partial(stratified_split, train=0.5, val=0.25, test=0.25, seed=0),
        root=str(tmp_path),
        manifest="manifest.jsonl",
        image_size=16,
        cache_dir=str(tmp_path / ".cache"),
    )
    dm.setup()
    assert dm.label_names == ["1", "2", "10"]


def test_label_order_is_total_and_the_same_under_every_hash_seed() -> None:
    assert sorted_labels(["10", "2", "1.5", "-3", "2"]) == ["-3", "1.5", "2", "10"]
    assert sorted_labels(["10", "nan", "2", "1"]) == ["1", "10", "2", "nan"]  # not all numbers: by string
    code = (
        "import json, sys; from mmexp.data.labels import sorted_labels; print(json.dumps(sorted_labels(sys.argv[1:])))"
    )
    labels = ["10", "nan", "2", "1", "NaN", "b", "a", "1.0", "1e0"]
    seen = {
        subprocess.run(
            [sys.executable, "-c", code, *labels],
            env={**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(4)
    }
    assert seen == {json.dumps(sorted(set(labels))) + "\n"}
