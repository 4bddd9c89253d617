"""Per fold: the ensemble's test/f1_macro (ensembles/members.json) and each fusion's (metrics.json), as the
markdown table of docs/results.md ("Ensembles of a sweep").

    python scripts/ensemble_per_fold.py <sweep dir> <report dir of mmexp.report --ensemble>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    sweep, report = Path(argv[0]), Path(argv[1])
    members = json.loads((report / "ensembles" / "members.json").read_text())["ensembles"]
    ens = {e["fold"]: e["test"]["test/f1_macro"] for e in members}
    single: dict[str, dict[int, float]] = {}
    for run in sorted(sweep.iterdir()):
        if (run / "metrics.json").is_file():
            fusion = run.name.split("fusion=")[1]
            fold = int(run.name.split("fold=")[1].split("_")[0])
            metrics = json.loads((run / "metrics.json").read_text())
            single.setdefault(fusion, {})[fold] = metrics["test"]["test/f1_macro"]
    print("| fold | ensemble | " + " | ".join(single) + " |")
    for f in sorted(ens):
        print(f"| {f} | {ens[f]:.3f} | " + " | ".join(f"{single[k][f]:.3f}" for k in single) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
