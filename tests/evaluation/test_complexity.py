"""Cost figures: exact FLOPs on known layers, parameter counts, timers, and metrics.json's complexity block."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from mmexp.contracts import Batch
from mmexp.evaluation.complexity import (
    count_parameters,
    flops_per_sample,
    latency_seconds,
    model_complexity,
    peak_memory,
    reset_peak_memory,
)
from mmexp.train import train
from mmexp.training import callbacks
from mmexp.training.callbacks import EpochTimer


def test_flops_of_a_linear_layer_are_exactly_two_in_out_per_sample() -> None:
    layer, batch = nn.Linear(37, 11), torch.randn(8, 37)
    assert flops_per_sample(lambda: layer(batch), 8) == 2 * 37 * 11


@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True)])
def test_fused_lstm_kernels_are_counted(layers: int, bidirectional: bool) -> None:
    lstm, batch = nn.LSTM(8, 16, num_layers=layers, bidirectional=bidirectional, batch_first=True), torch.randn(2, 5, 8)
    directions = 2 if bidirectional else 1
    per_token = sum(4 * 16 * ((8 if layer == 0 else 16 * directions) + 16) * directions for layer in range(layers))
    assert flops_per_sample(lambda: lstm(batch), 2) == 2 * 5 * per_token


def test_parameter_counts_separate_frozen_weights() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert count_parameters(model) == {"params_total": 15 + 8, "params_trainable": 8}


def test_latency_is_a_median_and_cpu_memory_is_the_process_peak() -> None:
    calls = []
    seconds = latency_seconds(lambda: calls.append(1), torch.device("cpu"), runs=3, warmup=2)
    assert len(calls) == 5 and seconds >= 0
    memory = peak_memory(torch.device("cpu"))
    assert memory["peak_memory_kind"] == "process_peak_rss" and memory["peak_memory_bytes"] > 10 * 2**20


def test_peak_memory_is_counted_from_the_run_start_not_the_process_start() -> None:
    """A sweep under the basic launcher runs its jobs in one process: each job's peak must be its own."""
    reset_peak_memory()
    before = peak_memory(torch.device("cpu"))["peak_memory_bytes"]
    big = torch.ones(300 * 2**20 // 4)  # 300 MiB, touched
    during = peak_memory(torch.device("cpu"))["peak_memory_bytes"]
    del big
    reset_peak_memory()
    after = peak_memory(torch.device("cpu"))["peak_memory_bytes"]
    assert during > before + 250 * 2**20 and after < during - 250 * 2**20


def test_epoch_timer_leaves_validation_out(monkeypatch) -> None:
    clock = iter([0.0, 1.0, 3.0, 10.0])  # epoch start, validation start/end, epoch end
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    timer = EpochTimer()
    timer.on_train_epoch_start(None, None)
    timer.on_validation_epoch_start(None, None)
    timer.on_validation_epoch_end(None, None)
    timer.on_train_epoch_end(None, None)
    timer.on_validation_epoch_start(None, None)  # validation after fit (trainer.validate) is not an epoch
    assert timer.seconds == [8.0]


def test_model_complexity_restores_the_training_mode() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(6, 3)

        def forward(self, batch: Batch) -> torch.Tensor:
            return self.linear(batch.image.flatten(1).float())

    model = Model().train()
    batch = Batch(
        image=torch.randn(4, 6, 1, 1),
        text_ids=torch.zeros(4, 1, dtype=torch.long),
        text_mask=torch.zeros(4, 1, dtype=torch.bool),
        label=torch.zeros(4, dtype=torch.long),
    )
    cost = model_complexity(model, batch, device="cpu", latency_runs=2, epoch_seconds=[2.0, 4.0])
    assert model.training and cost["flops_per_sample"] == 2 * 6 * 3 and cost["latency_batch_size"] == 4
    assert cost["train_s_per_epoch"] == 3.0 and cost["train_epochs_timed"] == 2 and cost["device"] == "cpu"


def test_training_writes_complexity_into_metrics_json(make_cfg, tmp_path: Path, cache_dir: Path) -> None:
    metrics = train(make_cfg("debug=fast", "logger=none"))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    cost = saved["complexity"]
    assert cost == metrics["complexity"]
    assert cost["params_total"] == cost["params_trainable"] > 0 and cost["flops_per_sample"] > 0
    assert cost["train_epochs_timed"] == 1 and cost["train_s_per_epoch"] > 0
    assert cost["latency_s_per_batch"] > 0 and cost["device"] == "cpu" and cost["peak_memory_bytes"] > 0
    assert cost["latency_batch_size"] == 32  # measured on 32 rows of the first test batch, not all 256
    # each encoder measured by this run, or by an earlier test's run of the same model (the session's cache dir)
    assert re.fullmatch(r"image=(measured|cache),text=(measured|cache)", cost["encoder_costs"])
    assert len(list((cache_dir / "costs").glob("cost-*.json"))) >= 2


def test_encoder_costs_are_measured_once_per_input_shape_then_read_from_the_cache(make_cfg, tmp_path: Path) -> None:
    from mmexp.training.build import build_datamodule, build_model

    cfg = make_cfg("data.synthetic.n_samples=120")
    datamodule = build_datamodule(cfg.data, cfg.text_encoder)
    datamodule.prepare_data()
    datamodule.setup()
    model = build_model(
        cfg, num_classes=datamodule.num_classes, labels=datamodule.label_names, **datamodule.tokenizer.encoder_kwargs()
    )
    batch, costs = next(iter(datamodule.test_dataloader())), tmp_path / "costs"
    whole = model_complexity(model, batch, device="cpu", latency_runs=1)
    first = model_complexity(model, batch, device="cpu", latency_runs=1, cost_cache=costs)
    calls: list[str] = []
    for modality, encoder in model.encoders.items():
        encoder.register_forward_hook(lambda *_, m=modality: calls.append(m))
    second = model_complexity(model, batch, device="cpu", latency_runs=1, cost_cache=costs)
    assert calls == [] and len(list(costs.glob("cost-*.json"))) == 2  # no encoder ran: both read from the cache
    assert first["encoder_costs"] == "image=measured,text=measured"
    assert second["encoder_costs"] == "image=cache,text=cache"
    assert whole["flops_per_sample"] == first["flops_per_sample"] == second["flops_per_sample"]  # parts sum exactly
    assert second["latency_s_per_batch"] > 0 and "encoder_costs" not in whole
    fewer = model_complexity(model, batch, device="cpu", latency_runs=1, cost_cache=costs, max_rows=8)
    assert fewer["encoder_costs"] == "image=measured,text=measured" and calls  # another input shape: measured
