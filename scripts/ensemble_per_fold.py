"""Per fold: the ensemble's test/f1_macro (ensembles/members.json) and each fusion's (metrics.json), as the
markdown table of docs/results.md ("Ensembles of a sweep").

    python scripts/ensemble_per_fold.py <sweep dir> <report dir of mmexp.report --ensemble>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sweep, report = Path(sys.argv[1]), Path(sys.argv[2])
members = json.loads((report / "ensembles" / "members.json").read_text())["ensembles"]
ens = {e["fold"]: e["test"]["test/f1_macro"] for e in members}
single: dict[str, dict[int, float]] = {}
for run in sorted(sweep.iterdir()):
    if (run / "metrics.json").is_file():
        fusion = run.name.split("fusion=")[1]
        fold = int(run.name.split("fold=")[1].split("_")[0])
        single.setdefault(fusion, {})[fold] = json.loads((run / "metrics.json").read_text())["test"]["test/f1_macro"]
folds = sorted(ens)
print("| fold | ensemble | " + " | ".join(single) + " |")
for f in folds:
    print(f"| {f} | {ens[f]:.3f} | " + " | ".join(f"{single[k][f]:.3f}" for k in single) + " |")
