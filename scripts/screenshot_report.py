"""Render the "Error analysis" section of an mmexp report.html to a PNG, offline, for the docs.

    python scripts/screenshot_report.py REPORT_HTML OUT_PNG [--section "Error analysis"] [--width 1250]

Why this and not a browser: the docs machines have no browser and no internet, and ``playwright install``
fetches Chromium from a CDN. WeasyPrint (HTML/CSS -> PDF, pure Python on the system's Pango) and
pypdfium2 (PDF -> bitmap, bundles PDFium) both install from PyPI and need nothing else. The page is cut
down to the report's <head> (its styles) plus the one section, laid out on a single tall page of the
given CSS width, rasterized at 1 CSS px = 1 PNG px, cropped to the content and quantized to keep it small.

A docs tool, not a dependency of mmexp: install the renderer in any environment with
``pip install weasyprint pypdfium2 pillow``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

INSTALL_HINT = "screenshot_report.py needs a renderer: pip install weasyprint pypdfium2 pillow"
PX_PER_PT = 96 / 72  # WeasyPrint lays out at 96 CSS px per inch; PDFium renders 72 pt per inch at scale 1


def section_html(html: str, heading: str) -> str:
    """The report's <head> (styles) and body cut down to the <h2> named `heading` up to the next <h2>."""
    start = re.search(rf"<h2[^>]*>\s*{re.escape(heading)}\s*</h2>", html, flags=re.IGNORECASE)
    if start is None:
        raise SystemExit(f"no <h2>{heading}</h2> in the report (was it written with --errors N?)")
    end = re.search(r"<h2[\s>]", html[start.end() :])
    stop = start.end() + end.start() if end else html.lower().rfind("</body>")
    body_at = re.search(r"<body[^>]*>", html, flags=re.IGNORECASE)
    if body_at is None:
        raise SystemExit("no <body> in the report")
    # the section's first heading has margin-top: 2em for the sections above it; drop that at the top
    page_css = "<style>body > h2:first-child { margin-top: 0; }</style>"
    return html[: body_at.start()].replace("</head>", page_css + "</head>") + (
        body_at.group(0) + html[start.start() : stop] + "</body></html>"
    )


def render_png(html: str, base_url: str, width_px: int, max_height_px: int) -> Any:
    """Lay `html` out on one page `width_px` CSS px wide and return it as a Pillow image cropped to the content."""
    try:
        import pypdfium2 as pdfium
        from PIL import Image, ImageChops
        from weasyprint import CSS, HTML
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        raise SystemExit(2) from None

    # one tall page, so the section is never split; the blank rest is cropped away below
    page = CSS(string=f"@page {{ size: {width_px}px {max_height_px * 4}px; margin: 0 }}")
    pdf = HTML(string=html, base_url=base_url).write_pdf(stylesheets=[page])
    doc = pdfium.PdfDocument(pdf)
    try:
        image = doc[0].render(scale=PX_PER_PT).to_pil().convert("RGB")
    finally:
        doc.close()
    blank = Image.new("RGB", image.size, "white")
    box = ImageChops.difference(image, blank).getbbox()
    if box is None:
        raise SystemExit("the rendered section is blank")
    pad = 16
    bottom = min(image.height, box[3] + pad)
    if bottom > max_height_px:
        print(f"section is {bottom} px tall; cut at {max_height_px} px", file=sys.stderr)
        bottom = max_height_px
    return image.crop((0, 0, image.width, bottom))


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, render the section and write the PNG (palette-quantized, optimized)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_html", type=Path, help="report.html written by python -m mmexp.report")
    parser.add_argument("out_png", type=Path, help="where to write the PNG")
    parser.add_argument("--section", default="Error analysis", help="the <h2> heading to render from")
    parser.add_argument("--width", type=int, default=1250, help="page width in CSS px (= PNG px)")
    parser.add_argument("--max-height", type=int, default=1600, help="cut the PNG at this height in px")
    args = parser.parse_args(argv)

    html = args.report_html.read_text(encoding="utf-8")
    image = render_png(
        section_html(html, args.section), args.report_html.resolve().parent.as_uri() + "/", args.width, args.max_height
    )
    # 256 colours are plenty for text, tables and the small thumbnails, and cut the size several-fold
    image = image.quantize(colors=256, dither=0)
    args.out_png.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out_png, optimize=True)
    print(f"wrote {args.out_png} ({image.width}x{image.height} px, {args.out_png.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
