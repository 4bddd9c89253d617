"""The report's figures as base64 PNG strings, drawn with matplotlib's Agg canvas.

matplotlib is imported inside the functions so ``python -m mmexp.report --help`` stays fast, and
figures are built on their own Agg canvas (no pyplot, no global backend switch).
"""

from __future__ import annotations

import base64
import io
import itertools
import textwrap
from typing import TYPE_CHECKING, Any

from mmexp.reporting import evals
from mmexp.reporting.groups import Report, confusion, mean_curve
from mmexp.reporting.runs import CURVE_KEYS

if TYPE_CHECKING:
    from mmexp.reporting.across import Across

PAGE_WIDTH = 7.6  # inches at 100 dpi: a figure this wide is shown at full size in an 800 px window, so its
# 8-point text stays about 11 px on screen (a wider one is scaled down with its text)
CELL_NUMBERS_UP_TO = 12  # classes: above this, a confusion matrix's cells are too small for their numbers


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _to_base64(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no URL inside the file
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _cmap() -> Any:
    from matplotlib import colormaps

    return colormaps["tab10"]


def _colors(report: Report) -> dict[str, Any]:
    cmap = _cmap()
    return {g.name: cmap(i % 10) for i, g in enumerate(report.groups)}


def _wrap(text: str, width: int = 40) -> str:
    return "\n".join(textwrap.wrap(text.replace(",", ", "), width)) or text


def bar_chart(report: Report) -> str | None:
    """Ranking metric per group (best at the top), error bars = std over the group's runs."""
    groups = [g for g in report.groups if g.rank is not None]
    if not groups:
        return None
    colors, names = _colors(report), report.short_names()
    fig = _figure(PAGE_WIDTH, 1.2 + 0.55 * len(groups))
    ax = fig.add_subplot()
    means = [g.stats[report.metric].mean for g in groups]
    stds = [g.stats[report.metric].std or 0.0 for g in groups]
    ypos = list(range(len(groups)))[::-1]
    ax.barh(
        ypos,
        means,
        xerr=stds,
        capsize=4,
        color=[colors[g.name] for g in groups],
        edgecolor=["black" if g is report.baseline else "none" for g in groups],
    )
    ax.set_yticks(ypos, [_wrap(names[g.name], 30) + f"  (n={len(g.runs)})" for g in groups], fontsize=8)
    for y, m, s in zip(ypos, means, stds, strict=True):
        ax.text(m + s, y, f"  {m:.3f}", va="center", ha="left", fontsize=8)
    ax.set_xlabel(f"{report.metric}: mean over runs, error bars ± 1 std", fontsize=9)
    ax.margins(x=0.15)
    return _to_base64(fig)


def learning_curves(report: Report) -> str | None:
    """Validation curves per epoch (counted from 1, as the training log does), mean over each group's runs with a
    ±std band cut to [0, 1], the range of these metrics."""
    curves = {(g.name, key): mean_curve(g, key) for g in report.groups for key in CURVE_KEYS}
    if not any(curves.values()):
        return None
    from matplotlib.ticker import MaxNLocator

    colors, names = _colors(report), report.short_names()
    fig = _figure(PAGE_WIDTH, 3.6 + 0.2 * len(report.groups))
    axes = fig.subplots(1, len(CURVE_KEYS), squeeze=False)[0]
    for ax, key in zip(axes, CURVE_KEYS, strict=True):
        for group in report.groups:
            curve = curves[(group.name, key)]
            if not curve:
                continue
            epochs, mean, low, high = curve_band(curve)
            label = f"{_wrap(names[group.name], 45)} (n={len(group.runs)})"
            ax.plot(epochs, mean, marker="o", ms=3, color=colors[group.name], label=label)
            ax.fill_between(epochs, low, high, color=colors[group.name], alpha=0.15, linewidth=0)
        ax.set_title(f"{key}\nmean ± 1 std over runs", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.set_ylim(*_limits(ax.get_ylim()))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes), key=lambda hl: len(hl[0]))
    fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)) or 1, fontsize=8)
    return _to_base64(fig)


def curve_band(curve: dict[int, tuple[float, float]]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs counted from 1 (Lightning's epoch 0 is "epoch 1/N" in the training log), the means, and the
    mean ± std band cut to [0, 1], the range of the plotted metrics."""
    epochs = [e + 1 for e in curve]
    mean = [m for m, _ in curve.values()]
    low = [max(0.0, m - s) for m, s in curve.values()]
    high = [min(1.0, m + s) for m, s in curve.values()]
    return epochs, mean, low, high


def _limits(current: tuple[float, float]) -> tuple[float, float]:
    """The y range of a [0, 1] metric's panel: what is plotted, never past 0 or 1 (a little margin)."""
    low, high = max(0.0, current[0]), min(1.0, current[1])
    pad = 0.03 * max(high - low, 0.05)
    return max(-0.02, low - pad), min(1.02, high + pad)


def confusion_matrices(report: Report) -> str | None:
    """One row-normalized confusion matrix per group (summed over its runs); rows = true class. Cell numbers at
    8 points, drawn up to ``CELL_NUMBERS_UP_TO`` classes (two matrices a row up to 6 classes, one above)."""
    mats = [(g, m) for g in report.groups if (m := confusion(g)) is not None]
    names = report.short_names()
    if not mats:
        return None
    size = max(len(m[0]) for _, m in mats)
    ncols = min(2 if size <= 6 else 1, len(mats))
    nrows = -(-len(mats) // ncols)
    cell = PAGE_WIDTH / 2 if ncols == 2 else min(PAGE_WIDTH - 1.2, 3.0 + 0.35 * size)  # 1.2: the colour bar
    fig = _figure(PAGE_WIDTH if ncols == 2 else cell + 1.2, (cell + 0.3) * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    image = None
    for ax, (group, (labels, rows, used)) in zip(axes, mats, strict=False):
        image = ax.imshow(rows, vmin=0.0, vmax=1.0, cmap="Blues")
        ticks = list(range(len(labels)))
        ax.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(ticks, labels, fontsize=8)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{_wrap(names[group.name], 35)}\n({used} run{'s' if used != 1 else ''})", fontsize=9)
        if len(labels) <= CELL_NUMBERS_UP_TO:
            for i, row in enumerate(rows):
                for j, v in enumerate(row):
                    ax.text(
                        j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v > 0.5 else "black"
                    )
    for ax in axes[len(mats) :]:
        ax.set_visible(False)
    fig.colorbar(image, ax=list(axes[: len(mats)]), shrink=0.8, label="fraction of the true class")
    return _to_base64(fig)


def robustness_curves(report: Report) -> str | None:
    """Accuracy vs corruption severity, one panel per corruption, one line per eval group."""
    curves = {g.name: evals.robustness(g) for g in report.evals}
    counts = {g.name: len(g.evals) for g in report.evals}
    names = list(dict.fromkeys(name for by_name in curves.values() for name in by_name))
    if not names:
        return None
    cmap = _cmap()
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig = _figure(3.6 * ncols, 2.8 * nrows + 0.4 + 0.2 * len(curves))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        modality = ""
        for i, (group, by_name) in enumerate(curves.items()):
            if name in by_name:
                acc = by_name[name]["acc"]
                modality = by_name[name]["modality"]
                ax.plot(
                    range(len(acc)),
                    [a if a is not None else float("nan") for a in acc],
                    marker="o",
                    ms=3,
                    color=cmap(i % 10),
                    label=_wrap(f"{group} (n={counts[group]} evals, mean)", 60),
                )
        ax.set_title(f"{name} ({modality})", fontsize=9)
        ax.set_xlabel("severity", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes), key=lambda hl: len(hl[0]))
    fig.legend(handles, labels, loc="outside lower center", ncols=min(2, len(labels)) or 1, fontsize=8)
    return _to_base64(fig)


def reliability_diagrams(report: Report) -> str | None:
    """Per eval group: accuracy per confidence bin (bars) against the diagonal of perfect calibration."""
    diagrams = [(g.name, r) for g in report.evals if (r := evals.reliability(g)) is not None]
    if not diagrams:
        return None
    ncols = min(3, len(diagrams))
    nrows = -(-len(diagrams) // ncols)
    fig = _figure(3.4 * ncols, 3.4 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, r) in zip(axes, diagrams, strict=False):
        edges = r["edges"]
        lefts, widths = edges[:-1], [b - a for a, b in itertools.pairwise(edges)]
        ax.bar(
            lefts,
            [a or 0.0 for a in r["accuracy"]],
            width=widths,
            align="edge",
            color="#4c72b0",
            edgecolor="white",
            label="accuracy",
        )
        ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
        filled = [(c, n) for c, n in zip(r["confidence"], r["count"], strict=True) if n]
        ax.scatter(
            [c for c, _ in filled], [0.02] * len(filled), marker="|", color="black", s=30, label="mean confidence"
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top-1)", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        ax.set_title(f"{_wrap(name, 40)}\nECE {r['ece']:.3f}, n={sum(r['count'])}", fontsize=8)
    for ax in axes[len(diagrams) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="upper left")
    return _to_base64(fig)


def cliques(ranks: list[float], cd: float) -> list[tuple[int, int]]:
    """Maximal runs (first, last) of positions in ``ranks`` (sorted ascending) that span less than ``cd``."""
    out: list[tuple[int, int]] = []
    for i in range(len(ranks)):
        j = max(k for k in range(i, len(ranks)) if ranks[k] - ranks[i] < cd)
        if j > i and not any(a <= i and j <= b for a, b in out):
            out.append((i, j))
    return out


def cd_diagram(a: Across) -> str | None:
    """Demšar's critical-difference diagram: average ranks on an axis (1 = best, left), the CD as a bar,
    thick lines joining methods whose average ranks differ by less than the CD."""
    if a.cd is None or len(a.methods) < 2:
        return None
    k = len(a.methods)
    order = sorted(range(k), key=lambda i: a.average_ranks[i])
    ranks = [a.average_ranks[i] for i in order]
    names = [a.methods[i].replace(",", ", ") for i in order]
    half = (k + 1) // 2
    rows = max(half, k - half)
    fig = _figure(9, 1.3 + 0.3 * rows)
    ax = fig.add_subplot()
    margin = max(1.0, 0.45 * (k - 1))  # room for the labels on both sides
    ax.set_xlim(1 - margin, k + margin)
    ax.set_ylim(-(0.6 * rows + 0.4), 1.6)
    ax.axis("off")
    ax.hlines(0, 1, k, color="black", lw=1)
    for r in range(1, k + 1):
        ax.vlines(r, 0, 0.15, color="black", lw=1)
        ax.text(r, 0.25, str(r), ha="center", va="bottom", fontsize=8)
    ax.hlines(1.1, 1, 1 + a.cd, color="black", lw=1.5)
    ax.vlines([1, 1 + a.cd], 1.0, 1.2, color="black", lw=1.5)
    ax.text(1 + a.cd / 2, 1.25, f"CD = {a.cd:.2f} (Nemenyi, alpha = {a.alpha})", ha="center", va="bottom", fontsize=8)
    for pos, (rank, name) in enumerate(zip(ranks, names, strict=True)):
        left = pos < half
        y = -(pos + 1) * 0.6 if left else -(k - pos) * 0.6
        x_end = 1 - 0.2 * margin if left else k + 0.2 * margin
        ax.plot([rank, rank, x_end], [0, y, y], color="black", lw=0.8)
        label = f"{name} ({rank:.2f})" if left else f"({rank:.2f}) {name}"
        ax.text(x_end, y, f" {label} ", ha="right" if left else "left", va="center", fontsize=8)
    for line, (i, j) in enumerate(cliques(ranks, a.cd)):
        y = -0.15 - 0.12 * line
        ax.hlines(y, ranks[i] - 0.03, ranks[j] + 0.03, color="tab:red", lw=3)
    n = f"{len(a.datasets)} datasets, {a.metric}"
    ax.set_title(f"Average rank over {n} (1 = best); red: no significant difference", fontsize=9)
    return _to_base64(fig)
