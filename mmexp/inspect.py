"""`python -m mmexp.inspect data=folder data.root=...`: validate and summarize a dataset, no training."""

from __future__ import annotations

from collections import Counter
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from mmexp import resolvers  # noqa: F401  (registers the config resolvers)
from mmexp.config_checks import check_config
from mmexp.errors import ConfigError


def _top(counter: Counter, n: int = 8) -> str:
    items = [f"{key}: {count}" for key, count in counter.most_common(n)]
    more = f", … ({len(counter) - n} more)" if len(counter) > n else ""
    return ", ".join(items) + more


def summarize(datamodule: Any) -> str:
    """Plain-text report of an already set-up datamodule (run with on_bad_record=skip)."""
    from PIL import Image

    from mmexp.data.text import tokenize

    records, split = datamodule.records, datamodule.split
    lengths = np.array([len(tokenize(r.text)) for r in records])
    sizes, modes = Counter(), Counter()
    for r in records:
        with Image.open(r.image) as im:
            sizes[f"{im.width}x{im.height}"] += 1
            modes[im.mode] += 1
    reasons = Counter(b.reason.split(" (")[0].split(":")[0] for b in datamodule.skipped)
    labels = Counter(r.label for r in records)
    pct = np.percentile(lengths, [5, 50, 95]).round().astype(int).tolist() if len(lengths) else [0, 0, 0]
    lines = [
        f"manifest:     {datamodule.manifest}",
        f"rows:         {len(records)} usable, {len(datamodule.skipped)} bad",
        f"bad rows:     {_top(reasons) or 'none'}",
        *(f"  line {b.line}: {b.reason}" for b in datamodule.skipped[:10]),
        f"classes ({len(labels)}): {_top(labels, 20)}",
        f"text tokens:  p5 {pct[0]}, median {pct[1]}, p95 {pct[2]}, max {lengths.max(initial=0)}; "
        f"{int((lengths == 0).sum())} texts with no tokens; vocab (train) {len(datamodule.vocab)}",
        f"image sizes:  {_top(sizes)}",
        f"image modes:  {_top(modes)}",
        f"split:        train {len(split.train)}, val {len(split.val)}, test {len(split.test)}",
        f"leakage:      {datamodule.leaks.describe() if datamodule.leaks else 'not checked (split.on_leak=ignore)'}",
    ]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="conf", config_name="inspect")
def main(cfg: DictConfig) -> None:
    try:
        check_config(cfg)
        datamodule = hydra.utils.instantiate(cfg.data, on_bad_record="skip", on_leak="warn")
        datamodule.prepare_data()
        datamodule.setup()
    except ConfigError as e:
        raise SystemExit(f"mmexp: error: {e}") from None
    print(summarize(datamodule))


if __name__ == "__main__":
    main()
