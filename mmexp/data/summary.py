"""What ``python -m mmexp.inspect`` prints about a dataset: rows, bad rows, classes, texts, images, split."""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Sequence

import numpy as np
from PIL import Image

from mmexp.data.datamodule import MultimodalDataModule
from mmexp.data.task import each_class
from mmexp.data.text import tokenize

# What the suggested first run is, in one place: a result number quoted here must come with its spread across seeds.
FIRST_RUN_NOTE = "(pretrained encoders, frozen; mmexp[pretrained])"
# the inspect overrides that also decide what a training run reads: the data, how labels are read, the split, paths
CARRIED = ("data", "task", "split", "paths")
SKIP = "data.on_bad_record=skip"
# measured in docs/results.md ("Choosing the preset's fusion"): one run is one draw from this spread
SPREAD_NOTE = (
    "then:         repeat it with -m split=kfold split.fold=0,1,2,3,4 split.seed=0,1 and read the mean ± sd: "
    "on two real datasets its test macro-F1 had an sd of 0.012-0.023 over those 10 splits (docs/results.md)"
)


def _top(counter: Counter[str], n: int = 8) -> str:
    items = [f"{key}: {count}" for key, count in counter.most_common(n)]
    more = f", … ({len(counter) - n} more)" if len(counter) > n else ""
    return ", ".join(items) + more


def first_run(datamodule: MultimodalDataModule, overrides: Sequence[str] | None) -> list[str]:
    """The training command to try first, runnable as written: the inspect command's data, task, split and path
    overrides (``overrides``: as typed; None: rebuilt from the datamodule), and ``data.on_bad_record=skip`` when
    rows are bad, said on a second line with where the skipped rows will be listed (inspect makes no run dir)."""
    info = datamodule.info
    if overrides is None:
        task = [] if datamodule.task.name == "multiclass" else [f"task={datamodule.task.name}"]  # labels read this way
        data = [] if datamodule.synthetic is not None else ["data=folder", f"data.root={info.manifest.parent}"]
        carried = [*task, *data, *([f"data.manifest={info.manifest.name}"] if data else [])]
    else:
        carried = [o for o in overrides if o.lstrip("+~").split("=")[0].split(".")[0].split("@")[0] in CARRIED]
    if info.skipped:  # whatever inspect was given (it skips anyway), the run must skip to start
        carried = [o for o in carried if not o.lstrip("+").startswith("data.on_bad_record=")] + [SKIP]
    words = ["python -m mmexp.train", "experiment=pretrained", *map(shlex.quote, carried)]
    lines = [f"first run:    {' '.join(words)}   {FIRST_RUN_NOTE}"]
    if info.skipped:
        lines.append(
            f"              {len(info.skipped)} bad row(s): the run skips them ({SKIP}) and lists them in "
            "skipped.jsonl of its run dir"
        )
    return lines


def summarize(datamodule: MultimodalDataModule, overrides: Sequence[str] | None = None) -> str:
    """Plain-text report of an already set-up datamodule (run with on_bad_record=skip); ``overrides``: those of the
    inspect command, carried into the suggested first run."""
    info = datamodule.info
    records, split = info.records, info.split
    lengths = np.array([len(tokenize(r.text)) for r in records])  # untruncated, to choose data.text.max_tokens
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    for r in records:
        with Image.open(r.image) as im:
            sizes[f"{im.width}x{im.height}"] += 1
            modes[im.mode] += 1
    reasons = Counter(b.reason.split(" (")[0].split(":")[0] for b in info.skipped)
    labels = Counter(each_class(r.label for r in records))
    pct = np.percentile(lengths, [5, 50, 95]).round().astype(int).tolist() if len(lengths) else [0, 0, 0]
    lines = [
        f"manifest:     {info.manifest}",
        f"rows:         {len(records)} usable, {len(info.skipped)} bad",
        f"bad rows:     {_top(reasons) or 'none'}",
        *(f"  line {b.line}: {b.reason}" for b in info.skipped[:10]),
        f"classes ({len(labels)}): {_top(labels, 20)}",
        f"text tokens:  p5 {pct[0]}, median {pct[1]}, p95 {pct[2]}, max {lengths.max(initial=0)}; "
        f"{int((lengths == 0).sum())} texts with no tokens; vocab (train) {len(datamodule.tokenizer.tokens())}",
        f"image sizes:  {_top(sizes)}",
        f"image modes:  {_top(modes)}",
        f"split:        train {len(split.train)}, val {len(split.val)}, test {len(split.test)}",
        f"leakage:      {info.leaks.describe() if info.leaks else 'not checked (split.on_leak=ignore)'}",
        *first_run(datamodule, overrides),
        SPREAD_NOTE,
    ]
    return "\n".join(lines)
