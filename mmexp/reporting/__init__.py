"""Pieces of ``python -m mmexp.report`` (cli.py): find and load run dirs, group them, do the statistics, render.

runs.py (read run dirs) -> groups.py + evals.py (group, rank, pair against a baseline; numbers from stats.py,
on scipy.stats; across.py ranks methods over datasets for ``--across``)
-> sections.py + eval_sections.py (one report model, document.py; cells from formatting.py)
-> markdown.py (report.md), csv_file.py (report.csv), html.py + plots.py (report.html). Only run-dir files are read.
"""
