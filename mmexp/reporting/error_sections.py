"""The error-analysis section of the report: each shown row's text excerpt and inline thumbnail, found in the run's
test_inputs.jsonl, and the blocks of the page. What to show is chosen in ``mmexp.reporting.errors``.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from mmexp.reporting.document import Block, Code, Gallery, Paragraph, Section, Table, Tile
from mmexp.reporting.errors import (
    DEFAULT_K,
    EXCERPT_CHARS,
    TEST_INPUTS,
    THUMBNAIL_BUDGET,
    THUMBNAIL_MAX,
    THUMBNAIL_PX,
    THUMBNAIL_STEPS,
    TITLE,
    ConfusedPair,
    GroupErrors,
    Pick,
    analyse_group,
)
from mmexp.reporting.groups import Report


@dataclass(frozen=True)
class Shown:
    """A pick as the page shows it: text excerpt and thumbnail, or the reason one is missing."""

    pick: Pick
    excerpt: str
    thumbnail: str | None
    problem: str | None


class DataLookup:
    """Finds a run's test row by id in the run's test_inputs.jsonl (read once per run)."""

    def __init__(self) -> None:
        self._rows: dict[Path, dict[str, dict[str, Any]] | str] = {}

    def rows(self, run_dir: Path) -> dict[str, dict[str, Any]] | str:
        """The run's test rows by id, or why they cannot be read."""
        if run_dir not in self._rows:
            self._rows[run_dir] = read_test_inputs(run_dir)
        return self._rows[run_dir]

    def show(self, pick: Pick, max_chars: int) -> Shown:
        """The pick's text excerpt and thumbnail (at most ``max_chars`` of base64)."""
        rows = self.rows(pick.run.path)
        if isinstance(rows, str):
            return Shown(pick, "", None, rows)
        found = rows.get(pick.id)
        if found is None:
            return Shown(pick, "", None, f"id {pick.id!r} is not in {TEST_INPUTS}")
        text, image = found.get("text"), Path(str(found.get("image") or ""))
        if not image.is_file():
            return Shown(pick, excerpt(text), None, f"image file not found: {str(image)!r}")
        thumb = thumbnail(image, max_chars)
        return Shown(pick, excerpt(text), thumb, None if thumb else "image unreadable or too large to inline")


NO_PAIRS = {
    False: "No confused pairs.",
    True: "Confused pairs do not apply to multi-label runs: each class is its own yes/no decision, so a mistake "
    "is a class missed or added (true vs predicted below); the per-class table gives each class's precision and "
    "recall.",
}


def read_test_inputs(run_dir: Path) -> dict[str, dict[str, Any]] | str:
    """``test_inputs.jsonl`` (written by the run at training time) by row id, or why it cannot be read."""
    path = run_dir / TEST_INPUTS
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return f"no {TEST_INPUTS} (a run from before mmexp recorded its test rows)"
    except OSError as e:
        return f"{TEST_INPUTS} unreadable: {e}"
    rows: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            return f"{TEST_INPUTS} is damaged (a line is not JSON)"
        if isinstance(row, dict) and "id" in row:
            rows[str(row["id"])] = row
    return rows


def excerpt(text: Any, limit: int = EXCERPT_CHARS) -> str:
    """The text on one line, cut at ``limit`` characters."""
    flat = " ".join(text.split()) if isinstance(text, str) else ""
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def thumbnail(path: Path, max_chars: int) -> str | None:
    """A base64 JPEG of the image, at most ``max_chars`` long; None when unreadable or it cannot fit."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))  # JPEG: decode at a reduced size
            rgb = image.convert("RGB")
        for px, quality in THUMBNAIL_STEPS:
            small = rgb.copy()
            small.thumbnail((px, px))
            buffer = io.BytesIO()
            small.save(buffer, "JPEG", quality=quality, optimize=True)
            encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
            if len(encoded) <= max_chars:
                return encoded
    except Exception:  # any file (corrupt, truncated, a decompression bomb) becomes a placeholder
        return None
    return None


NOTE = (
    "Per group, the runs' predictions/test.csv pooled: a test row scored by several runs (seeds) appears once, "
    "with its most confident wrong prediction (or its least confident right one) and how many of those runs got "
    "it wrong. Confidence: the probability of the predicted class. Confused pairs: the confusion matrices summed "
    "over the group's runs; share: of all test rows of the true class."
)


def error_sections(report: Report, k: int = DEFAULT_K) -> tuple[Section, ...]:
    """The report's error-analysis section; none when ``k`` is 0 (``--errors 0``)."""
    if k <= 0:
        return ()
    names = report.short_names()
    analysed = [replace(analyse_group(g, k), group=names[g.name]) for g in report.groups]
    if not any(a.runs for a in analysed):
        text = "No run has predictions/test.csv (runs written before mmexp saved per-row predictions), so no examples."
        return (Section(TITLE, (Paragraph((text,), note=True), *_pair_blocks(analysed))),)
    picks = sum(len(a.mistakes) + len(a.unsure) for a in analysed)
    max_chars = min(THUMBNAIL_MAX, THUMBNAIL_BUDGET // max(picks, 1))
    lookup = DataLookup()
    blocks: list[Block] = [Paragraph((NOTE,), note=True)]
    for a in analysed:
        blocks += group_blocks(a, report, lookup, max_chars)
    return (Section(TITLE, tuple(blocks)),)


def _pair_blocks(analysed: list[GroupErrors]) -> list[Block]:
    """Without predictions, the confused pairs alone (they come from metrics.json)."""
    out: list[Block] = []
    for a in analysed:
        if a.pairs:
            out += [Paragraph(("Group ", Code(a.group), ": classes confused most often.")), pairs_table(a.pairs)]
    return out


def group_blocks(a: GroupErrors, report: Report, lookup: DataLookup, max_chars: int) -> list[Block]:
    """One group: what was pooled, its confused pairs, its mistakes (also in report.md) and its unsure hits."""
    runs = f"{a.runs} run(s), {a.rows} test predictions pooled" if a.runs else "no run with predictions/test.csv"
    blocks: list[Block] = [Paragraph(("Group ", Code(a.group), f": {runs}."))]
    if a.skipped:
        shown = "; ".join(f"{report.shown_path(run)} ({why})" for run, why in a.skipped)
        blocks.append(Paragraph((f"Skipped {len(a.skipped)} run(s): {shown}.",), note=True))
    blocks.append(pairs_table(a.pairs) if a.pairs else Paragraph((NO_PAIRS[a.multilabel],), note=True))
    if not a.runs:
        return blocks
    mistakes = [lookup.show(p, max_chars) for p in a.mistakes]
    unsure = [lookup.show(p, max_chars) for p in a.unsure]
    blocks.append(Paragraph((f"Most confident mistakes ({len(mistakes)}):",)))
    blocks.append(gallery(mistakes, "most confident mistakes") if mistakes else Paragraph(("None.",)))
    blocks.append(Paragraph((f"Least confident correct predictions ({len(unsure)}):",), detail=True))
    blocks.append(gallery(unsure, "least confident correct predictions", detail=True))
    problems = list(dict.fromkeys(s.problem for s in (*mistakes, *unsure) if s.problem))
    if problems:
        count = sum(1 for s in (*mistakes, *unsure) if s.problem)
        text = f"{count} example(s) shown without a thumbnail: {'; '.join(problems[:3])}"
        blocks.append(Paragraph((text + ("; ..." if len(problems) > 3 else "") + ".",), note=True, detail=True))
    return blocks


def pairs_table(pairs: list[ConfusedPair]) -> Table:
    rows = tuple((p.true, p.predicted, str(p.count), f"{p.share:.1%}") for p in pairs)
    return Table(("true class", "predicted as", "rows", "share of the true class"), rows)


def gallery(shown: list[Shown], alt: str, *, detail: bool = False) -> Gallery:
    """Thumbnail tiles for the page; the same rows as a table (no images) for report.md."""
    tiles = tuple(
        Tile(
            caption=(
                f"true: {s.pick.true}",
                f"predicted: {s.pick.predicted} ({s.pick.confidence:.3f})",
                f"id {s.pick.id}, wrong in {s.pick.wrong}/{s.pick.seen} run(s)",
                *((f"({s.problem})",) if s.problem else ()),
                s.excerpt,
            ),
            image=s.thumbnail,
            alt=f"{alt}: {s.pick.id}",
        )
        for s in shown
    )
    rows = tuple(
        (
            s.pick.id,
            s.pick.true,
            s.pick.predicted,
            f"{s.pick.confidence:.3f}",
            f"{s.pick.wrong}/{s.pick.seen}",
            s.excerpt,
        )
        for s in shown
    )
    table = Table(("id", "true", "predicted", "confidence", "runs wrong", "text"), rows, numeric_from=3)
    return Gallery(tiles, table, detail=detail)
