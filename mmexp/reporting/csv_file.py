"""report.csv: the report model's per-group numbers at full precision."""

from __future__ import annotations

import csv
import io

from mmexp.reporting.document import Document


def to_csv(doc: Document) -> str:
    """One row per group, as ``Document.data`` holds it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(doc.data.headers)
    writer.writerows(doc.data.rows)
    return out.getvalue()
