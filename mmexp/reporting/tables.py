"""report.md and report.csv, plus the cell formatting the HTML page shares."""

from __future__ import annotations

import csv
import io

from mmexp.reporting import evals
from mmexp.reporting.groups import Comparison, Report, lower_is_better
from mmexp.reporting.stats import CONFIDENCE, Summary

DASH = "–"


def fmt(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def fmt_summary(s: Summary | None) -> str:
    """``mean ± std [CI low, CI high]``; a single run shows ``mean ± –``."""
    if s is None:
        return DASH
    if s.std is None:
        return f"{s.mean:.3f} ± {DASH}"
    return f"{s.mean:.3f} ± {s.std:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"


def fmt_p(p: float | None) -> str:
    return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def fmt_diff(c: Comparison) -> str:
    return DASH if c.test.mean_diff is None else f"{c.test.mean_diff:+.3f}"


def fmt_t(c: Comparison) -> str:
    return "n/a" if c.test.t is None else f"{c.test.t:.2f}"


def header(metric: str) -> str:
    return f"{metric} {'↓' if lower_is_better(metric) else '↑'}"


def explanation(report: Report) -> list[str]:
    """The sentences that say how to read the numbers (used by both markdown and HTML)."""
    direction = "lower" if lower_is_better(report.metric) else "higher"
    completed = sum(len(g.runs) for g in report.groups)
    return [
        f"Ranked by {report.metric} ({direction} is better). Cells: mean ± std "
        f"[{CONFIDENCE:.0%} CI of the mean, Student t] over the runs of a group; {DASH} where a group has one run.",
        f"A group is the runs with the same overrides, ignoring {', '.join(report.ignore) or 'nothing'}.",
        f"Runs: {completed} completed in {len(report.groups)} group(s), "
        f"{len(report.failed)} failed or incomplete.",
    ]


def ranking_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    metrics = report.main_metrics()
    head = ["rank", "group", "n", *(header(m) for m in metrics)]
    rows = [[fmt(g.rank, 0) if g.rank else DASH, g.name, str(len(g.runs)),
             *(fmt_summary(g.stats.get(m)) for m in metrics)] for g in report.groups]
    return head, rows


def comparison_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    head = ["group", "pairs", f"mean diff ({report.metric}, group - baseline)", "t", "p (paired t-test)"]
    rows = [[c.group, str(c.test.pairs), fmt_diff(c), fmt_t(c), fmt_p(c.test.p)] for c in report.comparisons]
    return head, rows


def failed_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    rows = [[report.shown_path(r), r.problem or r.status, ",".join(r.overrides)] for r in report.failed]
    return ["run", "status", "overrides"], rows


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(head), "|" + "|".join("---" for _ in head) + "|", *map(line, rows)])


def fmt_cost(key: str, value: float | None) -> str:
    """Parameters as integers, FLOPs with a unit, seconds with 4 digits, memory in MiB."""
    if value is None:
        return DASH
    if key == "params_total":
        return f"{value:,.0f}"
    if key == "flops_per_sample":
        unit = next((u for u in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")) if value >= u[0]), (1, ""))
        return f"{value / unit[0]:.3g} {unit[1]}".rstrip()
    if key == "peak_memory_bytes":
        return f"{value / 2**20:,.0f}"
    return f"{value:.4f}"


def complexity_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Mean cost per group, from metrics.json "complexity" (groups without one are left out)."""
    head = ["group", "n", *(label for _, label in evals.COMPLEXITY)]
    rows = []
    for g in report.groups:
        cost = evals.complexity(g.runs)
        if cost:
            rows.append([g.name, str(len(g.runs)), *(fmt_cost(key, cost.get(key)) for key, _ in evals.COMPLEXITY)])
    return head, rows


def missing_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    head = ["group", "evals", "acc both", "acc no image", "acc no text", "F1 both", "F1 no image", "F1 no text",
            "reliance image", "reliance text"]
    rows = []
    for g in report.evals:
        m = evals.missing_modality(g)
        rows.append([g.name, str(len(g.evals)), *(fmt(m[c]["acc"]) for c in evals.MISSING),
                     *(fmt(m[c]["f1_macro"]) for c in evals.MISSING), fmt(m["reliance"]["image"]),
                     fmt(m["reliance"]["text"])])
    return head, rows


def robustness_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    curves = {g.name: evals.robustness(g) for g in report.evals}
    steps = max((len(c["acc"]) for by_name in curves.values() for c in by_name.values()), default=0)
    head = ["group", "corruption", "modality", *(f"acc s{s}" for s in range(steps)), "relative robustness",
            "effective robustness"]
    rows = [[group, name, c["modality"], *(fmt(a) for a in c["acc"]), *([DASH] * (steps - len(c["acc"]))),
             fmt(c["relative_robustness"]), fmt(c["effective_robustness"])]
            for group, by_name in curves.items() for name, c in by_name.items()]
    return head, rows


def reliability_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Non-empty reliability bins per group, pooled over its evals."""
    rows = []
    for g in report.evals:
        r = evals.reliability(g)
        if r is None:
            continue
        for i, count in enumerate(r["count"]):
            if count:
                rows.append([g.name, f"({r['edges'][i]:.2f}, {r['edges'][i + 1]:.2f}]", str(count),
                             fmt(r["confidence"][i]), fmt(r["accuracy"][i]), fmt(r["ece"])])
    return ["group", "confidence bin", "predictions", "mean confidence", "accuracy", "ECE (group)"], rows


ROBUSTNESS_NOTE = ("Accuracy at corruption severities 0 (clean) to 5, mean over each group's evals. Relative "
                   "robustness: area under accuracy vs severity, severities mapped to [0, 1]. Effective "
                   "robustness: mean accuracy kept beyond the unimodal baseline of the corrupted modality "
                   "(both curves shifted to the same clean accuracy); – without a baseline.")
MISSING_NOTE = ("Accuracy and macro-F1 with both inputs, with the image removed and with the text removed "
                "(mean over each group's evals). Reliance: share of accuracy lost without the modality, "
                "(acc both - acc without) / acc both.")


def eval_markdown(report: Report) -> list[str]:
    """The markdown sections for complexity and eval dirs; empty when there is nothing to show."""
    parts: list[str] = []
    head, rows = complexity_rows(report)
    if rows:
        parts += ["", "## Complexity", "", "Mean over each group's runs (metrics.json).", "",
                  markdown_table(head, rows)]
    if not report.evals:
        return parts
    parts += ["", "## Missing modalities", "", MISSING_NOTE, "", markdown_table(*missing_rows(report))]
    head, rows = robustness_rows(report)
    if rows:
        parts += ["", "## Robustness", "", ROBUSTNESS_NOTE, "", markdown_table(head, rows)]
    head, rows = reliability_rows(report)
    if rows:
        parts += ["", "## Calibration (reliability diagram)", "", markdown_table(head, rows)]
    return parts


COMPARISON_NOTE = ("Runs pair up when seed, split.fold and split.seed agree; two-sided paired t-test, "
                   "not corrected for multiple comparisons; n/a with fewer than 2 pairs.")


def to_markdown(report: Report) -> str:
    """The whole report.md: ranking, paired comparison, failed runs."""
    parts = ["# mmexp report", "", *(f"- {line}" for line in explanation(report)), "", "## Ranking", ""]
    parts.append(markdown_table(*ranking_rows(report)) if report.groups else "No completed runs.")
    parts += ["", "## Paired comparison against the baseline", ""]
    parts.append(f"Baseline: `{report.baseline.name}`. {COMPARISON_NOTE}" if report.baseline
                 else "No completed runs, so no baseline.")
    if report.comparisons:
        parts += ["", markdown_table(*comparison_rows(report))]
    parts += eval_markdown(report)
    parts += ["", "## Failed / incomplete runs", ""]
    parts.append(markdown_table(*failed_rows(report)) if report.failed else "None.")
    return "\n".join(parts) + "\n"


def to_csv(report: Report) -> str:
    """One row per group: rank, n, mean/std/CI of every test metric, and the baseline comparison."""
    metrics = report.all_metrics()
    head = ["group", "rank", "n"]
    for m in metrics:
        head += [f"{m}_mean", f"{m}_std", f"{m}_ci_low", f"{m}_ci_high"]
    head += ["baseline", "pairs", "mean_diff", "p_value"]
    by_group = {c.group: c for c in report.comparisons}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(head)
    for g in report.groups:
        row: list[object] = [g.name, g.rank or "", len(g.runs)]
        for m in metrics:
            s = g.stats.get(m)
            row += ["", "", "", ""] if s is None else [s.mean, _blank(s.std), _blank(s.ci_low), _blank(s.ci_high)]
        c = by_group.get(g.name)
        row += ["" if c is None else c.baseline, "" if c is None else c.test.pairs,
                "" if c is None else _blank(c.test.mean_diff), "" if c is None else _blank(c.test.p)]
        writer.writerow(row)
    return out.getvalue()


def _blank(value: float | None) -> object:
    return "" if value is None else value
