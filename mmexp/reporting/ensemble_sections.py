"""The report's "Ensemble of the sweep" section: the ensemble against the best single group, and its members."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmexp.reporting.document import Block, Paragraph, Section, Table
from mmexp.reporting.ensemble import OVERRIDE
from mmexp.reporting.formatting import fmt, fmt_diff, fmt_p, fmt_summary, fmt_t, fmt_test
from mmexp.reporting.groups import (
    Comparison,
    Group,
    Report,
    _paired_values,
    metric_value,
    pair_test,
)

NOTE = (
    "Each ensemble averages the probabilities of the runs of one replicate (same seed, split.fold, split.seed), "
    "weighted by greedy forward selection with replacement on the validation predictions (Caruana et al. 2004); "
    "its validation score is therefore optimistic (it chose the weights), its test score is not: test rows were "
    "read once, after the choice. The best single group is the group other than the ensemble with the best mean "
    "validation score (chosen on validation even when the report ranks on test). Decisions and metrics follow the "
    "runs' own rules (val-tuned thresholds for binary and "
    "multilabel). Weights and scores of every ensemble: ensembles/members.json. See docs/ensembles.md."
)


@dataclass(frozen=True)
class EnsembleView:
    """The ensemble group, the best single group and their paired comparison on the test metric."""

    ensemble: Group
    best: Group | None
    comparison: Comparison | None


def ensemble_view(report: Report) -> EnsembleView | None:
    """None when the report has no ensemble group (``--ensemble`` not given, or no run with val predictions)."""
    ensemble = next((g for g in report.groups if OVERRIDE in g.overrides), None)
    if ensemble is None:
        return None
    best = best_single(report, ensemble)
    if best is None:
        return EnsembleView(ensemble, None, None)
    metric = report.compared
    mine, theirs = _paired_values(ensemble, metric), _paired_values(best, metric)
    keys = sorted(set(mine) & set(theirs), key=repr)
    test = pair_test([mine[k] for k in keys], [theirs[k] for k in keys], keys, [*ensemble.runs, *best.runs])
    return EnsembleView(ensemble, best, Comparison(ensemble.name, best.name, metric, test))


def best_single(report: Report, ensemble: Group) -> Group | None:
    """The group with the best mean validation score (the ranking metric's ``val/`` version, even when the report
    ranks on test) other than the ensemble; ties go to the report's order."""
    metric = "val/" + report.metric.split("/", 1)[-1]
    sign = 1.0 if report.specs.lower_is_better(metric) else -1.0
    scored = [g for g in report.groups if g is not ensemble and metric in g.stats]
    return min(scored, key=lambda g: sign * g.stats[metric].mean, default=None)


def ensemble_section(report: Report) -> Section | None:
    """The ensemble against the best single group (paired test), then each ensemble's members and weights."""
    view = ensemble_view(report)
    if view is None:
        return None
    names, metric = report.short_names(), report.compared
    blocks: list[Block] = [Paragraph((NOTE,), note=True)]
    if view.best is None or view.comparison is None:
        blocks.append(Paragraph(("No single group is ranked, so there is nothing to compare the ensemble with.",)))
    else:
        c = view.comparison
        head = ("", "group", f"{metric} mean ± std", "test", "pairs", "mean diff", "t", "p", "p (Wilcoxon)")
        test = (fmt_test(c), str(c.test.pairs), fmt_diff(c), fmt_t(c), fmt_p(c.test.p), fmt_p(c.test.wilcoxon_p))
        ens, best = view.ensemble, view.best
        rows = (
            ("ensemble", names[ens.name], fmt_summary(ens.stats.get(metric), interval=False), *test),
            ("best single", names[best.name], fmt_summary(best.stats.get(metric), interval=False), *[""] * 6),
        )
        blocks.append(Table(head, rows, numeric_from=2))
    blocks.append(members_table(report, view.ensemble, names, metric))
    return Section("Ensemble of the sweep", tuple(blocks))


def members_table(report: Report, ensemble: Group, names: dict[str, str], metric: str) -> Table:
    """One row per ensemble: its replicate, its val and test scores and each member group's weight."""
    group_of = {str(run.path): g.name for g in report.groups for run in g.runs}
    rows = []
    for run in sorted(ensemble.runs, key=lambda r: repr(r.pair_key)):
        info = (run.metrics or {}).get("ensemble", {})
        weights = info.get("weights", {}) if isinstance(info, dict) else {}
        members = ", ".join(
            f"{names.get(group_of.get(path, ''), Path(path).name)} {w:.2f}"
            for path, w in sorted(weights.items(), key=lambda item: -item[1])
        )
        selected = str(info.get("selected_on", report.metric)) if isinstance(info, dict) else report.metric
        replicate = f"seed={run.seed}, fold={run.fold}, split.seed={run.split_seed}"
        rows.append((replicate, members, fmt(metric_value(run, selected)), fmt(metric_value(run, metric))))
    head = ("replicate", "members (weight)", "val (chose)", metric)
    return Table(head, tuple(rows), numeric_from=2)
