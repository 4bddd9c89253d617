"""Group labels for tables and figures: the overrides that tell the groups apart, written short.

The rule is the one run names follow (docs/statistics.md, "Labels"): only the overrides that vary between the groups
(those every group shares are said once, in a note), as ``key=value`` with the shortest dotted suffix of the
key that no other shown key ends with, floats to 4 significant digits, no ``+``/``++``; joined by ``,``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmexp.core.naming import format_value, parse_override, run_label, short_keys

NO_OVERRIDES = "(default)"


def group_labels(overrides: Sequence[Sequence[str]]) -> list[str]:
    """One label per group (same order), by mmexp.core.naming's rule with short keys taken across all groups;
    a lone group keeps all its overrides. Rounding never merges two groups: if it would, values are written in
    full."""
    groups = [sorted(p for p in map(parse_override, group) if p is not None) for group in overrides]
    shared = set.intersection(*map(set, groups)) if len(groups) > 1 else set()
    shown = [[(k, v) for k, v in group if (k, v) not in shared] for group in groups]
    short = short_keys(sorted({k for group in shown for k, _ in group}))
    for rounded in (True, False):
        labels = [
            run_label((short[k], format_value(v) if rounded else v.strip("'\"")) for k, v in group) or NO_OVERRIDES
            for group in shown
        ]
        if len(set(labels)) == len({tuple(group) for group in groups}):
            break
    return labels


def shared_overrides(overrides: Sequence[Sequence[str]]) -> list[str]:
    """The overrides every one of two or more groups has (left out of their labels)."""
    groups = [[o.lstrip("+") for o in group] for group in overrides]
    if len(groups) < 2:
        return []
    return [o for o in groups[0] if all(o in g for g in groups[1:])]
