"""The one naming rule for runs: run dirs, every dashboard's run name and tags, and the report's group labels.

A name shows what makes a run different: in a sweep, the overrides that vary between its jobs (``fusion=concat,
fold=0``), never the ones every job shares (they stay in the config); a single run shows all its overrides. Keys
are the shortest dotted suffix that no other named key ends with (``split.fold`` -> ``fold``), floats are
rounded to 4 significant digits, ``+``/``++``/``~`` are dropped, and a name past the length limit keeps its
whole leading items and ends in a hash of all of them. Pure functions of strings: no torch, no Hydra.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Sequence

MAX_NAME = 80  # characters of a run dir's name after its job number or timestamp
NOT_NAMED = ("hydra", "paths", "data.root", "ckpt_path", "resume", "logger", "num_threads")  # not what is trained
_UNSAFE = re.compile(r"[^\w.=+-]+")  # what a dir name may not hold: '/', ',', spaces, quotes, brackets ...


def parse_override(text: str) -> tuple[str, str] | None:
    """``(key, value)`` of a command-line override, ``+``/``++``/``~`` dropped (a deletion reads ``null``);
    None for the keys no name shows (``NOT_NAMED``: output paths, Hydra's own settings, resume)."""
    key, sep, value = text.partition("=")
    deleted = key.startswith("~")
    key = key.lstrip("+~").strip()
    if not key or any(key == k or key.startswith((f"{k}.", f"{k}/")) for k in NOT_NAMED):
        return None
    if deleted or not sep:
        return key, "null"
    return key, value.strip()


def format_value(value: str) -> str:
    """An override's value as names show it: quotes dropped, floats to 4 significant digits (``0.0001235``)."""
    value = value.strip().strip("'\"")
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)", value):
        return f"{float(value):.4g}"
    return value


def short_keys(keys: Iterable[str]) -> dict[str, str]:
    """Each key's shortest trailing part (split at ``.`` or ``/``) that no other of ``keys`` ends with."""
    unique = list(dict.fromkeys(keys))
    out: dict[str, str] = {}
    for key in unique:
        parts = re.split(r"[./]", key)
        others = [k for k in unique if k != key]
        for n in range(1, len(parts) + 1):
            tail = key[len(key) - len(".".join(parts[-n:])) :]
            if not any(o == tail or o.endswith((f".{tail}", f"/{tail}")) for o in others):
                out[key] = tail
                break
        else:
            out[key] = key
    return out


def name_items(
    overrides: Sequence[str], varying: Collection[str] | None = None, exclude: Collection[str] = ()
) -> list[tuple[str, str]]:
    """``(short key, value)`` of the overrides a name shows, in command-line order.

    ``varying``: the keys that vary within the sweep; only they are shown. None (a single run) or empty (a sweep
    of one job) shows every override. ``exclude``: more keys no name shows (a command's own paths).
    """
    parsed = [p for p in (parse_override(o) for o in overrides) if p is not None and p[0] not in exclude]
    if varying:
        wanted = {k.lstrip("+~") for k in varying}
        parsed = [(k, v) for k, v in parsed if k in wanted]
    shorts = short_keys(k for k, _ in parsed)
    return [(shorts[k], format_value(v)) for k, v in parsed]


def run_label(items: Iterable[tuple[str, str]], sep: str = ",") -> str:
    """``fusion=concat,fold=0``: the label a dashboard or a report shows for these items."""
    return sep.join(f"{k}={v}" for k, v in items)


def dir_name(items: Sequence[tuple[str, str]], max_len: int = MAX_NAME) -> str:
    """``fusion=concat_fold=0``: a filesystem-safe name, '' for no items; past ``max_len`` the whole items
    that fit and a hash of all of them, so names stay readable and two item lists never share a name."""
    parts = [_UNSAFE.sub("-", f"{k}={v}").strip("-") for k, v in items]
    name = "_".join(parts)
    if len(name) <= max_len:
        return name
    digest = hashlib.blake2b(run_label(items).encode(), digest_size=4).hexdigest()
    kept: list[str] = []
    for part in parts:
        if len("_".join([*kept, part])) > max_len - len(digest) - 1:
            break
        kept.append(part)
    return "_".join([*kept, digest])


def varying_keys(override_lists: Sequence[Sequence[str]]) -> list[str]:
    """Keys whose value differs between runs (a key some runs lack counts as differing), in first-seen order:
    the report's way to find what a set of finished runs swept."""
    maps = [dict(p for p in (parse_override(o) for o in overrides) if p is not None) for overrides in override_lists]
    keys = list(dict.fromkeys(k for m in maps for k in m))
    return [k for k in keys if len({m.get(k) for m in maps}) > 1]
