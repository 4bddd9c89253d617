"""Issue 25, class 5: label cells written for another reader are refused with the fix, never read silently.

(``a;b`` under ``task.label_sep='|'``, ``[a, b]``, a list in a single-label task), ``"none"`` inside a set is a
class, and the binary positive-class guess reads one-word negations and is said as a warning.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from mmexp.core.errors import ConfigError
from mmexp.data.manifest import read_rows
from mmexp.data.records import Columns, parse_records
from mmexp.data.task import Task


def manifest(root: Path, labels: list[object], fmt: str = "csv") -> Path:
    """A manifest of one row per label (lines 2.. in CSV, 1.. in JSONL), all sharing one existing image."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "img" / "0.png").write_bytes(b"")
    rows = [{"id": f"r{i}", "image": "img/0.png", "text": "some text", "label": v} for i, v in enumerate(labels)]
    path = root / f"manifest.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "image", "text", "label"])
            writer.writeheader()
            writer.writerows(rows)
    return path


def read(path: Path, task: Task) -> tuple[dict[int, object], dict[int, str]]:
    records, bad = parse_records(read_rows(path), path.parent, Columns(), task)
    return {r.line: r.label for r in records}, {b.line: b.reason for b in bad}


def test_multilabel_cells_joined_by_another_separator_stop_with_the_fix(tmp_path: Path) -> None:
    path = manifest(tmp_path, ["drama", "drama;comedy", "action;drama", "comedy"])
    with pytest.raises(ConfigError) as e:
        read(path, Task(name="multilabel"))
    assert str(e.value) == (
        "data.manifest: multi-label labels look ';'-separated (label 'drama;comedy' on line 3, and 1 more row(s)), "
        "but task.label_sep is '|': set \"task.label_sep=';'\" (if ';' is part of the class names, set "
        "task.label_lookalikes=allow)"
    )
    labels, bad = read(path, Task(name="multilabel", label_sep=";"))  # the fix, as the message writes it
    assert not bad and labels == {2: ("drama",), 3: ("comedy", "drama"), 4: ("action", "drama"), 5: ("comedy",)}
    allowed, _ = read(path, Task(name="multilabel", label_lookalikes="allow"))  # the way out: names as written
    assert allowed[3] == ("drama;comedy",)
    lone = manifest(tmp_path / "lone", ["drama;comedy", "horror"])  # no piece recurs, but no row holds two classes
    with pytest.raises(ConfigError, match=r"look ';'-separated \(label 'drama;comedy' on line 2\)"):
        read(lone, Task(name="multilabel"))


def test_sets_written_with_two_separators_name_both(tmp_path: Path) -> None:
    path = manifest(tmp_path, ["a|b", "c", "a,c"])
    with pytest.raises(ConfigError, match=r"joined by ',' as well as by task.label_sep='\|' \(line 2\).*'a,c' on line"):
        read(path, Task(name="multilabel"))


def test_class_names_that_contain_a_separator_are_not_split(tmp_path: Path) -> None:
    """No piece is a class of its own and none recurs: 'Kitchen, Dining' is a name (multilabel and multiclass)."""
    cells = ["Kitchen, Dining|Bath", "Bath", "Garden; Shed", "Kitchen, Dining"]
    labels, bad = read(manifest(tmp_path / "ml", cells), Task(name="multilabel"))
    assert not bad and labels[2] == ("Bath", "Kitchen, Dining") and labels[4] == ("Garden; Shed",)
    single, bad = read(manifest(tmp_path / "mc", ["a;b", "a", "b"]), Task())  # one class per row: a name is a name
    assert not bad and single == {2: "a;b", 3: "a", 4: "b"}


def test_list_look_alikes_are_bad_rows_saying_how_to_write_them(tmp_path: Path) -> None:
    path = manifest(tmp_path, ["[a, b]", "['a', 'b']", "[deleted]", "b"])
    labels, bad = read(path, Task(name="multilabel"))
    assert labels == {3: ("a", "b"), 4: ("[deleted]",), 5: ("b",)}  # pandas' list is read; a bracketed name stays
    assert bad[2] == (
        "'label' looks like a list ('[a, b]') that neither JSON nor Python reads: quote each class ([\"a\", \"b\"]) "
        "or join them with task.label_sep (a|b; a class really named so: task.label_lookalikes=allow)"
    )
    labels, bad = read(path, Task())  # multiclass: a written list is no class, as a JSON list in a JSONL file
    assert sorted(bad) == [2, 3] and "a multiclass row has one label (multi-label data: task=multilabel" in bad[3]
    labels, bad = read(path, Task(name="multiclass", label_lookalikes="allow"))
    assert not bad and labels[2] == "[a, b]"


def test_none_inside_a_set_is_a_class_and_round_trips(tmp_path: Path) -> None:
    path = manifest(tmp_path, [["none", "drama"], ["none"], ["NA"], "none", "none|drama"], "jsonl")
    task = Task(name="multilabel")
    labels, bad = read(path, task)
    assert labels == {1: ("drama", "none"), 2: ("none",), 3: ("NA",), 5: ("drama", "none")}
    assert list(bad) == [4]  # a whole cell "none" is still a missing label
    for label in labels.values():
        assert isinstance(label, tuple) and task.parse_label(task.format(label)) == label
    assert task.format(("none",)) == '["none"]'  # "none" alone would read back as missing


@pytest.mark.parametrize(
    ("pair", "positive"),
    [
        (["hate", "nothate"], "hate"),
        (["nonoffensive", "offensive"], "offensive"),
        (["non-off", "off"], "off"),
        (["non_toxic", "toxic"], "toxic"),
        (["notspam", "spam"], "spam"),
        (["HOF", "NOT"], "HOF"),  # HASOC's labels
        (["safe", "unsafe"], "unsafe"),  # un- is not read as a negation; "safe" looks negative
        (["normal", "unknown"], "unknown"),
    ],
)
def test_binary_positive_guess_reads_one_word_negations_and_says_it(
    pair: list[str], positive: str, caplog: pytest.LogCaptureFixture
) -> None:
    task = Task(name="binary")
    with caplog.at_level(logging.INFO, logger="mmexp.data.task"):
        names = task.label_names(pair)
    assert names[task.positive_index(names)] == positive
    [said] = [r for r in caplog.records if "positive class" in r.getMessage()]
    other = next(n for n in pair if n != positive)
    assert said.levelno == logging.WARNING  # on the console among the warnings, not one INFO line among many
    assert f"the positive class is {positive!r}" in said.getMessage()
    assert f"set task.positive={other} to choose the other" in said.getMessage()


def test_a_chosen_positive_class_is_not_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mmexp.data.task"):
        Task(name="binary", positive="nothate").label_names(["hate", "nothate"])
    assert [r.levelno for r in caplog.records if "positive class" in r.getMessage()] == [logging.INFO]
