"""Group labels for tables and figures: the overrides that tell the groups apart, written short.

The rule is the one run names follow (docs/statistics.md, "Labels"): only the overrides that vary between the groups
(those every group shares are said once, in a note), as ``key=value`` with the shortest dotted suffix of the
key that no other shown key ends with, floats to 4 significant digits, no ``+``/``++``; joined by ``,``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

NO_OVERRIDES = "(default)"
FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)$")


def group_labels(overrides: Sequence[Sequence[str]], *, digits: int = 4) -> list[str]:
    """One label per group (same order); a lone group keeps all its overrides. Rounding never merges two
    groups: if it would, the values are written in full."""
    groups = [[o.lstrip("+") for o in group] for group in overrides]
    shared = set.intersection(*map(set, groups)) if len(groups) > 1 else set()
    shown = [[o for o in group if o not in shared] for group in groups]
    keys = sorted({_key(o) for group in shown for o in group})
    short = {k: _shortest(k, keys) for k in keys}
    for rounding in (digits, None):
        labels = [",".join(_item(o, short, rounding) for o in sorted(g, key=_key)) or NO_OVERRIDES for g in shown]
        if len(set(labels)) == len(set(map(tuple, map(sorted, groups)))):
            break
    return labels


def shared_overrides(overrides: Sequence[Sequence[str]]) -> list[str]:
    """The overrides every one of two or more groups has (left out of their labels)."""
    groups = [[o.lstrip("+") for o in group] for group in overrides]
    if len(groups) < 2:
        return []
    return [o for o in groups[0] if all(o in g for g in groups[1:])]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _shortest(key: str, keys: list[str]) -> str:
    """The shortest trailing dotted part of ``key`` that no other key in ``keys`` ends with."""
    parts = key.split(".")
    others = [k.split(".") for k in keys if k != key]
    for n in range(1, len(parts) + 1):
        tail = parts[-n:]
        if not any(o[-n:] == tail for o in others):
            return ".".join(tail)
    return key


def _item(override: str, short: dict[str, str], digits: int | None) -> str:
    if "=" not in override:
        return override  # ~key: a deletion
    key, value = override.split("=", 1)
    prefix = "~" if key.startswith("~") else ""
    return f"{prefix}{short[_key(override)]}={_number(value, digits)}"


def _number(value: str, digits: int | None) -> str:
    """A float to ``digits`` significant digits (ints, strings and lists as written)."""
    if digits is None or not FLOAT.match(value):
        return value
    return f"{float(value):.{digits}g}"
