"""The error-analysis section of the report: each shown row's text excerpt and inline thumbnail, found in the run's
data, and the blocks of the page. What to show is chosen in ``mmexp.reporting.errors``.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from mmexp.core.errors import ConfigError
from mmexp.data.manifest import ERROR, Row, RowProblem, read_rows
from mmexp.data.records import Columns, id_of, parse_records
from mmexp.data.synthetic import MANIFEST_NAME, SyntheticSpec, synthetic_root
from mmexp.data.task import Task
from mmexp.reporting.document import Block, Code, Gallery, Paragraph, Section, Table, Tile
from mmexp.reporting.errors import (
    DEFAULT_K,
    EXCERPT_CHARS,
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
from mmexp.reporting.runs import Run


@dataclass(frozen=True)
class Shown:
    """A pick as the page shows it: text excerpt and thumbnail, or the reason one is missing."""

    pick: Pick
    excerpt: str
    thumbnail: str | None
    problem: str | None


class DataLookup:
    """Finds the manifest row of a run's test id; reads each run's config and each manifest once."""

    def __init__(self) -> None:
        self._sources: dict[Path, tuple[Path, Path, Columns] | str] = {}
        self._rows: dict[Path, dict[str, tuple[int, Row]] | str] = {}

    def source(self, run: Run) -> tuple[Path, Path, Columns] | str:
        """(data root, manifest, columns) of the run, or why they cannot be found."""
        if run.path not in self._sources:
            self._sources[run.path] = data_source(run.path)
        return self._sources[run.path]

    def rows(self, manifest: Path, columns: Columns) -> dict[str, tuple[int, Row]] | str:
        if manifest not in self._rows:
            try:
                self._rows[manifest] = {_row_id(line, row, columns): (line, row) for line, row in read_rows(manifest)}
            except ConfigError as e:
                self._rows[manifest] = str(e)
        return self._rows[manifest]

    def show(self, pick: Pick, max_chars: int) -> Shown:
        """The pick's text excerpt and thumbnail (at most ``max_chars`` of base64)."""
        source = self.source(pick.run)
        if isinstance(source, str):
            return Shown(pick, "", None, source)
        root, manifest, columns = source
        rows = self.rows(manifest, columns)
        if isinstance(rows, str):
            return Shown(pick, "", None, rows)
        found = rows.get(pick.id)
        if found is None:
            return Shown(pick, "", None, f"id {pick.id!r} is not in {manifest}")
        text = found[1].get(columns.text)
        try:
            records, bad = parse_records([found], root, columns, Task(label_lookalikes="allow"))  # label as written
        except ConfigError as e:
            return Shown(pick, excerpt(text), None, str(e))
        if bad:
            return Shown(pick, excerpt(text), None, bad[0].reason)
        thumb = thumbnail(records[0].image, max_chars)
        return Shown(pick, excerpt(text), thumb, None if thumb else "image unreadable or too large to inline")


NO_PAIRS = {
    False: "No confused pairs.",
    True: "Confused pairs do not apply to multi-label runs: each class is its own yes/no decision, so a mistake "
    "is a class missed or added (true vs predicted below); the per-class table gives each class's precision and "
    "recall.",
}


def data_source(run_dir: Path) -> tuple[Path, Path, Columns] | str:
    """Where the run's data lives, from its config.yaml: (root, manifest, columns), or why it is not found."""
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        return f"config.yaml unreadable: {e}"
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict):
        return "config.yaml has no data section"
    columns = Columns(
        id=str(data.get("id_col", "id")),
        image=str(data.get("image_col", "image")),
        text=str(data.get("text_col", "text")),
        label=str(data.get("label_col", "label")),
        group=None,
        split=None,
    )
    name = str(data.get("manifest") or MANIFEST_NAME)
    if isinstance(data.get("synthetic"), dict):
        try:
            spec = SyntheticSpec(**{k: v for k, v in data["synthetic"].items() if k != "_target_"})
        except (TypeError, ConfigError) as e:
            return f"data.synthetic in config.yaml does not match this mmexp version: {e}"
        folder = synthetic_root(spec, str(data.get("cache_dir") or "")).as_posix()
    elif data.get("root"):
        folder = str(data["root"])
    else:
        return "config.yaml names no data.root"
    for base in (Path.cwd(), *run_dir.parents):
        root = base / Path(folder).expanduser()
        if (root / name).is_file():
            return root, root / name, columns
    return f"data folder not found: {folder} (moved or deleted?)"


def _row_id(line: int, row: Row, columns: Columns) -> str:
    """The id the training run gave the row (``records.id_of``: its id column as text), else its line number."""
    try:
        rid = None if ERROR in row else id_of(row.get(columns.id), columns.id)
    except RowProblem:  # an id training refused: no run scored this row
        rid = None
    return rid if rid is not None else str(line)


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
