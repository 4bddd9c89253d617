"""Context for docs/results.md: per replicate, the plain (uniform) average of every run's probabilities, decided
and scored with the same code as `mmexp.report --ensemble` (thresholds re-tuned on the averaged val rows).

    python scripts/ensemble_uniform_average.py <sweep dir>
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mmexp.reporting.ensemble import average, replicates, targets, task_spec
from mmexp.reporting.ensemble_metrics import decision_metrics, thresholds_for
from mmexp.reporting.runs import find_run_dirs, load_run


def main(argv: list[str]) -> None:
    runs = [load_run(d) for d in find_run_dirs([Path(argv[0])])]
    pools, _ = replicates(runs)
    scores: list[float] = []
    for key in sorted(pools, key=repr):
        members = pools[key]
        task, sep = task_spec(members)
        classes = members[0].val.classes
        ids = {s: getattr(members[0], s).ids for s in ("val", "test")}
        p = {s: average([getattr(m, s).aligned(ids[s]) for m in members], [1] * len(members)) for s in ("val", "test")}
        y = {s: targets(task, getattr(members[0], s).labels, classes, sep) for s in ("val", "test")}
        t = thresholds_for(task, p["val"], y["val"])
        f1 = decision_metrics(task, p["test"], y["test"], t)["f1_macro"]
        scores.append(f1)
        print(f"fold={key[1][1]} runs={len(members)} uniform test/f1_macro={f1:.4f}")
    print(f"mean {np.mean(scores):.3f} ± {np.std(scores, ddof=1):.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
