"""report.md: the report model without figures and ``detail`` parts (the page has those)."""

from __future__ import annotations

from mmexp.reporting.document import Block, Code, Document, Gallery, Paragraph, Table


def to_markdown(doc: Document) -> str:
    """Title, intro as a bullet list, then each summary section."""
    parts = [f"# {doc.title}", "", *(f"- {text(p)}" for p in doc.intro if not p.detail)]
    for section in doc.sections:
        if section.detail:
            continue
        shown = [s for b in section.blocks if (s := block(b)) is not None]
        parts += ["", f"## {section.title}", "", "\n\n".join(shown)]
    return "\n".join(parts) + "\n"


def block(b: Block) -> str | None:
    """The block's Markdown; None for figures and ``detail`` paragraphs; a gallery as its table (no images)."""
    if isinstance(b, Table):
        return table(b)
    if isinstance(b, Gallery):
        return None if b.detail else table(b.table)
    return text(b) if isinstance(b, Paragraph) and not b.detail else None


def text(p: Paragraph) -> str:
    return "".join(f"`{part.text}`" if isinstance(part, Code) else part for part in p.parts)


def table(t: Table) -> str:
    """A pipe table; ``|`` inside a cell is escaped."""

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(t.headers), "|" + "|".join("---" for _ in t.headers) + "|", *map(line, t.rows)])
