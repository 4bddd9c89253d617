"""CLI: turn run dirs or sweep dirs into report.md, report.csv and a self-contained report.html.

    python -m mmexp.report outputs/multirun/<sweep> [--out DIR] [--baseline GROUP] [--metric val/f1_macro]
    python -m mmexp.report <sweep per dataset>... --across          # methods ranked over datasets (Friedman)
    python -m mmexp.report <sweep> --across data.synthetic.interaction  # datasets = values of an override
    python -m mmexp.report <sweep> --errors 0                 # no error analysis (default: 8 rows per gallery)
    python -m mmexp.report <sweep> --ensemble                 # + a greedy ensemble of the runs, chosen on val

Reads only the files a run writes. Groups are ranked on a validation metric (test values beside, never used to
choose); a copied run dir is counted once; runs of different datasets or tasks get separate rankings.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from mmexp.core.io import write_atomic, write_text_atomic
from mmexp.reporting.groups import DEFAULT_IGNORE, DEFAULT_METRIC, Report, ReportError
from mmexp.reporting.runs import Run, find_run_dirs, load_run

OUTPUT_FILES = ("report.md", "report.csv", "report.html")
ACROSS_CSV = "report_across.csv"  # --across: scores and ranks per (dataset, method), Friedman, CD
CD_FILE = "cd_diagram.png"  # --across: the critical-difference diagram, also inline in report.html


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
        help="metric that ranks the groups and picks the best (default: %(default)s, a validation metric; a name "
        "without val/ or test/ means val/; test/... is allowed but makes the test score optimistic; its "
        "direction is the one each run recorded in metrics.json: loss and ece lower is better, others higher)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="GROUP",
        help="group name or label to compare against (default: the best fusion=image_only/text_only "
        "group, else the lowest-ranked group)",
    )
    parser.add_argument(
        "--ignore",
        default=",".join(DEFAULT_IGNORE),
        metavar="KEYS",
        help="comma-separated override keys (glob patterns) left out when grouping (default: %(default)s)",
    )
    parser.add_argument(
        "--across",
        nargs="?",
        const="sweep",
        default=None,
        metavar="KEY",
        help="also rank the methods over several datasets (average rank, Friedman test, Nemenyi critical "
        "difference diagram): alone, each input path is one dataset; with KEY, each value of that override "
        "(e.g. data.synthetic.interaction) is one",
    )
    parser.add_argument(
        "--errors",
        type=_rows,
        default=8,
        metavar="K",
        help="error analysis: per group, the K most confident mistakes and K least confident correct test rows "
        "(from predictions/test.csv, with thumbnails in report.html) and the most confused class pairs; "
        "0 leaves it out (default: %(default)s)",
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="also build, per replicate (seed, fold, split seed), a greedy weighted ensemble of the runs (Caruana et "
        "al. 2004, with replacement) on their predictions/val.csv, score it once on predictions/test.csv, and "
        "report it as the group ensemble=greedy, tested against the best single group; members and weights go "
        "to ensembles/members.json (docs/ensembles.md)",
    )
    return parser


def _rows(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0 (got {text!r})")
    return value


def load_runs(paths: list[Path], *, tag: bool) -> list[Run]:
    """Every run under ``paths``; with ``tag``, each run gets the override ``sweep=<its input path>``."""
    if not tag:
        return [load_run(d) for d in find_run_dirs(paths)]
    runs: dict[Path, Run] = {}
    for path, label in zip(paths, short_labels(paths), strict=True):
        for d in find_run_dirs([path]):
            run = load_run(d)
            runs.setdefault(d, replace(run, overrides=(*run.overrides, f"sweep={label}")))
    return list(runs.values())


def with_ensembles(runs: list[Run], *, metric: str, out: Path) -> tuple[list[Run], list[str]]:
    """``runs`` plus one ensemble run per replicate (``reporting.ensemble``), each run counted once; notes."""
    from mmexp.reporting.datasets import count_once
    from mmexp.reporting.ensemble import build_ensembles

    kept, _ = count_once(runs)
    ensembles, notes = build_ensembles(kept, metric=metric if "/" in metric else f"val/{metric}", out=out)
    return [*runs, *(e.run for e in ensembles)], notes


def short_labels(paths: list[Path]) -> list[str]:
    """The shortest trailing parts of the resolved paths that tell them apart (``a/x``, ``b/x``; ``y``)."""
    parts = [p.resolve().parts for p in paths]
    for n in range(1, max(map(len, parts), default=0) + 1):
        labels = ["/".join(p[-n:]) for p in parts]
        if len(set(labels)) == len(set(map(tuple, parts))):
            return labels
    return [str(p) for p in paths]


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
    from mmexp.reporting.datasets import analyse_datasets

    runs = load_runs(args.paths, tag=args.across == "sweep")
    ensemble_notes: list[str] = []
    try:
        if args.ensemble:
            runs, ensemble_notes = with_ensembles(runs, metric=args.metric, out=out)
        reports = analyse_datasets(
            runs,
            metric=args.metric,
            baseline=args.baseline,
            ignore=ignore,
            inputs=tuple(map(str, args.paths)),
            base_dir=out,
            across=args.across,
        )
    except ReportError as e:
        fail(str(e))

    from mmexp.reporting.csv_file import to_csv
    from mmexp.reporting.html import to_html
    from mmexp.reporting.markdown import to_markdown
    from mmexp.reporting.sections import build_document

    report = reports[0]
    doc = build_document(reports, errors=args.errors)
    markdown = to_markdown(doc)
    write_text_atomic(out / "report.md", markdown)
    write_text_atomic(out / "report.csv", to_csv(doc))
    write_text_atomic(out / "report.html", to_html(doc))
    written = [out / f for f in OUTPUT_FILES]
    if report.across is not None:
        from mmexp.reporting.csv_file import across_csv

        write_text_atomic(out / ACROSS_CSV, across_csv(report.across))
        written.append(out / ACROSS_CSV)
    if report.across is not None and (png := _cd_png(report)) is not None:
        write_atomic(out / CD_FILE, lambda f: f.write(png))
        written.append(out / CD_FILE)
    print(markdown, end="")
    left_out = report.across.missing_line() if report.across is not None else None
    for line in (*report.notes, *ensemble_notes, *([left_out] if left_out else [])):
        print(f"mmexp.report: {line}", file=sys.stderr)
    print(f"mmexp.report: wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0


def _cd_png(report: Report) -> bytes | None:
    """The critical-difference diagram as PNG bytes; None without matplotlib or without a CD."""
    import base64

    from mmexp.reporting import plots

    assert report.across is not None
    try:
        encoded = plots.cd_diagram(report.across)
    except ImportError:
        return None
    return None if encoded is None else base64.b64decode(encoded)
