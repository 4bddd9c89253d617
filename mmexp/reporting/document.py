"""The report as one format-free model, built once (sections.py) and only rendered by markdown.py, html.py
and csv_file.py, so the three files can never disagree on a title, a header or a number.

``detail`` marks what only the HTML page shows: report.md is the summary, the page adds figures and
per-class / all-metric tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    """Inline code: a group name or a path (backticks in Markdown, ``<code>`` in HTML)."""

    text: str


@dataclass(frozen=True)
class Paragraph:
    """Running text; a ``note`` explains how to read what follows (greyed out on the page); a ``warning`` must be
    read before the numbers (marked on the page)."""

    parts: tuple[str | Code, ...]
    note: bool = False
    detail: bool = False
    warning: bool = False


@dataclass(frozen=True)
class Table:
    """Formatted cells; columns from ``numeric_from`` on hold numbers; ``highlight`` marks baseline rows."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric_from: int = 2
    highlight: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Figure:
    """A PNG drawn only when a renderer needs it (``draw`` returns base64, or None with nothing to plot)."""

    draw: Callable[[], str | None]
    alt: str


@dataclass(frozen=True)
class Tile:
    """One gallery item: an inline JPEG (base64), or a "no image" placeholder when ``image`` is None."""

    caption: tuple[str, ...]
    image: str | None = None
    alt: str = ""


@dataclass(frozen=True)
class Gallery:
    """Thumbnails with captions on the page; report.md shows ``table`` (the same items, no images) unless
    ``detail``."""

    tiles: tuple[Tile, ...]
    table: Table
    detail: bool = False


Block = Paragraph | Table | Figure | Gallery


@dataclass(frozen=True)
class Section:
    """A titled part of the report."""

    title: str
    blocks: tuple[Block, ...]
    detail: bool = False


@dataclass(frozen=True)
class Document:
    """The whole report: intro sentences, sections in order, and the per-group numbers at full precision."""

    title: str
    intro: tuple[Paragraph, ...]
    sections: tuple[Section, ...]
    data: Table
