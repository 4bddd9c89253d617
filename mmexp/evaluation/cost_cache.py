"""Each encoder's cost figures (FLOPs, latency) measured once per architecture, input shape and machine, and
reused from ``paths.cache_dir/costs`` by every later run.

A frozen pretrained backbone dominates a model's cost, and measuring it means running it uncached several
times: 1-1.5 minutes per ``experiment=pretrained`` job on 2 CPU cores, while the fusion and head it feeds cost
milliseconds. Its figures depend on its architecture, its input shape and the machine, never on the run, so
a sweep measures each backbone once and each job measures only what differs (the fusion and head) on
features of the recorded shapes. Weights are not part of the key: they change no FLOP count and no latency.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from mmexp.contracts import Batch, Encoder, EncoderOutput
from mmexp.core.io import write_json_atomic

FORMAT = 1  # bump when the entry's layout or what it measures changes


def machine(device: torch.device) -> str:
    """What a latency is a property of: the host, its cores or GPU, and torch's thread count."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return f"{platform.node()}|{platform.machine()}|{os.cpu_count()} cpus|{torch.get_num_threads()} threads|{gpu}"


def encoder_key(encoder: nn.Module, batch: Batch, device: torch.device, runs: int) -> str:
    """Changes with the encoder's class and architecture (its module tree with every layer's sizes), the shapes
    of the batch it reads, the machine, torch's version and the number of timed runs."""
    digest = hashlib.sha256(f"{type(encoder).__module__}.{type(encoder).__qualname__}\n{encoder!r}\n".encode())
    for tensor in (batch.image, batch.text_ids, batch.text_mask):
        digest.update(f"{tuple(tensor.shape)}:{tensor.dtype};".encode())
    digest.update(f"|{device.type}|{machine(device)}|torch {torch.__version__}|runs {runs}|{FORMAT}".encode())
    return digest.hexdigest()[:24]


def read_entry(path: Path) -> dict[str, Any] | None:
    """A cached entry, or None when absent or unreadable (it is measured again)."""
    with contextlib.suppress(OSError, ValueError):
        entry = json.loads(path.read_text())
        if isinstance(entry, dict) and {"flops_per_sample", "latency_s_per_batch", "shapes"} <= set(entry):
            return entry
    return None


def placeholder_output(entry: dict[str, Any], device: torch.device) -> EncoderOutput:
    """Zeros of the recorded output shapes (every token real): what the parts after the encoder cost does not
    depend on the values they read."""
    pooled, tokens, mask = (tuple(entry["shapes"][k]) for k in ("pooled", "tokens", "mask"))
    dtype = getattr(torch, entry.get("dtype", "float32"))
    return EncoderOutput(
        torch.zeros(pooled, dtype=dtype, device=device),
        torch.zeros(tokens, dtype=dtype, device=device),
        torch.ones(mask, dtype=torch.bool, device=device),
    )


def encoder_costs(
    encoder: nn.Module,
    batch: Batch,
    *,
    device: torch.device,
    runs: int,
    cache_dir: Path,
    measure: Callable[[Callable[[], Any]], tuple[float, float]],
) -> tuple[dict[str, Any], EncoderOutput, bool]:
    """(entry, output, cached): the encoder's figures from the cache, or measured with ``measure(forward)`` ->
    (FLOPs per sample, latency) and stored; its output (placeholder zeros when cached)."""
    path = cache_dir / f"cost-{encoder_key(encoder, batch, device, runs)}.json"
    entry = read_entry(path)
    if entry is not None:
        return entry, placeholder_output(entry, device), True
    outputs: list[EncoderOutput] = []
    flops, latency = measure(lambda: outputs.append(cast(Encoder, encoder).encode(batch)))
    out = outputs[0]
    entry = {
        "encoder": type(encoder).__qualname__,
        "flops_per_sample": flops,
        "latency_s_per_batch": latency,
        "batch_size": len(batch),
        "device": str(device),
        "dtype": str(out.pooled.dtype).removeprefix("torch."),
        "shapes": {"pooled": list(out.pooled.shape), "tokens": list(out.tokens.shape), "mask": list(out.mask.shape)},
    }
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs the next run a measurement
        write_json_atomic(path, entry)
    return entry, out, False
