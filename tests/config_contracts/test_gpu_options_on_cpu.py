"""The trainer=gpu options on the CPU (CI has no GPU): model.compile and bf16-mixed precision.

model.compile: every part runs compiled, results match eager, checkpoints stay interchangeable.

The fast tests compile with the ``aot_eager`` backend: real Dynamo graph capture and AOTAutograd
backward graphs, without inductor's C++ code generation (~40 s cold on 2 cores). The slow test runs inductor.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from mmexp.core.errors import ConfigError
from mmexp.train import train

FAST = ("debug=fast", "text_encoder=bow", "logger=none", "seed=3")


def _compiled_run(make_cfg, run_dir: Path, backend: str) -> dict:
    torch._dynamo.reset()
    counters.clear()
    metrics = train(make_cfg(*FAST, f"model.compile={backend}", run_dir=run_dir))
    assert counters["stats"]["unique_graphs"] >= 3, "encoders, fusion and head should each compile a graph"
    return metrics


def test_compiled_run_matches_eager_and_shares_checkpoints(make_cfg, tmp_path: Path) -> None:
    eager = train(make_cfg(*FAST, run_dir=tmp_path / "eager"))
    compiled = _compiled_run(make_cfg, tmp_path / "compiled", "aot_eager")
    for name in ("test/acc", "test/f1_macro", "test/loss"):
        assert compiled["test"][name] == pytest.approx(eager["test"][name], abs=1e-4), name
    state = torch.load(tmp_path / "compiled" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    eager_state = torch.load(tmp_path / "eager" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state.keys() == eager_state.keys()  # no _orig_mod. prefixes


def test_unknown_backend_is_a_config_error(make_cfg) -> None:
    with pytest.raises(ConfigError, match=r"model.compile='nonsense'.*inductor"):
        train(make_cfg(*FAST, "model.compile=nonsense"))


@pytest.mark.slow
def test_inductor_run_matches_eager(make_cfg, tmp_path: Path) -> None:
    eager = train(make_cfg(*FAST, run_dir=tmp_path / "eager"))
    compiled = _compiled_run(make_cfg, tmp_path / "compiled", "true")
    assert compiled["test"]["test/acc"] == pytest.approx(eager["test"]["test/acc"], abs=0.02)


def test_bf16_mixed_trains_with_a_recurrent_text_encoder(make_cfg) -> None:
    """oneDNN has no bf16 LSTM on most CPUs; the encoder runs its RNN in fp32 under CPU autocast."""
    metrics = train(make_cfg("debug=fast", "text_encoder=lstm", "logger=none", "trainer.precision=bf16-mixed"))
    assert 0.0 <= metrics["test"]["test/acc"] <= 1.0 and metrics["test"]["test/loss"] > 0
