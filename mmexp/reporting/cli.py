"""CLI: turn run dirs or sweep dirs into report.md, report.csv and a self-contained report.html.

    python -m mmexp.report outputs/multirun/<sweep> [--out DIR] [--baseline GROUP] [--metric test/f1_macro]

Reads only the files a run writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmexp.core.io import write_text_atomic
from mmexp.reporting.groups import DEFAULT_IGNORE, DEFAULT_METRIC, ReportError, analyse
from mmexp.reporting.runs import find_run_dirs, load_run

OUTPUT_FILES = ("report.md", "report.csv", "report.html")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmexp.report",
        description="Compare runs: group them by overrides (seeds and folds are replicates), rank the groups "
        "with mean ± std and 95% CI, test each against a baseline on paired runs, and write "
        "report.md, report.csv and report.html.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        help="run dirs, or dirs holding run dirs at any depth (e.g. a multirun sweep dir)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="where to write the report (default: the first path)"
    )
    parser.add_argument(
        "--metric",
        default=DEFAULT_METRIC,
        help="test metric that ranks the groups (default: %(default)s; loss and ece: lower is better, others higher)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="GROUP",
        help="group name to compare against (default: the best fusion=image_only/text_only "
        "group, else the lowest-ranked group)",
    )
    parser.add_argument(
        "--ignore",
        default=",".join(DEFAULT_IGNORE),
        metavar="KEYS",
        help="comma-separated override keys (glob patterns) left out when grouping (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes end with one ``mmexp.report: error: ...`` line and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def fail(message: str) -> None:
        parser.exit(2, f"mmexp.report: error: {message}\n")

    missing = [str(p) for p in args.paths if not p.is_dir()]
    if missing:
        fail(f"not a directory: {', '.join(missing)}")
    run_dirs = find_run_dirs(args.paths)
    if not run_dirs:
        fail(f"no run directories (folders with run_info.json) under {', '.join(map(str, args.paths))}")
    out = args.out or args.paths[0]
    ignore = tuple(k.strip() for k in args.ignore.split(",") if k.strip())
    try:
        report = analyse(
            [load_run(d) for d in run_dirs],
            metric=args.metric,
            baseline=args.baseline,
            ignore=ignore,
            inputs=tuple(map(str, args.paths)),
            base_dir=out,
        )
    except ReportError as e:
        fail(str(e))

    from mmexp.reporting.csv_file import to_csv
    from mmexp.reporting.html import to_html
    from mmexp.reporting.markdown import to_markdown
    from mmexp.reporting.sections import build_document

    doc = build_document(report)
    markdown = to_markdown(doc)
    write_text_atomic(out / "report.md", markdown)
    write_text_atomic(out / "report.csv", to_csv(doc))
    write_text_atomic(out / "report.html", to_html(doc))
    print(markdown, end="")
    print(f"mmexp.report: wrote {', '.join(str(out / f) for f in OUTPUT_FILES)}", file=sys.stderr)
    return 0
