"""report.csv: the report model's per-group numbers at full precision."""

from __future__ import annotations

import csv
import io

from mmexp.reporting.across import Across
from mmexp.reporting.document import Document


def to_csv(doc: Document) -> str:
    """One row per group, as ``Document.data`` holds it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(doc.data.headers)
    writer.writerows(doc.data.rows)
    return out.getvalue()


def across_csv(a: Across) -> str:
    """``--across``: one row per (dataset, method) with its runs, mean score and rank; then one row per method
    with dataset ``(average rank)``; Friedman and the CD (blank when n/a) repeated on every row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    f = a.friedman
    tests = ["" if v is None else str(v) for v in (f and f.chi2, f and f.p, f and f.f, f and f.f_p, a.cd)]
    writer.writerow(
        [
            "dataset",
            "method",
            "runs",
            "score",
            "rank",
            "friedman_chi2",
            "friedman_p",
            "iman_davenport_f",
            "iman_davenport_p",
            "nemenyi_cd",
        ]
    )
    for i, dataset in enumerate(a.datasets):
        for j, method in enumerate(a.methods):
            writer.writerow([dataset, method, a.runs[i][j], a.scores[i][j], a.ranks[i][j], *tests])
    for j, method in enumerate(a.methods):
        writer.writerow(["(average rank)", method, sum(row[j] for row in a.runs), "", a.average_ranks[j], *tests])
    return out.getvalue()
