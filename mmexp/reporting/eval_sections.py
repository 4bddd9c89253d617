"""Report sections for training cost (metrics.json) and eval dirs: missing modalities, robustness, calibration."""

from __future__ import annotations

from functools import partial

from mmexp.reporting import evals, plots
from mmexp.reporting.document import Figure, Paragraph, Section, Table
from mmexp.reporting.formatting import DASH, fmt, fmt_bin, fmt_cost
from mmexp.reporting.groups import Report

ROBUSTNESS_NOTE = (
    "Accuracy at corruption severities 0 (clean) to 5, mean over each group's evals. Relative "
    "robustness: area under accuracy vs severity, severities mapped to [0, 1]. Effective "
    "robustness: mean accuracy kept beyond the unimodal baseline of the corrupted modality "
    "(both curves shifted to the same clean accuracy); – without a baseline."
)
MISSING_NOTE = (
    "Accuracy and macro-F1 with both inputs, with the image removed and with the text removed "
    "(mean over each group's evals). Reliance: share of accuracy lost without the modality, "
    "(acc both - acc without) / acc both."
)


def eval_sections(report: Report) -> tuple[Section, ...]:
    """The sections that have something to show; none without cost figures or eval dirs."""
    sections = (
        complexity(report),
        *((missing(report), robustness(report), calibration(report)) if report.evals else ()),
    )
    return tuple(s for s in sections if s is not None)


def complexity(report: Report) -> Section | None:
    """Mean cost per group, from metrics.json "complexity" (groups without one are left out)."""
    rows = []
    names = report.short_names()
    for g in report.groups:
        cost = evals.complexity(g.runs)
        if cost:
            rows.append(
                (names[g.name], str(len(g.runs)), *(fmt_cost(key, cost.get(key)) for key, _ in evals.COMPLEXITY))
            )
    if not rows:
        return None
    head = ("group", "n", *(label for _, label in evals.COMPLEXITY))
    return Section(
        "Complexity", (Paragraph(("Mean over each group's runs (metrics.json).",), note=True), Table(head, tuple(rows)))
    )


def missing(report: Report) -> Section:
    """Scores with each modality removed, and how much each group relies on each modality."""
    head = (
        "group",
        "evals",
        "acc both",
        "acc no image",
        "acc no text",
        "F1 both",
        "F1 no image",
        "F1 no text",
        "reliance image",
        "reliance text",
    )
    rows = []
    for g in report.evals:
        m = evals.missing_modality(g)
        rows.append(
            (
                g.name,
                str(len(g.evals)),
                *(fmt(m[c]["acc"]) for c in evals.MISSING),
                *(fmt(m[c]["f1_macro"]) for c in evals.MISSING),
                fmt(m["reliance"]["image"]),
                fmt(m["reliance"]["text"]),
            )
        )
    return Section("Missing modalities", (Paragraph((MISSING_NOTE,), note=True), Table(head, tuple(rows))))


def robustness(report: Report) -> Section | None:
    """Accuracy per corruption severity, with relative and effective robustness."""
    curves = {g.name: evals.robustness(g) for g in report.evals}
    steps = max((len(c["acc"]) for by_name in curves.values() for c in by_name.values()), default=0)
    rows = tuple(
        (
            group,
            name,
            c["modality"],
            *(fmt(a) for a in c["acc"]),
            *([DASH] * (steps - len(c["acc"]))),
            fmt(c["relative_robustness"]),
            fmt(c["effective_robustness"]),
        )
        for group, by_name in curves.items()
        for name, c in by_name.items()
    )
    if not rows:
        return None
    head = (
        "group",
        "corruption",
        "modality",
        *(f"acc s{s}" for s in range(steps)),
        "relative robustness",
        "effective robustness",
    )
    return Section(
        "Robustness",
        (
            Paragraph((ROBUSTNESS_NOTE,), note=True),
            Figure(partial(plots.robustness_curves, report), "accuracy vs corruption severity"),
            Table(head, rows, numeric_from=3),
        ),
    )


def calibration(report: Report) -> Section | None:
    """Non-empty reliability bins per group, pooled over its evals."""
    rows = []
    for g in report.evals:
        r = evals.reliability(g)
        if r is None:
            continue
        for i, count in enumerate(r["count"]):
            if count:
                rows.append(
                    (
                        g.name,
                        fmt_bin(r["edges"][i], r["edges"][i + 1], r["closed"]),
                        str(count),
                        fmt(r["confidence"][i]),
                        fmt(r["accuracy"][i]),
                        fmt(r["ece"]),
                    )
                )
    if not rows:
        return None
    head = ("group", "confidence bin", "predictions", "mean confidence", "accuracy", "ECE (group)")
    note = Paragraph(("Pooled over each group's evals; bars: accuracy per confidence bin.",), note=True, detail=True)
    return Section(
        "Calibration (reliability diagram)",
        (note, Figure(partial(plots.reliability_diagrams, report), "reliability diagrams"), Table(head, tuple(rows))),
    )
