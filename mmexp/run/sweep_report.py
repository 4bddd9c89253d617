"""A sweep ends with its report: report.md / .html / .csv in the sweep dir, its path and the top of the ranking.

The report is written by the code ``python -m mmexp.report <sweep dir>`` runs (its ``main``), so the two never
disagree; that command stays for combining sweeps. A report that cannot be written (every job failed, a
broken run dir) costs one warning, never the sweep: the runs are already on disk.
"""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

TOP_ROWS = 3  # ranking rows printed
REPORT_FILES = ("report.html", "report.md", "report.csv")


def write_report(sweep_dir: Path, *, ensemble: bool = False) -> str:
    """Run ``mmexp.report`` on ``sweep_dir`` (with ``--ensemble`` when asked); its markdown. RuntimeError with its
    own message when it fails."""
    from mmexp.reporting.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(sweep_dir), *(["--ensemble"] if ensemble else [])])
        except SystemExit as e:  # argparse's exit: a user-facing error line on stderr
            code = e.code if isinstance(e.code, int) else 1
    if code:
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"exit code {code}")
    return out.getvalue()


def attach_to_mlflow(config: DictConfig, sweep_dir: Path) -> int:
    """Log the report files as artifacts (``sweep_report/``) of each of the sweep's MLflow runs, so the MLflow UI
    shows the comparison beside every run; the number of runs. Nothing without an MLflow logger. A job's run has
    ended before the report exists, so the runs are found by their tags (``sweep``, ``run_dir``)."""
    uri = OmegaConf.select(config, "logger.mlflow.tracking_uri", default=None)
    if uri is None:
        return 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=str(uri))
    experiment = client.get_experiment_by_name(str(OmegaConf.select(config, "logger.mlflow.experiment_name")))
    if experiment is None:
        return 0
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.sweep = '{sweep_dir.name}'")
    inside = [r for r in runs if Path(r.data.tags.get("run_dir", "/")).resolve().parent == sweep_dir.resolve()]
    for run in inside:
        for name in REPORT_FILES:
            if (sweep_dir / name).is_file():
                client.log_artifact(run.info.run_id, str(sweep_dir / name), artifact_path="sweep_report")
    return len(inside)


def ranking_top(markdown: str, rows: int = TOP_ROWS) -> list[str]:
    """The header and the first ``rows`` rows of the ranking: the first table under "## Ranking", else the first."""
    lines = markdown.splitlines()
    after = next((i for i, line in enumerate(lines) if line.strip() == "## Ranking"), 0)
    start = next((i for i, line in enumerate(lines) if i >= after and line.startswith("|")), None)
    if start is None:
        return []
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return table[: 2 + rows]


class ReportSweep(Callback):
    """Hydra callback (``conf/hydra/default.yaml``): runs in the sweep's own process after its last job.

    ``ensemble`` (``hydra.callbacks.report_sweep.ensemble=true``): the report also holds the sweep's greedy
    ensemble (``mmexp.report --ensemble``, docs/ensembles.md). Off by default: it adds a group to every ranking.
    """

    def __init__(self, ensemble: bool = False) -> None:
        self.ensemble = ensemble

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            markdown = write_report(sweep_dir, ensemble=self.ensemble)
        except Exception as e:  # the report's own bug or a damaged run dir: the sweep's runs still stand
            flag = " --ensemble" if self.ensemble else ""
            print(
                f"mmexp: warning: no sweep report ({type(e).__name__}: {e}); "
                f"write it with `python -m mmexp.report {sweep_dir}{flag}`",
                file=sys.stderr,
            )
            return
        try:
            attach_to_mlflow(config, sweep_dir)
        except Exception as e:  # the report is on disk; a dashboard hiccup costs one line
            print(
                f"mmexp: warning: the sweep report was not logged to MLflow ({type(e).__name__}: {e})", file=sys.stderr
            )
        top = ranking_top(markdown)
        print(f"sweep report: {sweep_dir / 'report.html'} (also report.md, report.csv)")
        if top:
            print("\n".join(top))
