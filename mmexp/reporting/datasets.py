"""Which runs may be counted, ranked and paired together: each run once, and only with runs of its dataset.

A run is identified by the id run_info.json records when it starts (``Run.identity``), so a copied run dir is
the same run and is counted once. A dataset is a run's data and task fingerprint (``runs.dataset_fingerprint``):
runs whose fingerprints differ are never ranked in one table nor paired, each dataset gets its own sections.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from mmexp.reporting.caveats import small_test_sets
from mmexp.reporting.groups import Report, analyse
from mmexp.reporting.runs import Run

CONTENT_KEYS = ("rows", "labels")  # digests: named only when no config key tells the datasets apart


def count_once(runs: list[Run]) -> tuple[list[Run], list[tuple[Run, list[Run]]]]:
    """The runs with each run once (a completed copy preferred, then path order), and each kept run with the
    dirs left out as its copies."""
    by_identity: dict[tuple[object, ...], list[Run]] = defaultdict(list)
    for run in runs:
        by_identity[run.identity].append(run)
    kept, copies = [], []
    for same in by_identity.values():
        first = next((r for r in same if r.ok), same[0])
        kept.append(first)
        if len(same) > 1:
            copies.append((first, [r for r in same if r is not first]))
    return kept, copies


def copies_line(copies: list[tuple[Run, list[Run]]], shown: Callable[[Run], str]) -> str | None:
    """One line naming the dirs counted once; ``shown``: how a run's path is written."""
    if not copies:
        return None
    n = sum(len(c) for _, c in copies)
    pairs = "; ".join(f"{', '.join(map(shown, same))} = {shown(first)}" for first, same in copies)
    return f"Counted once: {n} run dir(s) are copies of another (same run id in run_info.json), left out: {pairs}."


def split_by_dataset(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """The runs in one part per dataset fingerprint, each named by what sets it apart (empty with one part).

    Training runs that did not complete and eval dirs join the part of their fingerprint, else the first part.
    """
    by_print: dict[tuple[tuple[str, str], ...], list[Run]] = defaultdict(list)
    for run in runs:
        if run.kind == "train" and run.ok:
            by_print[run.dataset].append(run)
    if len(by_print) <= 1:
        return [("", runs)]
    names = dataset_names(list(by_print))
    parts = sorted(((names[p], members) for p, members in by_print.items()), key=lambda part: part[0])
    index = {name: i for i, (name, _) in enumerate(parts)}
    for run in runs:
        if not (run.kind == "train" and run.ok):
            parts[index.get(names.get(run.dataset, ""), 0)][1].append(run)
    return parts


def dataset_names(prints: list[tuple[tuple[str, str], ...]]) -> dict[tuple[tuple[str, str], ...], str]:
    """Each fingerprint as the ``key=value`` items that differ between them (config keys before digests)."""
    items = [dict(p) for p in prints]
    keys = sorted({k for d in items for k in d})
    differ = [k for k in keys if len({d.get(k) for d in items}) > 1]
    shown = [k for k in differ if k not in CONTENT_KEYS] or differ
    return {p: ", ".join(f"{k}={d.get(k, '(none)')}" for k in shown) for p, d in zip(prints, items, strict=True)}


def analyse_datasets(
    runs: list[Run],
    *,
    metric: str,
    baseline: str | None,
    ignore: tuple[str, ...],
    inputs: tuple[str, ...] = (),
    base_dir: Path | None = None,
    across: str | None = None,
) -> list[Report]:
    """``groups.analyse`` per dataset, each run counted once; the first report carries the notes every reader
    must see (copies left out, small test sets) and the ``--across`` ranking over all the datasets."""
    kept, copies = count_once(runs)
    parts = split_by_dataset(kept)
    wanted = [baseline if len(parts) == 1 else _baseline_in(baseline, members, ignore) for _, members in parts]
    if baseline is not None and not any(wanted):
        wanted[0] = baseline  # in no dataset: analyse says so, naming the groups
    reports = []
    for i, ((name, members), base) in enumerate(zip(parts, wanted, strict=True)):
        part = analyse(
            members,
            metric=metric,
            baseline=base,
            ignore=ignore,
            inputs=inputs,
            base_dir=base_dir,
            across=across,
        )
        reports.append(replace(part, dataset=name, across=part.across if i == 0 else None))
    if across is not None and len(parts) > 1:
        from mmexp.reporting.across import across as across_datasets

        trained = [run for run in kept if run.kind == "train"]
        whole = across_datasets(trained, key=across, metric=reports[0].metric, ignore=ignore)
        reports[0] = replace(reports[0], across=whole)
    first = reports[0]
    notes = [line for line in (copies_line(copies, first.shown_path), small_test_sets(kept)) if line]
    reports[0] = replace(first, notes=tuple(notes))
    return reports


def _baseline_in(requested: str | None, runs: list[Run], ignore: tuple[str, ...]) -> str | None:
    """With several datasets, ``--baseline`` applies in each dataset that has such a group (else the default)."""
    if requested is None:
        return None
    from mmexp.reporting.groups import ReportError, build_groups, choose_baseline

    try:
        choose_baseline(build_groups(runs, metric="val/f1_macro", ignore=ignore), requested)
    except ReportError:
        return None
    return requested
