"""Label cells written for another reader: a list syntax, or a set joined by another separator than ``task.label_sep``.

Read as written, such cells turn into wrong classes without a word: ``a;b`` (separator ``|``) becomes one class
named ``a;b``, ``[a, b]`` one class named ``[a, b]``. The rules (docs/tasks.md, "Label look-alikes"):

* a cell that is a list (JSON, or as pandas writes it: ``["a", "b"]``, ``['a']``, ``[]``) in a single-label task,
  or a bracketed cell with a separator or quote inside that no reader parses (``[a, b]``) in any task, is a bad
  row saying how to write it (``looks_like_list``);
* multilabel: a class name holding ``;``, ``,`` or ``|`` (other than ``task.label_sep``) is read as a set written
  with that separator when one of its pieces is a class of its own elsewhere in the file, or when
  ``task.label_sep`` joins no cell and either no row holds two classes (then that character is the only way the
  file writes sets) or a piece recurs in two such names (``drama;comedy``, ``action;drama``). A lone
  ``Kitchen, Dining`` beside sets written ``a|b`` stays a class. That is one error for the whole file, with the
  fix (the other separator, or ``task.label_lookalikes=allow`` when the character belongs to the names).

Single-label tasks never split names: a class named ``a;b`` is a class (a label powerset is a legitimate choice).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from mmexp.core.errors import ConfigError

SEPARATORS = (";", ",", "|")  # a set written by hand or a spreadsheet; "/" and spaces are too common inside names
_LIST_MARKS = (",", ";", "|", '"', "'")


def looks_like_list(text: str, sep: str) -> bool:
    """A bracketed cell with a separator or a quote inside: meant as a list (``[a, b]``), not a name (``[deleted]``)."""
    inner = text[1:-1] if len(text) >= 2 and text[0] == "[" and text[-1] == "]" else None
    return inner is not None and any(mark in inner for mark in (*_LIST_MARKS, sep))


def sep_override(sep: str) -> str:
    """The override setting ``task.label_sep`` as a shell passes it to Hydra (``;`` and ``,`` must be quoted)."""
    return f"\"task.label_sep='{sep}'\""


def check_separators(labels: Sequence[tuple[int, tuple[str, ...], bool]], sep: str) -> None:
    """Refuse multi-label sets that look joined by another separator than ``sep``.

    ``labels``: (line, the row's classes, whether they were split from one string cell). Raises ``ConfigError``.
    """
    everywhere = {name for _, names, _ in labels for name in names}
    split = [(line, names) for line, names, from_text in labels if from_text]
    joined = next((line for line, names in split if len(names) > 1), None)  # a cell that task.label_sep splits
    sets = any(len(names) > 1 for _, names, _ in labels)  # a row with two classes, however written
    for other in SEPARATORS:
        if other == sep:
            continue
        compound = {name: pieces for name in everywhere if (pieces := _pieces(name, other))}
        if not compound:
            continue
        alone = {name for name in everywhere if other not in name}
        uses = Counter(piece for pieces in compound.values() for piece in set(pieces))
        joint = {
            name
            for name, pieces in compound.items()
            if any(p in alone for p in pieces) or (joined is None and (not sets or any(uses[p] > 1 for p in pieces)))
        }
        rows = [(line, name) for line, names in split for name in names if name in joint]
        if rows:
            raise ConfigError(_message(rows, other, sep, joined))


def _pieces(name: str, sep: str) -> list[str]:
    """The parts of ``name`` around ``sep`` (at least two, none empty), or [] when it does not split so."""
    pieces = [p.strip() for p in name.split(sep)]
    return pieces if len(pieces) > 1 and all(pieces) else []


def _message(rows: list[tuple[int, str]], other: str, sep: str, joined: int | None) -> str:
    line, name = rows[0]
    more = f", and {len(rows) - 1} more row(s)" if len(rows) > 1 else ""
    seen = f"label {name!r} on line {line}{more}"
    allow = f"if {other!r} is part of the class names, set task.label_lookalikes=allow"
    if joined is not None:
        return (
            f"data.manifest: multi-label sets look joined by {other!r} as well as by task.label_sep={sep!r} "
            f"(line {joined}): {seen}; write every set with {sep!r} ({allow})"
        )
    return (
        f"data.manifest: multi-label labels look {other!r}-separated ({seen}), but task.label_sep is {sep!r}: "
        f"set {sep_override(other)} ({allow})"
    )
