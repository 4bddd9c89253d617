"""The loop a user would write by hand, on mmexp's model and data, run in a fresh process like mmexp's side.

    python scripts/bench_plain.py --out plain.json [--resident] [--compile] [--warmup N] [--steps N] -- OVERRIDES...

``scripts/bench.py`` runs it; both sides of every ratio start from a new interpreter, so neither inherits
the other's memory, threads or warm caches.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mmexp.app.compose import compose_train_config
from mmexp.contracts import Batch
from mmexp.data.dataset import collate
from mmexp.training.build import build_datamodule, build_model


class PerSample(torch.utils.data.Dataset[Batch]):
    """What a user would write: one sample per __getitem__, batched by the default collate."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Batch:
        return self.dataset[i]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(
    model: torch.nn.Module, batches: Iterator[Batch], steps: int, warmup: int, device: torch.device
) -> dict[str, float]:
    """Samples/s of forward + backward + AdamW step over ``batches`` after ``warmup`` steps, and the
    process CPU seconds (all threads) per sample: steadier than wall time on a shared machine."""
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    samples, t0, cpu0 = 0, 0.0, 0.0
    for step, batch in enumerate(batches):
        if step == warmup:
            sync(device)
            t0, cpu0 = time.perf_counter(), time.process_time()
        batch = batch.to(device, non_blocking=True)
        loss = F.cross_entropy(model(batch), batch.label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # untyped in torch 2.13
        optimizer.step()
        if step >= warmup:
            samples += len(batch)
        if step + 1 >= steps + warmup:
            break
    sync(device)
    return {
        "samples_per_s": samples / (time.perf_counter() - t0),
        "cpu_s_per_sample": (time.process_time() - cpu0) / samples,
    }


def loader_batches(dataset: Any, batch_size: int) -> Iterator[Batch]:
    """A standard DataLoader over per-sample items, epoch after epoch."""
    loader = torch.utils.data.DataLoader(PerSample(dataset), batch_size=batch_size, shuffle=True, collate_fn=collate)
    while True:
        yield from loader


def resident_batches(dataset: Any, batch_size: int, device: torch.device) -> Iterator[Batch]:
    """The ceiling: whole dataset on the device, each batch one index operation per tensor."""
    tensors = dataset.tensors  # a RowsDataset: its rows of the DatasetTensors
    full = (tensors.images, tensors.text_ids, tensors.text_mask, tensors.labels)
    images, ids, mask, labels = (t[dataset.rows].to(device) for t in full)
    while True:
        for idx in torch.split(torch.randperm(len(labels), device=device), batch_size):
            yield Batch(image=images[idx], text_ids=ids[idx], text_mask=mask[idx], label=labels[idx])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--resident", action="store_true", help="data on the device, whole-batch indexing")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's parts (inductor)")
    parser.add_argument("overrides", nargs="*", help="mmexp config overrides (model, data, batch size)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = compose_train_config(args.overrides, run_dir=Path(args.out).parent / "plain-run")
    datamodule = build_datamodule(cfg.data, cfg.text_encoder)
    datamodule.prepare_data()
    datamodule.setup()
    torch.manual_seed(0)
    model = build_model(
        cfg,
        num_classes=datamodule.num_classes,
        labels=datamodule.label_names,
        **datamodule.tokenizer.encoder_kwargs(),
    )
    if args.compile:
        model.compile_parts("inductor")
    train_set, batch_size = datamodule.train_dataloader().dataset, cfg.data.batch_size
    batches = (
        resident_batches(train_set, batch_size, device) if args.resident else loader_batches(train_set, batch_size)
    )
    Path(args.out).write_text(json.dumps(plain_loop(model, batches, args.steps, args.warmup, device)))


if __name__ == "__main__":
    main()
