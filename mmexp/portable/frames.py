"""pandas DataFrames as manifest rows: the same columns, checks and bad-row reasons, named by the frame's index.

A frame's rows become ``(number, row)`` pairs exactly like a manifest's ``(line, row)`` pairs (number = position
+ 1), so ``mmexp.data.records`` validates them with the manifest's own code; only the row names in messages
change ("index 7" instead of "line 8"). Image cells may be paths (relative to ``root``, default the current
directory; absolute paths as they are), ``PIL.Image`` objects or encoded bytes; in-memory images are written
once to ``images_dir`` (named by their content) so they decode through the same code as files. A row with no
id takes its index as id. pandas is imported lazily: it is an optional extra.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmexp.core.errors import ConfigError
from mmexp.core.io import write_atomic
from mmexp.data.manifest import Row
from mmexp.data.records import BadRow, Columns, format_bad_rows

FRAME = "the DataFrame"
_FIRST_ON_LINE = re.compile(r"\(first on line (\d+)\)")  # a duplicate id's reason names the first row


def require_pandas() -> Any:
    """pandas, or one line saying how to install it."""
    try:
        import pandas
    except ImportError:
        raise ConfigError("DataFrames need pandas: pip install 'mmexp[pandas]' (or pip install pandas)") from None
    return pandas


def is_frame(data: object) -> bool:
    """Whether ``data`` is a pandas DataFrame (without importing pandas when it is not loaded)."""
    pandas = __import__("sys").modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


@dataclass(frozen=True)
class FrameRows:
    """A frame's rows as manifest rows: ``rows`` numbered from 1, images relative to ``root``."""

    rows: list[tuple[int, Row]]
    root: Path
    index: list[Hashable]  # the frame's index labels, by position
    given: dict[str, str]  # image paths as written in the rows (relative to root) -> as the frame gave them

    def label(self, number: int) -> Hashable:
        return self.index[number - 1]

    def describe(self, bad: BadRow) -> str:
        """``index <label>: <reason>``, line numbers inside the reason named by index too."""
        reason = _FIRST_ON_LINE.sub(lambda m: f"(first at index {self.label(int(m[1]))!r})", bad.reason)
        for written, cell in self.given.items():  # "image file not found: 'img/x.png'" names the frame's cell
            reason = reason.replace(repr(written), repr(cell))
        return f"index {self.label(bad.line)!r}: {reason}"

    def error(self, bad: list[BadRow], *, action: str | None) -> str:
        return format_bad_rows(bad, FRAME, action=action, describe=self.describe, option="on_bad_record")


def frame_rows(frame: Any, columns: Columns, *, root: str | Path | None, images_dir: Path) -> FrameRows:
    """The frame's rows, its image cells made files under one common folder (see the module docstring)."""
    pandas = require_pandas()
    if not isinstance(frame, pandas.DataFrame):
        raise ConfigError(f"data must be a pandas DataFrame or a manifest path (got {type(frame).__name__})")
    names = [str(c) for c in frame.columns]
    base = Path(root).expanduser() if root is not None else Path.cwd()
    images_dir = images_dir.resolve()
    index = list(frame.index)
    rows: list[tuple[int, Row]] = []
    images: dict[int, Path] = {}
    for position, values in enumerate(frame.itertuples(index=False, name=None)):
        row = {name: _plain(value, pandas) for name, value in zip(names, values, strict=True)}
        if row.get(columns.id) is None:
            row[columns.id] = str(index[position])
        cell = row.get(columns.image)
        path = _image_file(cell, base, images_dir)
        if path is not None:
            images[position] = path
        rows.append((position + 1, row))
    common = Path(os.path.commonpath([str(images_dir), *map(str, images.values())]))
    given = {}
    for position, path in images.items():
        row = rows[position][1]
        written = os.path.relpath(path, common)
        if isinstance(row[columns.image], (str, os.PathLike)):
            given[written] = str(row[columns.image])
        row[columns.image] = written
    return FrameRows(rows, common, index, given)


def _plain(value: Any, pandas: Any) -> Any:
    """A cell as a manifest value: missing (None, NaN, NA) is None, numpy scalars and arrays become Python's."""
    if value is None or isinstance(value, (str, bytes, bytearray, memoryview, list, tuple, dict)):
        return value
    if hasattr(value, "tolist") and not hasattr(value, "getpixel"):  # numpy scalar or array (not an image)
        return value.tolist()
    try:
        if pandas.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _image_file(cell: Any, base: Path, images_dir: Path) -> Path | None:
    """The file an image cell stands for (in-memory images written to ``images_dir``); None for anything
    else (missing or not an image: the row's check names it)."""
    if isinstance(cell, (bytes, bytearray, memoryview)):
        return _stored(bytes(cell), ".img", images_dir)
    if hasattr(cell, "save") and hasattr(cell, "getpixel"):  # a PIL image: stored losslessly as it is shown
        buffer = io.BytesIO()
        image = cell if cell.mode in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA") else cell.convert("RGB")
        image.save(buffer, format="PNG")
        return _stored(buffer.getvalue(), ".png", images_dir)
    if isinstance(cell, os.PathLike) or (isinstance(cell, str) and cell):
        try:
            return (base / cell).resolve()
        except (OSError, ValueError):  # a NUL byte: the row's check names it
            return None
    return None


def _stored(data: bytes, suffix: str, images_dir: Path) -> Path:
    path = images_dir / (hashlib.sha256(data).hexdigest()[:24] + suffix)
    if not path.is_file():
        write_atomic(path, lambda f: f.write(data))
    return path.resolve()
