"""The ``--across`` section of the report: the methods' scores and ranks per dataset, Friedman, the CD diagram."""

from __future__ import annotations

from functools import partial

from mmexp.reporting import plots
from mmexp.reporting.document import Block, Figure, Paragraph, Section, Table
from mmexp.reporting.formatting import fmt_p
from mmexp.reporting.groups import Report
from mmexp.reporting.stats import ALPHA


def across_sections(report: Report) -> tuple[Section, ...]:
    """``--across``: the methods' scores and ranks per dataset, the Friedman test and the CD diagram."""
    a = report.across
    if a is None:
        return ()
    title = "Across datasets"
    if not a.methods or not a.datasets:
        missing = [Paragraph((line,), warning=True)] if (line := a.missing_line()) else []
        return (Section(title, (Paragraph(("No method has runs in every dataset.",)), *missing)),)
    counts = sorted({n for row in a.runs for n in row})
    n_text = f"n = {counts[0]}" if len(counts) == 1 else f"n = {counts[0]}–{counts[-1]}"
    blocks: list[Block] = [
        Paragraph(
            (
                f"Datasets: the values of {a.key}" if a.key != "sweep" else "Datasets: the input paths",
                f" ({len(a.datasets)}); methods: groups without {a.key} and data overrides ({len(a.methods)}). ",
                f"Cells: mean {a.metric} over the cell's runs ({n_text} per cell), "
                "rank within the dataset in brackets (1 = best, ties averaged). Demšar (2006): average ranks, "
                "Friedman test, Nemenyi critical difference.",
            ),
            note=True,
        )
    ]
    head = ("dataset", *a.methods)
    rows = [
        (d, *(f"{s:.3f} ({r:g})" for s, r in zip(a.scores[i], a.ranks[i], strict=True)))
        for i, d in enumerate(a.datasets)
    ]
    rows.append(("average rank", *(f"{r:.3f}" for r in a.average_ranks)))
    blocks.append(Table(head, tuple(rows), numeric_from=1))
    f = a.friedman
    if f is None:
        blocks.append(Paragraph(("Friedman test: n/a (it needs 3 or more methods and 2 or more datasets).",)))
    else:
        text = f"Friedman χ² = {f.chi2:.3f} (df {f.methods - 1}, N = {f.datasets} datasets), p = {fmt_p(f.p)}"
        if f.f is not None:
            df2 = (f.methods - 1) * (f.datasets - 1)
            text += f"; Iman-Davenport F = {f.f:.3f} (df {f.methods - 1}, {df2}), p = {fmt_p(f.f_p)}"
        blocks.append(Paragraph((text + ".",)))
    if a.cd is not None:
        same = a.not_different()
        blocks.append(
            Paragraph(
                (
                    f"Nemenyi critical difference (alpha = {ALPHA}): CD = {a.cd:.3f}; two methods differ significantly "
                    "when their average ranks differ by more than CD. The diagram joins methods that do not.",
                ),
                note=True,
            )
        )
        blocks.append(Figure(partial(plots.cd_diagram, a), "critical difference diagram"))
        if not same:
            blocks.append(Paragraph(("Every pair of methods differs by more than CD.",)))
    if line := a.missing_line():
        blocks.append(Paragraph((line,), warning=True))
    return (Section(title, tuple(blocks)),)
