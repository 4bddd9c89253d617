"""A fast plain-torch mirror of ``experiment=pretrained``'s trainable part, on the frozen features mmexp cached.

Why: on 2 shared CPU cores a Lightning job of the preset takes ~40 s (startup, checkpoints, evaluation), of which
training the fusion + head is ~2 s. This script replays that training on the cached pooled features (per-modality
LayerNorm -> fusion -> MLP head; AdamW, cosine schedule, batch 32; the same k-fold splits as ``split=kfold``) so
head settings and the attention fusion's modality weights can be studied on many splits. It is a check, not the
evidence: docs/results.md ranks fusions from real mmexp runs. Tokens are not used: pooled fusions only.

Per run it prints the test macro-F1 of the best-val epoch over all epochs and with early stopping (patience,
as ``callbacks=early_stopping``), the best epoch, and for ``attention`` the val modality weights at that epoch.

    python scripts/frozen_head_mirror.py --data /work/data/cm_memes --cache /work/cache/features \\
        --fusion attention --seeds 0 --trace
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics.functional import f1_score

from mmexp.contracts import EncoderOutput
from mmexp.data.splits import kfold_split
from mmexp.models.fusion import pooled

FUSIONS: dict[str, Any] = {
    "concat": pooled.ConcatFusion,
    "attention": pooled.AttentionFusion,
    "gated": pooled.GatedFusion,
    "late": pooled.LateFusion,
    "sum": pooled.SumFusion,
}


def load_features(data: Path, cache: Path) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Pooled image (1280-d EfficientNet-Lite0) and text (384-d MiniLM) features of every manifest row, by row."""
    rows = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines() if line.strip()]
    names = sorted({r["label"] for r in rows})
    labels = np.array([names.index(r["label"]) for r in rows])
    feats: dict[str, torch.Tensor] = {}
    for path in sorted(cache.glob("features-*.pt"), key=lambda p: p.stat().st_mtime):
        pooled_rows = torch.load(path, map_location="cpu", weights_only=True)["pooled"]
        if len(pooled_rows) == len(rows):
            feats.setdefault("image" if pooled_rows.shape[1] == 1280 else "text", pooled_rows.float())
    if set(feats) != {"image", "text"}:
        raise SystemExit(f"no cached image and text features of {len(rows)} rows in {cache}: run the preset once")
    return feats, labels


def one_run(
    feats: dict[str, torch.Tensor], labels: np.ndarray, a: argparse.Namespace, fold: int, split_seed: int, seed: int
) -> dict[str, Any]:
    split = kfold_split(labels, k=5, fold=fold, val=0.15, seed=split_seed)
    classes = int(labels.max()) + 1
    y = torch.tensor(labels)
    torch.manual_seed(seed)
    dims = {m: f.shape[1] for m, f in feats.items()}
    fusion = FUSIONS[a.fusion](dims=dims, num_classes=classes)
    norms = nn.ModuleDict({m: nn.LayerNorm(d) for m, d in dims.items()})
    head: nn.Module = nn.Identity()
    if not fusion.produces_logits:
        head = (
            nn.Sequential(
                nn.Linear(fusion.out_dim, a.head_hidden),
                nn.ReLU(),
                nn.Dropout(a.dropout),
                nn.Linear(a.head_hidden, classes),
            )
            if a.head_hidden
            else nn.Linear(fusion.out_dim, classes)
        )
    model = nn.ModuleList([fusion, norms, head])
    optimizer = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=a.epochs)

    def inputs(index: torch.Tensor) -> dict[str, EncoderOutput]:
        return {
            m: EncoderOutput(norms[m](feats[m][index]), feats[m][index, None], torch.ones(len(index), 1).bool())
            for m in dims
        }

    def score(index: np.ndarray) -> tuple[float, float, float]:
        model.eval()
        with torch.no_grad():
            ix = torch.tensor(index)
            x = inputs(ix)
            pred = head(fusion(x)).argmax(-1)
            f1 = float(f1_score(pred, y[ix], task="multiclass", num_classes=classes, average="macro"))
            if not hasattr(fusion, "modality_weights"):
                return f1, math.nan, math.nan
            w = fusion.modality_weights(x)
            entropy = -(w * w.clamp_min(1e-12).log()).sum(-1) / math.log(w.shape[-1])
            return f1, float(w[:, 0].mean()), float(entropy.mean())

    train = torch.tensor(split.train)
    order = torch.Generator().manual_seed(seed)
    trace: list[tuple[float, ...]] = []
    best: dict[str, Any] = {"val": -1.0}
    stopped: dict[str, Any] | None = None
    since_best = 0
    for epoch in range(a.epochs):
        model.train()
        correct = 0
        for batch in torch.split(train[torch.randperm(len(train), generator=order)], 32):
            logits = head(fusion(inputs(batch)))
            loss = nn.functional.cross_entropy(logits, y[batch])
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # untyped in torch 2.13
            optimizer.step()
            correct += int((logits.argmax(-1) == y[batch]).sum())
        schedule.step()
        val, w_image, entropy = score(split.val)
        trace.append((round(correct / len(train), 3), round(val, 3), round(w_image, 3), round(entropy, 3)))
        if val > best["val"]:
            best = {
                "val": val,
                "test": score(split.test)[0],
                "epoch": epoch + 1,
                "w_image": w_image,
                "entropy": entropy,
            }
            since_best = 0
        else:
            since_best += 1
        if stopped is None and since_best >= a.patience:
            stopped = dict(best)
    return {"all": best, "early_stopped": stopped or best, "trace": trace}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--cache", type=Path, default=Path("outputs/cache/features"))
    p.add_argument("--fusion", choices=sorted(FUSIONS), default="concat")
    p.add_argument("--head-hidden", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--split-seeds", default="0,1")
    p.add_argument("--seeds", default="0", help="model seeds (init, shuffling), comma-separated")
    p.add_argument("--trace", action="store_true", help="print (train acc, val F1, image weight, entropy) per epoch")
    a = p.parse_args()
    torch.set_num_threads(1)
    feats, labels = load_features(a.data, a.cache)
    results: dict[str, list[float]] = {"all": [], "early_stopped": []}
    for split_seed in (int(s) for s in a.split_seeds.split(",")):
        for fold in range(5):
            for seed in (int(s) for s in a.seeds.split(",")):
                r = one_run(feats, labels, a, fold, split_seed, seed)
                for kind in results:
                    results[kind].append(r[kind]["test"])
                b, e = r["all"], r["early_stopped"]
                print(
                    f"{a.fusion} split.seed={split_seed} fold={fold} seed={seed}: "
                    f"test {b['test']:.3f} (epoch {b['epoch']}), "
                    f"early-stopped {e['test']:.3f} (epoch {e['epoch']}); image weight {b['w_image']:.3f}, "
                    f"entropy {b['entropy']:.3f}",
                    flush=True,
                )
                if a.trace:
                    print("   per epoch (train acc, val F1, image weight, entropy):", r["trace"])
    for kind, values in results.items():
        v = np.array(values)
        print(f"== {a.fusion} {kind}: test macro-F1 {v.mean():.3f} sd {v.std(ddof=1):.3f} (n={len(v)})")


if __name__ == "__main__":
    main()
