"""What ``python -m mmexp.inspect`` prints about a dataset: rows, bad rows, classes, texts, images, split."""

from __future__ import annotations

from collections import Counter

import numpy as np
from PIL import Image

from mmexp.data.datamodule import MultimodalDataModule
from mmexp.data.task import each_class
from mmexp.data.text import tokenize

# measured in docs/results.md ("Choosing the preset's fusion"): one run is one draw from this spread
SPREAD_NOTE = (
    "then:         repeat it with -m split=kfold split.fold=0,1,2,3,4 split.seed=0,1 and read the mean ± sd: "
    "on two real datasets its test macro-F1 had an sd of 0.012-0.023 over those 10 splits (docs/results.md)"
)


def _top(counter: Counter[str], n: int = 8) -> str:
    items = [f"{key}: {count}" for key, count in counter.most_common(n)]
    more = f", … ({len(counter) - n} more)" if len(counter) > n else ""
    return ", ".join(items) + more


def summarize(datamodule: MultimodalDataModule) -> str:
    """Plain-text report of an already set-up datamodule (run with on_bad_record=skip)."""
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
    task = "" if datamodule.task.name == "multiclass" else f"task={datamodule.task.name} "  # labels read this way
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
        f"first run:    python -m mmexp.train experiment=pretrained {task}data=folder data.root={info.manifest.parent} "
        f"data.manifest={info.manifest.name}   (pretrained encoders, frozen; mmexp[pretrained])",
        SPREAD_NOTE,
    ]
    return "\n".join(lines)
