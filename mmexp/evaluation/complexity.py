"""What a model costs: parameters, FLOPs per sample, inference latency, peak memory, training time.

Every number says how it was measured (device, batch size, kind of memory), because a latency from a
laptop CPU and one from a GPU are different quantities.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from mmexp.contracts import MODALITIES, Batch, EncoderOutput


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total and trainable (requires_grad) parameter counts; frozen encoders count only in the total."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params_total": total, "params_trainable": trainable}


def _tokens(input_shape: Sequence[int]) -> int:
    tokens = 1
    for n in input_shape[:-1]:
        tokens *= n
    return tokens


def _matrices(shapes: Sequence[Any]) -> int:
    return sum(s[0] * s[1] for s in shapes if isinstance(s, torch.Size) and len(s) == 2)


def _onednn_lstm_flops(input_shape: Sequence[int], w_ih: Any, w_hh: Any, *_: Any, **__: Any) -> int:
    """One layer and direction: 2 x tokens x (input + recurrent weight elements)."""
    return 2 * _tokens(input_shape) * _matrices([w_ih, w_hh])


def _cudnn_rnn_flops(input_shape: Sequence[int], weights: Sequence[Any], *_: Any, **__: Any) -> int:
    """All layers and directions: every 2-D weight meets every token once."""
    return 2 * _tokens(input_shape) * _matrices(weights)


def _rnn_formulas() -> dict[Any, Callable[..., int]]:
    """FlopCounterMode has no formula for the fused RNN kernels (oneDNN on CPU, cuDNN/MIOpen on GPU)."""
    formulas: dict[str, Callable[..., int]] = {
        "mkldnn_rnn_layer": _onednn_lstm_flops,
        "_cudnn_rnn": _cudnn_rnn_flops,
        "miopen_rnn": _cudnn_rnn_flops,
    }
    return {getattr(torch.ops.aten, name): f for name, f in formulas.items() if hasattr(torch.ops.aten, name)}


def flops_per_sample(forward: Callable[[], Any], batch_size: int) -> float:
    """FLOPs of one ``forward()`` call counted by torch's FlopCounterMode, divided by ``batch_size``.

    Counted: matmuls, convolutions, attention and fused RNN kernels (2 per multiply-add, so a
    Linear(i, o) is 2*i*o per sample, bias excluded). Elementwise ops, norms and activations count 0.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_rnn_formulas())
    with torch.no_grad(), counter:
        forward()
    return counter.get_total_flops() / max(batch_size, 1)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latency_seconds(forward: Callable[[], Any], device: torch.device, *, runs: int = 5, warmup: int = 1) -> float:
    """Median wall seconds of ``forward()`` over ``runs`` timed calls after ``warmup`` untimed ones.

    CUDA runs asynchronously, so the device is synchronized before reading each clock.
    """
    from mmexp.core.progress import progress

    times = []
    calls = warmup + max(runs, 1)
    log = logging.getLogger(__name__)
    with torch.no_grad(), progress("complexity: timing inference", calls, unit="batches", logger=log) as shown:
        for i in range(calls):
            _synchronize(device)
            start = time.perf_counter()
            forward()
            _synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
            shown.advance()
    return statistics.median(times)


STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_memory() -> None:
    """Start a run's peak-memory count afresh: a sweep under the basic launcher runs every job in one process,
    whose lifetime peak (``ru_maxrss``) would otherwise be every job's figure. Linux resets the peak resident set
    size when "5" is written to ``/proc/self/clear_refs``; elsewhere the lifetime peak is all there is."""
    for index in range(torch.cuda.device_count()):
        torch.cuda.reset_peak_memory_stats(index)
    with contextlib.suppress(OSError):
        CLEAR_REFS.write_text("5")


def peak_memory(device: torch.device) -> dict[str, Any]:
    """Peak CUDA memory allocated by tensors on a GPU; else the process's peak resident set size since
    ``reset_peak_memory`` (Linux ``VmHWM``), or over its lifetime where that cannot be reset."""
    if device.type == "cuda":
        return {
            "peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)),
            "peak_memory_kind": "cuda_max_memory_allocated",
        }
    with contextlib.suppress(OSError, StopIteration, ValueError):
        line = next(x for x in STATUS.read_text().splitlines() if x.startswith("VmHWM:"))
        return {"peak_memory_bytes": int(line.split()[1]) * 1024, "peak_memory_kind": "process_peak_rss"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "peak_memory_bytes": int(rss if sys.platform == "darwin" else rss * 1024),  # Linux reports KiB
        "peak_memory_kind": "process_max_rss",
    }


@runtime_checkable
class EncodersAndFusion(Protocol):
    """A model whose forward is its encoders then ``fuse`` (``MultimodalClassifier``): costed part by part."""

    encoders: nn.ModuleDict

    def fuse(self, features: dict[str, EncoderOutput]) -> torch.Tensor: ...


def model_complexity(
    model: nn.Module,
    batch: Batch,
    *,
    device: torch.device | str,
    latency_runs: int = 5,
    epoch_seconds: Sequence[float] = (),
    max_rows: int = 32,
    cost_cache: Path | None = None,
) -> dict[str, Any]:
    """All cost figures of ``model`` (moved to ``device``, measured in eval mode) on the first ``max_rows`` rows
    of ``batch``: every encoder runs uncached, so a large pretrained backbone on a full eval batch would cost
    minutes on a CPU for one figure.

    With ``cost_cache`` (a folder), a model made of encoders and a fusion is costed part by part: each encoder's
    FLOPs and latency come from the cache when that architecture was measured on this machine with inputs of
    this shape (see ``mmexp.evaluation.cost_cache``), and the model's figures are the parts' sums;
    ``encoder_costs`` says which encoders were measured and which read from the cache.

    ``epoch_seconds`` are training epoch times (see ``mmexp.training.callbacks.EpochTimer``); their mean is
    ``train_s_per_epoch`` (None when no epoch was timed, e.g. in an evaluation).
    """
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()
    batch = batch.first(max_rows).to(device).replace(modified=frozenset(MODALITIES))  # no cached features
    size = len(batch)
    try:
        if cost_cache is not None and isinstance(model, EncodersAndFusion):
            figures = costs_by_part(model, batch, device, latency_runs, cost_cache)
        else:
            figures = {
                "flops_per_sample": flops_per_sample(lambda: model(batch), size),
                "latency_s_per_batch": latency_seconds(lambda: model(batch), device, runs=latency_runs),
            }
        out = {
            **count_parameters(model),
            **figures,
            "latency_batch_size": size,
            "device": str(device),
            **peak_memory(device),
        }
    finally:
        model.train(was_training)
    out["train_s_per_epoch"] = statistics.fmean(epoch_seconds) if epoch_seconds else None
    out["train_epochs_timed"] = len(epoch_seconds)
    return out


def costs_by_part(
    model: EncodersAndFusion, batch: Batch, device: torch.device, runs: int, cache_dir: Path
) -> dict[str, Any]:
    """FLOPs per sample and latency of each encoder (cached or measured) plus those of the fusion and head,
    measured on the encoders' outputs (or zeros of their recorded shapes)."""
    from mmexp.evaluation.cost_cache import encoder_costs

    size = len(batch)

    def measure(forward: Callable[[], Any]) -> tuple[float, float]:
        return flops_per_sample(forward, size), latency_seconds(forward, device, runs=runs)

    features: dict[str, EncoderOutput] = {}
    flops = latency = 0.0
    sources = []
    with torch.no_grad():
        for modality, encoder in model.encoders.items():
            entry, features[modality], cached = encoder_costs(
                encoder, batch, device=device, runs=runs, cache_dir=cache_dir, measure=measure
            )
            flops += entry["flops_per_sample"]
            latency += entry["latency_s_per_batch"]
            sources.append(f"{modality}={'cache' if cached else 'measured'}")
    rest_flops, rest_latency = measure(lambda: model.fuse(features))
    return {
        "flops_per_sample": flops + rest_flops,
        "latency_s_per_batch": latency + rest_latency,
        "encoder_costs": ",".join(sources),
    }
