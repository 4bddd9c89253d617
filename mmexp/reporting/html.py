"""report.html: one self-contained page (inline CSS, inline base64 PNGs, no scripts, no links)."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from mmexp.reporting import plots
from mmexp.reporting.groups import Report, per_class_mean
from mmexp.reporting.tables import (
    COMPARISON_NOTE,
    MISSING_NOTE,
    ROBUSTNESS_NOTE,
    comparison_rows,
    complexity_rows,
    explanation,
    failed_rows,
    fmt,
    fmt_summary,
    header,
    missing_rows,
    ranking_rows,
    reliability_rows,
    robustness_rows,
)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } tr.baseline td { background: #fff8e1; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; }
.note { color: #555; } code { background: #f4f4f4; padding: 0 3px; }
"""


def to_html(report: Report) -> str:
    """The whole page; figures are skipped with a note if matplotlib is not installed."""
    body = ["<h1>mmexp report</h1>", *(f'<p class="note">{escape(s)}</p>' for s in explanation(report))]
    if report.inputs:
        body.append('<p class="note">Inputs: ' + ", ".join(f"<code>{escape(i)}</code>" for i in report.inputs)
                    + "</p>")
    body += ["<h2>Ranking</h2>", _ranking(report) if report.groups else "<p>No completed runs.</p>",
             _figure(plots.bar_chart, report, f"{report.metric} per group")]
    common = report.common_overrides()
    if common:
        body.append('<p class="note">Figure labels leave out the overrides every group shares: '
                    + escape(", ".join(common)) + ".</p>")
    body.append("<h2>Paired comparison against the baseline</h2>")
    body.append(f'<p class="note">Baseline: <code>{escape(report.baseline.name)}</code>. {escape(COMPARISON_NOTE)}</p>'
                if report.baseline else "<p>No completed runs, so no baseline.</p>")
    if report.comparisons:
        body.append(_table(*comparison_rows(report)))
    body += ["<h2>Learning curves</h2>", _figure(plots.learning_curves, report, "validation curves"),
             "<h2>Confusion matrices</h2>",
             '<p class="note">Summed over each group\'s runs, normalized per row (rows = true class).</p>',
             _figure(plots.confusion_matrices, report, "confusion matrices"),
             "<h2>Per-class F1 (mean over runs)</h2>", _per_class(report),
             "<h2>All test metrics</h2>", _all_metrics(report), *_evaluations(report),
             "<h2>Failed / incomplete runs</h2>",
             _table(*failed_rows(report), numeric_from=99) if report.failed else "<p>None.</p>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>mmexp report</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _figure(draw: Callable[[Report], str | None], report: Report, alt: str) -> str:
    try:
        png = draw(report)
    except ImportError:
        return '<p class="note">(figure skipped: install matplotlib to draw it)</p>'
    if png is None:
        return '<p class="note">(nothing to plot)</p>'
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{png}">'


def _table(head: list[str], rows: list[list[str]], row_classes: list[str] | None = None,
           numeric_from: int = 2) -> str:
    """A plain table; columns from ``numeric_from`` on hold numbers (tabular digits, no wrapping)."""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    trs = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="num">{escape(c)}</td>' if j >= numeric_from else f"<td>{escape(c)}</td>"
                        for j, c in enumerate(row))
        trs.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(trs)}</tbody></table>"


def _baseline_classes(report: Report) -> list[str]:
    return ["baseline" if g is report.baseline else "" for g in report.groups]


def _ranking(report: Report) -> str:
    note = (f'<p class="note">Highlighted: the baseline <code>{escape(report.baseline.name)}</code>.</p>'
            if report.baseline is not None else "")
    return _table(*ranking_rows(report), row_classes=_baseline_classes(report)) + note


def _per_class(report: Report) -> str:
    means = {g.name: per_class_mean(g, "f1") for g in report.groups}
    labels = list(dict.fromkeys(label for m in means.values() for label in m))  # metrics.json order
    if not labels:
        return "<p>No per-class metrics.</p>"
    rows = [[g.name, str(len(g.runs)), *(fmt(means[g.name].get(label)) for label in labels)]
            for g in report.groups]
    return _table(["group", "n", *labels], rows, row_classes=_baseline_classes(report))


def _all_metrics(report: Report) -> str:
    metrics = report.all_metrics()
    if not metrics:
        return "<p>No test metrics.</p>"
    rows = [[g.name, str(len(g.runs)), *(fmt_summary(g.stats.get(m)) for m in metrics)] for g in report.groups]
    return _table(["group", "n", *(header(m) for m in metrics)], rows, row_classes=_baseline_classes(report))


def _evaluations(report: Report) -> list[str]:
    """Complexity per group, and the eval dirs' sections; nothing when neither is there."""
    body: list[str] = []
    head, rows = complexity_rows(report)
    if rows:
        body += ["<h2>Complexity</h2>", '<p class="note">Mean over each group\'s runs (metrics.json).</p>',
                 _table(head, rows)]
    if not report.evals:
        return body
    body += ["<h2>Missing modalities</h2>", f'<p class="note">{escape(MISSING_NOTE)}</p>',
             _table(*missing_rows(report))]
    head, rows = robustness_rows(report)
    if rows:
        body += ["<h2>Robustness</h2>", f'<p class="note">{escape(ROBUSTNESS_NOTE)}</p>',
                 _figure(plots.robustness_curves, report, "accuracy vs corruption severity"),
                 _table(head, rows, numeric_from=3)]
    head, rows = reliability_rows(report)
    if rows:
        body += ["<h2>Calibration (reliability diagram)</h2>",
                 '<p class="note">Pooled over each group\'s evals; bars: accuracy per confidence bin.</p>',
                 _figure(plots.reliability_diagrams, report, "reliability diagrams"), _table(head, rows)]
    return body
