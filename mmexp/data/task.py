"""What is predicted (``task=multiclass|multilabel|binary``): how labels are read, named and encoded.

* multiclass: one class per row, the label map is every class seen, targets are class indices (N,).
* binary: exactly two classes; ``positive`` names the one whose probability is scored (AUROC, PR-AUC) and
  thresholded. Targets stay class indices, and the model keeps two logits with a softmax: the same head,
  loss and probability path as multiclass, so every fusion, eval feature and report works unchanged, and
  ``p(positive)`` is one column of it (a two-logit softmax is a one-logit sigmoid of their difference).
* multilabel: a row's label is a set of classes (a JSON list; in a CSV cell, ``a|b`` split on ``label_sep``, or
  a list written as JSON or by pandas, ``["a", "b"]`` / ``['a', 'b']``, ``[]`` for none), possibly empty;
  targets are a multi-hot float matrix (N, K), and the model scores each class with a sigmoid. Inside a set
  every entry is a name: ``["none"]`` is the class "none" (only a whole cell can be missing).

Cells that look written for another reader (a list in a single-label task, ``[a, b]``, ``a;b`` when the
separator is ``|``) are refused unless ``label_lookalikes=allow``: ``mmexp.data.label_syntax``.

The torch side (loss, probabilities, thresholds, metrics) is ``mmexp.training.objective``.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mmexp.core.errors import ConfigError
from mmexp.data.label_syntax import looks_like_list
from mmexp.data.labels import InvalidLabel, as_number, normalize_label, sorted_labels

log = logging.getLogger(__name__)
TASKS = ("multiclass", "multilabel", "binary")
LOOKALIKES = ("error", "allow")
# names that say "the negative class": with task.positive unset, the other class of a pair is the positive one
_NEGATIVE = re.compile(
    r"(0|false|no|not|non|none|neg|negative|normal|benign|healthy|safe|clean|ham|real|neutral|other"
    r"|not[_ -].*|non[_ -].*|no[_ -].*)",
    re.IGNORECASE,
)
# a negation written as one word with the other class: nothate / hate, nonoffensive / offensive, no_spam / spam.
# "un" is left out on purpose: unsafe, unhealthy, unacceptable are usually the class one detects.
_NEGATION_PREFIXES = ("not", "non", "no")
Label = str | tuple[str, ...]  # one class, or (multilabel) the sorted set of a row's classes


@dataclass(frozen=True)
class Task:
    """``conf/task/<name>.yaml``; checked when built, so a bad value fails before any data is read."""

    name: str = "multiclass"
    positive: str | None = None  # binary: the positive class (None: see default_positive)
    label_sep: str = "|"  # multilabel: the separator of labels written in one CSV cell
    threshold: str | float = "tune"  # binary/multilabel: decision threshold, or tune it on val (max F1)
    label_lookalikes: str = "error"  # error: refuse cells written as a list / with another separator; allow: as written

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ConfigError(f"task={self.name!r} is not a task: use one of {', '.join(TASKS)}")
        if self.name == "multilabel" and (not isinstance(self.label_sep, str) or not self.label_sep):
            raise ConfigError(f"task.label_sep must be a non-empty string, e.g. '|' (got {self.label_sep!r})")
        if self.threshold != "tune" and not (
            isinstance(self.threshold, (int, float))
            and not isinstance(self.threshold, bool)
            and 0.0 < float(self.threshold) < 1.0
        ):
            raise ConfigError(f"task.threshold must be tune or a number in (0, 1) (got {self.threshold!r})")
        if self.label_lookalikes not in LOOKALIKES:
            raise ConfigError(f"task.label_lookalikes must be error or allow (got {self.label_lookalikes!r})")
        finite = not isinstance(self.positive, float) or math.isfinite(self.positive)
        if self.positive is not None and not (isinstance(self.positive, (str, int, float)) and finite):
            raise ConfigError(f"task.positive must be the name of a class, e.g. yes or 1 (got {self.positive!r})")

    @property
    def multilabel(self) -> bool:
        return self.name == "multilabel"

    @property
    def binary(self) -> bool:
        return self.name == "binary"

    @property
    def tuned(self) -> bool:
        """Whether decision thresholds are tuned on val (binary and multilabel only)."""
        return self.name != "multiclass" and self.threshold == "tune"

    @property
    def checks_lookalikes(self) -> bool:
        return self.label_lookalikes == "error"

    def parse_label(self, value: object) -> Label | None:
        """A manifest value as a label; None when missing. Raises ``InvalidLabel`` with the reason."""
        if not self.multilabel:
            if isinstance(value, (list, tuple)):
                raise InvalidLabel(
                    f"is a list ({list(value)!r}); a {self.name} row has one label (multi-label data: task=multilabel)"
                )
            if isinstance(value, str) and self.checks_lookalikes:
                text = value.strip()
                if written_list(text) is not None or looks_like_list(text, self.label_sep):
                    raise InvalidLabel(
                        f"is written as a list ({text!r}); a {self.name} row has one label (multi-label data: "
                        "task=multilabel; a class really named so: task.label_lookalikes=allow)"
                    )
            return normalize_label(value)
        if isinstance(value, str):
            if normalize_label(value) is None:  # an empty or "NA"-like cell: missing, not a class
                return None
            text = value.strip()
            written = written_list(text)
            if written is None and self.checks_lookalikes and looks_like_list(text, self.label_sep):
                raise InvalidLabel(
                    f"looks like a list ({text!r}) that neither JSON nor Python reads: quote each class "
                    f'(["a", "b"]) or join them with task.label_sep (a{self.label_sep}b; a class really named so: '
                    "task.label_lookalikes=allow)"
                )
            value = text.split(self.label_sep) if written is None else written
        if not isinstance(value, (list, tuple)):  # one bare label (e.g. a JSON number), or missing
            single = normalize_label(value)
            return None if single is None else (single,)
        names = [_member(v) for v in value]
        if any(n is None for n in names):
            raise InvalidLabel(f"has an empty or missing entry ({list(value)!r})")
        clash = next((n for n in names if n is not None and self.label_sep in n), None)
        if clash is not None:
            raise InvalidLabel(
                f"class {clash!r} contains task.label_sep {self.label_sep!r}, so a written set could not be read "
                "back; rename the class or set task.label_sep to a character no class name has"
            )
        return tuple(sorted_labels(n for n in names if n is not None))

    def classes(self, labels: Iterable[Label]) -> list[str]:
        """The distinct classes of these rows' labels, in label order."""
        return sorted_labels(each_class(labels))

    def label_names(self, labels: Iterable[Label]) -> list[str]:
        """The label map (class order) a run trained on these labels uses: its classes, checked for the task."""
        names = self.classes(labels)
        if self.multilabel and len(names) < 2:
            raise ConfigError(
                f"task=multilabel needs at least two classes; the data has {len(names)}"
                f"{': ' + names[0] if names else ''} (check data.label_col and the skipped rows)"
            )
        if self.binary:
            if len(names) != 2:
                raise ConfigError(
                    f"task=binary needs exactly two classes; the data has {len(names)}: {', '.join(names[:10])} "
                    "(use task=multiclass, or map the labels to two values)"
                )
            if self.positive is None:  # a guess that decides every binary metric: on the console, with the override
                positive, why = guess_positive(names)
                log.warning(
                    "task=binary: the positive class is %r (%s); AUROC, PR-AUC, f1_pos and the threshold are about "
                    "it; set task.positive=%s to choose the other",
                    positive,
                    why,
                    names[1 - names.index(positive)],
                )
            else:
                log.info("task=binary: the positive class is %r (task.positive)", names[self.positive_index(names)])
        return names

    def positive_index(self, names: Sequence[str]) -> int:
        """The index of the positive class in ``names`` (binary): ``task.positive``, else ``default_positive``."""
        if self.positive is None:
            return names.index(default_positive(names))
        positive = normalize_label(self.positive)
        if positive is None or positive not in names:
            raise ConfigError(
                f"task.positive={self.positive!r} is not one of the two classes ({', '.join(names)}); "
                "set task.positive to one of them"
            )
        return list(names).index(positive)

    def encode(self, labels: Sequence[Label], names: Sequence[str]) -> np.ndarray:
        """Targets: class indices (N,) int64, or (multilabel) a multi-hot (N, K) float32 matrix."""
        index = {name: i for i, name in enumerate(names)}
        if not self.multilabel:
            return np.array([index[str(label)] for label in labels], dtype=np.int64)
        targets = np.zeros((len(labels), len(names)), dtype=np.float32)
        for row, label in enumerate(labels):
            targets[row, [index[name] for name in label]] = 1.0
        return targets

    def format(self, label: Label | None) -> str:
        """A label as one CSV cell (multilabel: joined by ``label_sep``, or as a JSON list where the joined
        text would read back as another set, e.g. the one class "none" or "[x, y]")."""
        if label is None:
            return ""
        if not isinstance(label, tuple):
            return label
        joined = self.label_sep.join(label)
        if not label or self._reads_back(joined, label):
            return joined
        return json.dumps(list(label), ensure_ascii=False)

    def _reads_back(self, text: str, label: tuple[str, ...]) -> bool:
        """Whether ``text`` reads back as the set ``label`` (written in label-map order, read back sorted)."""
        try:
            back = self.parse_label(text)
        except InvalidLabel:
            return False
        return isinstance(back, tuple) and sorted(back) == sorted(label)


def default_positive(names: Sequence[str]) -> str:
    """The positive class of two when none is named (``guess_positive``)."""
    return guess_positive(names)[0]


def guess_positive(names: Sequence[str]) -> tuple[str, str]:
    """The positive class of two when none is named, and why: the one that does not look negative (``0``,
    ``false``, ``no``, ``negative``, ``normal``, ``not_x``, ``non-x``, or the other's name negated in one word:
    ``nothate`` of ``hate``), else the second in label order."""
    first, second = names
    for name, other in ((first, second), (second, first)):
        if _negates(name, other) and not _negates(other, name):
            return other, f"{name!r} reads as its negation"
    negative = [bool(_NEGATIVE.fullmatch(name)) for name in names]
    if negative.count(False) == 1:
        return names[negative.index(False)], f"{names[negative.index(True)]!r} looks negative"
    return names[-1], "neither class looks negative: the second in label order"


def _negates(name: str, other: str) -> bool:
    """``name`` is ``other`` with a negation in front, written as one word or joined by _ - or a space."""
    word, base = (re.sub(r"[_\- ]", "", n).lower() for n in (name, other))
    for prefix in _NEGATION_PREFIXES:
        rest = word.removeprefix(prefix)
        if rest != word and len(rest) >= 3 and len(base) >= 3 and (base.startswith(rest) or rest.startswith(base)):
            return True
    return False


def _member(value: object) -> str | None:
    """One entry of a multi-label set as a class name; None when empty or null. Inside a set a string can only be
    a name, so "none" or "NA" there is a class, not a missing value."""
    if isinstance(value, str):
        text = value.strip()
        number = as_number(text)
        return (text if number is None else normalize_label(text)) or None
    return normalize_label(value)


def written_list(text: str) -> list[object] | None:
    """A CSV cell that holds a whole list, as JSON (``["a", "b"]``) or pandas/Python writes it (``['a', 'b']``)."""
    if not (text.startswith("[") and text.endswith("]")):
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, list):
            return value
    return None


def each_class(labels: Iterable[Label]) -> list[str]:
    """Every class of every label, repeats kept (a multi-label row counts once for each of its classes)."""
    return [name for label in labels for name in ((label,) if isinstance(label, str) else label)]
