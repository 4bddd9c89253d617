"""report.html: the report model as one self-contained page (inline CSS, inline base64 PNGs, no scripts, no links)."""

from __future__ import annotations

from html import escape

from mmexp.reporting.document import Block, Code, Document, Figure, Gallery, Paragraph, Table

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } tr.baseline td { background: #fff8e1; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.num .ci { display: block; color: #666; font-size: 11px; }
td.text { overflow-wrap: break-word; min-width: 7em; }
p.warn { background: #fff3cd; border-left: 4px solid #e0a800; padding: 4px 8px; }
.scroll { overflow-x: auto; max-width: 100%; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; }
.note { color: #555; } code { background: #f4f4f4; padding: 0 3px; overflow-wrap: anywhere; }
.gallery { display: flex; flex-wrap: wrap; gap: 8px; margin: 0.8em 0; }
.tile { width: 172px; margin: 0; padding: 6px; border: 1px solid #ddd; font-size: 12px; overflow-wrap: anywhere; }
.tile img, .tile .noimg { width: 96px; height: 96px; object-fit: contain; margin: 0 0 4px; background: #f4f4f4; }
.tile img { image-rendering: pixelated; } .tile .noimg { display: flex; align-items: center; justify-content: center;
       color: #888; } .tile figcaption div:last-child { color: #555; }
"""


def to_html(doc: Document) -> str:
    """The whole page, ``detail`` parts and figures included."""
    body = [f"<h1>{escape(doc.title)}</h1>", *map(paragraph, doc.intro)]
    for section in doc.sections:
        body += [f"<h2>{escape(section.title)}</h2>", *map(block, section.blocks)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(doc.title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def block(b: Block) -> str:
    if isinstance(b, Paragraph):
        return paragraph(b)
    if isinstance(b, Gallery):
        return gallery(b)
    return table(b) if isinstance(b, Table) else figure(b)


def paragraph(p: Paragraph) -> str:
    inner = "".join(f"<code>{escape(part.text)}</code>" if isinstance(part, Code) else escape(part) for part in p.parts)
    if p.note:
        return f'<p class="note">{inner}</p>'
    return f'<p class="warn">{inner}</p>' if p.warning else f"<p>{inner}</p>"


def figure(f: Figure) -> str:
    """An inline PNG; a note instead when matplotlib is missing or there is nothing to plot."""
    try:
        png = f.draw()
    except ImportError:
        return '<p class="note">(figure skipped: install matplotlib to draw it)</p>'
    if png is None:
        return '<p class="note">(nothing to plot)</p>'
    return f'<img alt="{escape(f.alt)}" src="data:image/png;base64,{png}">'


def gallery(g: Gallery) -> str:
    """Inline JPEG thumbnails (a grey "no image" box where there is none), each with its caption lines."""
    tiles = []
    for tile in g.tiles:
        image = (
            f'<img alt="{escape(tile.alt)}" src="data:image/jpeg;base64,{tile.image}">'
            if tile.image
            else '<div class="noimg">no image</div>'
        )
        lines = "".join(f"<div>{escape(line)}</div>" for line in tile.caption)
        tiles.append(f'<figure class="tile">{image}<figcaption>{lines}</figcaption></figure>')
    return f'<div class="gallery">{"".join(tiles)}</div>'


def table(t: Table) -> str:
    """Numeric columns get tabular digits and no wrapping; text cells wrap (after commas first); a table wider
    than the page scrolls inside its own box, not the page; baseline rows are highlighted."""
    th = "".join(f"<th>{_header(h)}</th>" for h in t.headers)
    trs = []
    for i, row in enumerate(t.rows):
        cls = ' class="baseline"' if i < len(t.highlight) and t.highlight[i] else ""
        cells = "".join(
            f'<td class="num">{_number(c)}</td>' if j >= t.numeric_from else f'<td class="text">{_breakable(c)}</td>'
            for j, c in enumerate(row)
        )
        trs.append(f"<tr{cls}>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{"".join(trs)}</tbody></table></div>'


def _header(text: str) -> str:
    """Escaped, with line-break opportunities after ``/``, ``_`` and ``,`` (``test/f1_pos_05`` may wrap)."""
    return escape(text).replace("/", "/<wbr>").replace("_", "_<wbr>").replace(",", ",<wbr>")


def _number(text: str) -> str:
    """Escaped; a ``mean ± std [low, high]`` cell puts ``± std`` and the interval on smaller lines of their own,
    so that many numeric columns fit a narrow page."""
    value, sep, interval = text.partition(" [")
    if sep and not interval.endswith("]"):
        return escape(text)
    mean, pm, std = value.partition(" ± ")
    out = escape(mean) + (f'<span class="ci">± {escape(std)}</span>' if pm else "")
    return out + (f'<span class="ci">[{escape(interval)}</span>' if sep else "")


def _breakable(text: str) -> str:
    """Escaped, with a line-break opportunity after every comma (group names are comma-joined overrides)."""
    return escape(text).replace(",", ",<wbr>")
