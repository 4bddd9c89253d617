"""How numbers look in the report's tables: one place, so every format shows the same text."""

from __future__ import annotations

from mmexp.reporting.groups import Comparison
from mmexp.reporting.metric_specs import MetricSpecs
from mmexp.reporting.stats import Summary

DASH = "–"


def fmt(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def fmt_summary(s: Summary | None, *, interval: bool = True) -> str:
    """``mean ± std [CI low, CI high]``; a single run shows ``mean ± – [CI]`` (its bootstrap interval) or
    ``mean ± –`` without one; ``interval=False``: ``mean ± std`` only."""
    if s is None:
        return DASH
    shown = interval and s.ci_low is not None and s.ci_high is not None
    interval_text = f" [{s.ci_low:.3f}, {s.ci_high:.3f}]" if shown else ""
    return f"{s.mean:.3f} ± {DASH if s.std is None else f'{s.std:.3f}'}{interval_text}"


def fmt_p(p: float | None) -> str:
    return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def fmt_diff(c: Comparison) -> str:
    return DASH if c.test.mean_diff is None else f"{c.test.mean_diff:+.3f}"


def fmt_t(c: Comparison) -> str:
    return "n/a" if c.test.t is None else f"{c.test.t:.2f}"


def fmt_test(c: Comparison) -> str:
    """The t-test's name, with n_test/n_train for the corrected one."""
    ratio = c.test.test_ratio
    return c.test.test if ratio is None else f"{c.test.test}, n_test/n_train={ratio:.3g}"


def header(metric: str, specs: MetricSpecs) -> str:
    """The metric with the direction that is better."""
    return f"{metric}{specs.arrow(metric)}"


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


def fmt_bin(low: float, high: float, closed: str) -> str:
    """A confidence bin: ``[a, b)`` for left-closed bins, ``(a, b]`` for right-closed ones (older eval.json)."""
    if low == high:
        return f"[{low:.2f}, {high:.2f}]"
    return f"[{low:.2f}, {high:.2f})" if closed == "left" else f"({low:.2f}, {high:.2f}]"
