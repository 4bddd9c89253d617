"""Pieces of ``python -m mmexp.report``: find and load run dirs, group them, do the statistics, render.

runs.py (read run dirs) -> groups.py (group, rank, pair against a baseline; numbers from stats.py)
-> tables.py (report.md, report.csv), plots.py + html.py (report.html). Only run-dir files are read.
"""
