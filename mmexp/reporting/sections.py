"""Build the report model (document.py) from an analysed report: every title, header and cell, once."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from mmexp.reporting import plots
from mmexp.reporting.across_sections import across_sections
from mmexp.reporting.document import (
    Block,
    Code,
    Document,
    Figure,
    Paragraph,
    Section,
    Table,
)
from mmexp.reporting.ensemble_sections import ensemble_section
from mmexp.reporting.error_sections import error_sections
from mmexp.reporting.errors import DEFAULT_K
from mmexp.reporting.eval_sections import eval_sections
from mmexp.reporting.formatting import (
    DASH,
    fmt,
    fmt_diff,
    fmt_p,
    fmt_summary,
    fmt_t,
    fmt_test,
    header,
)
from mmexp.reporting.groups import Group, Report, per_class_mean, test_twin
from mmexp.reporting.metric_specs import MetricSpecs
from mmexp.reporting.stats import CONFIDENCE, Summary

TITLE = "mmexp report"
COMPARISON_NOTE = (
    "Runs pair up when seed, split.fold and split.seed agree; n/a with fewer than 2 pairs. "
    "Test: paired t when the pairs share their split (they differ by seed only); corrected resampled t "
    "(Nadeau & Bengio 2003) when the pairs are different folds or split seeds, whose training sets overlap "
    "so that the plain t-test is overconfident: the variance is inflated by n_test/n_train (from split.json). "
    "p: two-sided, raw; p (Holm): adjusted over all the comparisons in this table (Holm-Bonferroni); "
    "Wilcoxon: two-sided signed-rank p on the same pairs (exact for small n; it cannot go below 0.5 with "
    "2 pairs or 0.25 with 3). See docs/statistics.md."
)
PER_CLASS_NOTE = (
    "support: the class's test rows (per run; mean over the group's runs when they differ); precision, recall, "
    "F1: mean over the group's runs. A small support makes a class's scores noisy."
)
CI_NOTE = (
    f"{CONFIDENCE:.0%} CI of the mean: Student t over the runs, cut to [0, 1] for fractions (accuracy, "
    "precision, recall, F1, AUROC, ECE); for a group of one run, a percentile bootstrap over its test rows "
    "(resampled from its confusion matrix: accuracy and precision/recall/F1 only), else none."
)


def build_document(reports: Report | list[Report], *, errors: int = DEFAULT_K) -> Document:
    """The whole report; figures are drawn later, and only by the renderers that show them. ``errors``: rows per
    error-analysis gallery (0: no error analysis). Several reports (one per dataset, ``analyse_datasets``): each
    gets its own sections, titled with what sets its dataset apart; failed runs are listed once."""
    reports = [reports] if isinstance(reports, Report) else reports
    report = reports[0]
    sections = [*across_sections(report)]
    for part in reports:
        own = (
            ranking(part),
            comparison(part),
            *filter(None, [ensemble_section(part)]),
            *details(part),
            *error_sections(part, errors),
            *eval_sections(part),
        )
        sections += [replace(s, title=f"{s.title} — {part.dataset}") if part.dataset else s for s in own]
    sections.append(failed(replace(report, failed=[r for part in reports for r in part.failed])))
    data = [data_table(part) for part in reports]
    return Document(
        TITLE, intro(reports), tuple(sections), replace(data[0], rows=tuple(r for d in data for r in d.rows))
    )


def ranked_by(metric: str, specs: MetricSpecs) -> str:
    """The header's first sentence: what ranks the groups, and that test values never choose."""
    direction = "lower" if specs.lower_is_better(metric) else "higher"
    if metric.startswith("val/"):
        return (
            f"Ranked and chosen by {metric}, on the validation set ({direction} is better); test values are shown "
            f"beside it ({test_twin(metric)}) as the held-out estimate and are never used to rank or choose."
        )
    return (
        f"Ranked by {metric} ({direction} is better), chosen with --metric. Choosing a model by a test score makes "
        "that score optimistic: rank by a val/ metric (the default) to keep the test set for the final estimate."
    )


def intro(reports: list[Report]) -> tuple[Paragraph, ...]:
    """The sentences that say how to read the numbers, and (on the page) which dirs were read."""
    report = reports[0]
    completed = sum(len(g.runs) for part in reports for g in part.groups)
    groups = sum(len(part.groups) for part in reports)
    failed_runs = sum(len(part.failed) for part in reports)
    lines = [
        ranked_by(report.metric, report.specs),
        (
            f"Cells: mean ± std [{CONFIDENCE:.0%} CI] over the n runs of a group (seeds, folds); std {DASH} where a "
            "group has one run."
        ),
        CI_NOTE,
        f"A group is the runs with the same overrides, ignoring {', '.join(report.ignore) or 'nothing'}.",
        f"Runs: {completed} completed in {groups} group(s), {failed_runs} failed or incomplete.",
    ]
    if len(reports) > 1:
        names = "; ".join(f"{part.dataset} ({sum(len(g.runs) for g in part.groups)} runs)" for part in reports)
        lines.append(
            f"{len(reports)} datasets or tasks, each ranked on its own (runs of different data or tasks are never "
            f"ranked or paired together; --across compares methods over datasets): {names}."
        )
    out = [Paragraph((line,), warning=True) for line in report.notes]
    out += [Paragraph((line,), note=True) for line in lines]
    if report.inputs:
        parts: list[str | Code] = ["Inputs: "]
        for i, path in enumerate(report.inputs):
            parts += [", ", Code(path)] if i else [Code(path)]
        out.append(Paragraph(tuple(parts), note=True, detail=True))
    return tuple(out)


def _highlight(report: Report) -> tuple[bool, ...]:
    return tuple(g is report.baseline for g in report.groups)


def ranking(report: Report) -> Section:
    """Groups in rank order with the ranking metric and its test twin, the headline test metrics, the bar chart
    and how to read its labels."""
    metrics, names = report.ranking_metrics(), report.short_names()
    head = ("rank", "group", "n", *(header(m, report.specs) for m in metrics))
    rows = tuple(
        (fmt(g.rank, 0) if g.rank else DASH, names[g.name], str(len(g.runs)), *map(fmt_summary, _stats(g, metrics)))
        for g in report.groups
    )
    if not rows:
        return Section("Ranking", (Paragraph(("No completed runs.",)),))
    blocks: list[Block] = [Table(head, rows, highlight=_highlight(report))]
    if headline := [m for m in report.main_metrics() if m not in metrics]:
        blocks.append(
            Paragraph(
                ("Test metrics, mean ± std over each group's runs (intervals: all test metrics, report.csv):",),
                note=True,
            )
        )
        cells = tuple(
            (names[g.name], *(fmt_summary(s, interval=False) for s in _stats(g, headline))) for g in report.groups
        )
        blocks.append(
            Table(
                ("group", *(header(m, report.specs) for m in headline)),
                cells,
                numeric_from=1,
                highlight=_highlight(report),
            )
        )
    if report.baseline is not None:
        blocks.append(
            Paragraph(("Highlighted: the baseline ", Code(report.short_names()[report.baseline.name]), "."), note=True)
        )
    blocks.append(Figure(partial(plots.bar_chart, report), f"{report.metric} per group"))
    blocks.append(
        Paragraph(
            ("Bars: mean over each group's runs (n in the label); error bars: ± 1 std over the runs.",),
            note=True,
            detail=True,
        )
    )
    if common := report.common_overrides():
        blocks.append(
            Paragraph((f"Group labels leave out the overrides every group shares: {', '.join(common)}.",), note=True)
        )
    return Section("Ranking", tuple(blocks))


def _stats(g: Group, metrics: list[str]) -> list[Summary | None]:
    return [g.stats.get(m) for m in metrics]


def comparison(report: Report) -> Section:
    """Every group minus the baseline on paired runs."""
    if report.baseline is None:
        blocks: list[Block] = [Paragraph(("No completed runs, so no baseline.",))]
    else:
        names = report.short_names()
        metric = (
            f"Compared on {report.compared}, the held-out test score (groups were ranked on {report.metric}); "
            if report.compared != report.metric
            else f"Compared on {report.metric}; "
        )
        blocks = [
            Paragraph(
                ("Baseline: ", Code(names[report.baseline.name]), f". {metric}mean diff: group - baseline."),
                note=True,
            ),
        ]
    if report.comparisons:
        several = len({c.baseline for c in report.comparisons}) > 1  # --across: one baseline per dataset
        head = (
            "group",
            *(("baseline",) if several else ()),
            "test",
            "pairs",
            "mean diff",
            "t",
            "p",
            "p (Holm)",
            "p (Wilcoxon)",
        )
        rows = tuple(
            (
                names.get(c.group, c.group),
                *((names.get(c.baseline, c.baseline),) if several else ()),
                fmt_test(c),
                str(c.test.pairs),
                fmt_diff(c),
                fmt_t(c),
                fmt_p(c.test.p),
                fmt_p(c.test.p_holm),
                fmt_p(c.test.wilcoxon_p),
            )
            for c in report.comparisons
        )
        blocks.append(Table(head, rows, numeric_from=3 if several else 2))
        blocks.append(Paragraph((COMPARISON_NOTE,), note=True))
    return Section("Paired comparison against the baseline", tuple(blocks))


def details(report: Report) -> tuple[Section, ...]:
    """The page's extra sections: learning curves, confusion matrices, per-class F1, all test metrics."""
    return (
        Section(
            "Learning curves",
            (
                Figure(partial(plots.learning_curves, report), "validation curves"),
                Paragraph(
                    ("Lines: mean over each group's runs that reached the epoch; bands: ± 1 std over them.",),
                    note=True,
                ),
            ),
            detail=True,
        ),
        Section(
            "Confusion matrices",
            (
                Paragraph(
                    (
                        "Summed over each group's runs (n in each title), normalized per row (rows = true class); "
                        f"cell values shown up to {plots.CELL_NUMBERS_UP_TO} classes.",
                    ),
                    note=True,
                ),
                Figure(partial(plots.confusion_matrices, report), "confusion matrices"),
            ),
            detail=True,
        ),
        Section(
            "Per-class scores (mean over runs)",
            (per_class(report), Paragraph((PER_CLASS_NOTE,), note=True)),
            detail=True,
        ),
        Section("All test metrics", (all_metrics(report),), detail=True),
    )


def per_class(report: Report) -> Table | Paragraph:
    """One row per group and class: support beside precision, recall and F1 (a classification report per group;
    the group's name and run count only on its first row)."""
    kinds = ("support", "precision", "recall", "f1")
    rows, highlight = [], []
    names = report.short_names()
    for g in report.groups:
        means = {kind: per_class_mean(g, kind) for kind in kinds}
        support = means["support"]
        labels = dict.fromkeys([*means["f1"], *means["precision"], *means["recall"]])  # metrics.json order
        for i, label in enumerate(labels):
            count = support.get(label)
            shown = DASH if count is None else f"{count:.0f}" if count.is_integer() else f"{count:.1f}"
            scores = (fmt(means[kind].get(label)) for kind in kinds[1:])
            rows.append((names[g.name] if i == 0 else "", label, str(len(g.runs)) if i == 0 else "", shown, *scores))
            highlight.append(g is report.baseline)
    if not rows:
        return Paragraph(("No per-class metrics.",))
    head = ("group", "class", "n", "support", "precision", "recall", "F1")
    return Table(head, tuple(rows), highlight=tuple(highlight))


def all_metrics(report: Report) -> Table | Paragraph:
    """One row per test metric, one column per group (a sweep has fewer groups than metrics: it fits the page)."""
    metrics = [m for m in report.all_metrics() if m.startswith("test/")]
    if not metrics:
        return Paragraph(("No test metrics.",))
    names = report.short_names()
    head = ("metric", *(f"{names[g.name]} (n={len(g.runs)})" for g in report.groups))
    rows = tuple((header(m, report.specs), *(fmt_summary(g.stats.get(m)) for g in report.groups)) for m in metrics)
    return Table(head, rows, numeric_from=1)


def failed(report: Report) -> Section:
    if not report.failed:
        return Section("Failed / incomplete runs", (Paragraph(("None.",)),))
    rows = tuple((report.shown_path(r), r.problem or r.status, ",".join(r.overrides)) for r in report.failed)
    return Section("Failed / incomplete runs", (Table(("run", "status", "overrides"), rows, numeric_from=3),))


def data_table(report: Report) -> Table:
    """One row per group: rank, n, mean/std/CI of every test metric, and the baseline comparison (report.csv)."""
    metrics = report.all_metrics()
    head = ["group", "label", "dataset", "rank", "n"]
    for m in metrics:
        head += [f"{m}_mean", f"{m}_std", f"{m}_ci_low", f"{m}_ci_high", f"{m}_ci_method"]
    comparison_head = ["baseline", "pairs", "mean_diff", "test", "test_ratio", "t", "p_value", "p_holm", "p_wilcoxon"]
    head += comparison_head
    by_group = {c.group: c for c in report.comparisons}
    rows = []
    names = report.short_names()
    for g in report.groups:
        row = [g.name, names[g.name], report.dataset, _raw(g.rank), _raw(len(g.runs))]
        for m in metrics:
            s = g.stats.get(m)
            row += (
                [""] * 5
                if s is None
                else [_raw(s.mean), _raw(s.std), _raw(s.ci_low), _raw(s.ci_high), s.ci_method or ""]
            )
        c = by_group.get(g.name)
        if c is None:
            row += [""] * len(comparison_head)
        else:
            t = c.test
            row += [c.baseline, _raw(t.pairs), _raw(t.mean_diff), t.test, _raw(t.test_ratio), _raw(t.t), _raw(t.p)]
            row += [_raw(t.p_holm), _raw(t.wilcoxon_p)]
        rows.append(tuple(row))
    return Table(tuple(head), tuple(rows), numeric_from=3)


def _raw(value: float | None) -> str:
    """Full precision, as ``str`` writes it; blank for a missing value (or rank)."""
    return "" if value is None else str(value)
