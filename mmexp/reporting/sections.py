"""Build the report model (document.py) from an analysed report: every title, header and cell, once."""

from __future__ import annotations

from functools import partial

from mmexp.reporting import plots
from mmexp.reporting.document import (
    Block,
    Code,
    Document,
    Figure,
    Paragraph,
    Section,
    Table,
)
from mmexp.reporting.eval_sections import eval_sections
from mmexp.reporting.formatting import (
    DASH,
    fmt,
    fmt_diff,
    fmt_p,
    fmt_summary,
    fmt_t,
    header,
)
from mmexp.reporting.groups import Report, lower_is_better, per_class_mean
from mmexp.reporting.stats import CONFIDENCE

TITLE = "mmexp report"
COMPARISON_NOTE = (
    "Runs pair up when seed, split.fold and split.seed agree; two-sided paired t-test, "
    "not corrected for multiple comparisons; n/a with fewer than 2 pairs."
)


def build_document(report: Report) -> Document:
    """The whole report; figures are drawn later, and only by the renderers that show them."""
    sections = (ranking(report), comparison(report), *details(report), *eval_sections(report), failed(report))
    return Document(TITLE, intro(report), sections, data_table(report))


def intro(report: Report) -> tuple[Paragraph, ...]:
    """The sentences that say how to read the numbers, and (on the page) which dirs were read."""
    direction = "lower" if lower_is_better(report.metric) else "higher"
    completed = sum(len(g.runs) for g in report.groups)
    lines = [
        (
            f"Ranked by {report.metric} ({direction} is better). Cells: mean ± std "
            f"[{CONFIDENCE:.0%} CI of the mean, Student t] over the runs of a group; {DASH} where a group has one run."
        ),
        f"A group is the runs with the same overrides, ignoring {', '.join(report.ignore) or 'nothing'}.",
        f"Runs: {completed} completed in {len(report.groups)} group(s), {len(report.failed)} failed or incomplete.",
    ]
    out = [Paragraph((line,), note=True) for line in lines]
    if report.inputs:
        parts: list[str | Code] = ["Inputs: "]
        for i, path in enumerate(report.inputs):
            parts += [", ", Code(path)] if i else [Code(path)]
        out.append(Paragraph(tuple(parts), note=True, detail=True))
    return tuple(out)


def _highlight(report: Report) -> tuple[bool, ...]:
    return tuple(g is report.baseline for g in report.groups)


def ranking(report: Report) -> Section:
    """Groups in rank order with the headline metrics, the bar chart and how to read its labels."""
    metrics = report.main_metrics()
    head = ("rank", "group", "n", *(header(m) for m in metrics))
    rows = tuple(
        (fmt(g.rank, 0) if g.rank else DASH, g.name, str(len(g.runs)), *(fmt_summary(g.stats.get(m)) for m in metrics))
        for g in report.groups
    )
    blocks: list[Block] = [
        Table(head, rows, highlight=_highlight(report)) if rows else Paragraph(("No completed runs.",))
    ]
    if report.baseline is not None:
        blocks.append(
            Paragraph(("Highlighted: the baseline ", Code(report.baseline.name), "."), note=True, detail=True)
        )
    blocks.append(Figure(partial(plots.bar_chart, report), f"{report.metric} per group"))
    if common := report.common_overrides():
        blocks.append(
            Paragraph(
                (f"Figure labels leave out the overrides every group shares: {', '.join(common)}.",),
                note=True,
                detail=True,
            )
        )
    return Section("Ranking", tuple(blocks))


def comparison(report: Report) -> Section:
    """Every group minus the baseline on paired runs."""
    if report.baseline is None:
        blocks: list[Block] = [Paragraph(("No completed runs, so no baseline.",))]
    else:
        blocks = [Paragraph(("Baseline: ", Code(report.baseline.name), f". {COMPARISON_NOTE}"), note=True)]
    if report.comparisons:
        head = ("group", "pairs", f"mean diff ({report.metric}, group - baseline)", "t", "p (paired t-test)")
        rows = tuple((c.group, str(c.test.pairs), fmt_diff(c), fmt_t(c), fmt_p(c.test.p)) for c in report.comparisons)
        blocks.append(Table(head, rows))
    return Section("Paired comparison against the baseline", tuple(blocks))


def details(report: Report) -> tuple[Section, ...]:
    """The page's extra sections: learning curves, confusion matrices, per-class F1, all test metrics."""
    return (
        Section("Learning curves", (Figure(partial(plots.learning_curves, report), "validation curves"),), detail=True),
        Section(
            "Confusion matrices",
            (
                Paragraph(("Summed over each group's runs, normalized per row (rows = true class).",), note=True),
                Figure(partial(plots.confusion_matrices, report), "confusion matrices"),
            ),
            detail=True,
        ),
        Section("Per-class F1 (mean over runs)", (per_class(report),), detail=True),
        Section("All test metrics", (all_metrics(report),), detail=True),
    )


def per_class(report: Report) -> Table | Paragraph:
    means = {g.name: per_class_mean(g, "f1") for g in report.groups}
    labels = list(dict.fromkeys(label for m in means.values() for label in m))  # metrics.json order
    if not labels:
        return Paragraph(("No per-class metrics.",))
    rows = tuple(
        (g.name, str(len(g.runs)), *(fmt(means[g.name].get(label)) for label in labels)) for g in report.groups
    )
    return Table(("group", "n", *labels), rows, highlight=_highlight(report))


def all_metrics(report: Report) -> Table | Paragraph:
    metrics = report.all_metrics()
    if not metrics:
        return Paragraph(("No test metrics.",))
    rows = tuple((g.name, str(len(g.runs)), *(fmt_summary(g.stats.get(m)) for m in metrics)) for g in report.groups)
    return Table(("group", "n", *(header(m) for m in metrics)), rows, highlight=_highlight(report))


def failed(report: Report) -> Section:
    if not report.failed:
        return Section("Failed / incomplete runs", (Paragraph(("None.",)),))
    rows = tuple((report.shown_path(r), r.problem or r.status, ",".join(r.overrides)) for r in report.failed)
    return Section("Failed / incomplete runs", (Table(("run", "status", "overrides"), rows, numeric_from=3),))


def data_table(report: Report) -> Table:
    """One row per group: rank, n, mean/std/CI of every test metric, and the baseline comparison (report.csv)."""
    metrics = report.all_metrics()
    head = ["group", "rank", "n"]
    for m in metrics:
        head += [f"{m}_mean", f"{m}_std", f"{m}_ci_low", f"{m}_ci_high"]
    head += ["baseline", "pairs", "mean_diff", "p_value"]
    by_group = {c.group: c for c in report.comparisons}
    rows = []
    for g in report.groups:
        row = [g.name, _raw(g.rank), _raw(len(g.runs))]
        for m in metrics:
            s = g.stats.get(m)
            row += ["", "", "", ""] if s is None else [_raw(s.mean), _raw(s.std), _raw(s.ci_low), _raw(s.ci_high)]
        c = by_group.get(g.name)
        row += (
            ["", "", "", ""] if c is None else [c.baseline, _raw(c.test.pairs), _raw(c.test.mean_diff), _raw(c.test.p)]
        )
        rows.append(tuple(row))
    return Table(tuple(head), tuple(rows), numeric_from=1)


def _raw(value: float | None) -> str:
    """Full precision, as ``str`` writes it; blank for a missing value (or rank)."""
    return "" if value is None else str(value)
