"""Export a trained checkpoint for serving: the model as one file (ONNX or TorchScript) plus preprocessing.json.

The model is rebuilt from its training run the way ``mmexp.eval`` rebuilds it (run config, checkpoint weights,
tokenizer state and label map), wrapped as ``ServingModel`` (plain tensors in, probabilities out, no feature
cache), written to a temp dir beside ``out_dir``, run from the written file on fresh inputs of several batch
sizes and token counts and compared with the model itself, and only then moved to ``out_dir``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmexp.core.errors import ConfigError, RunDirInUse

if TYPE_CHECKING:
    from mmexp.data.tokenizers import Tokenizer
    from mmexp.serving.formats import Format
    from mmexp.training.classifier import MultimodalClassifier

TOLERANCE = 1e-5  # max |p_exported - p_model| over every probability of the check inputs
CHECKS = ((1, 3), (5, 7), (9, 12))  # (rows, most words per text) of the inputs run after writing


@dataclass(frozen=True)
class Trained:
    """A trained model with what its inputs need: tokenizer, label names, image size and resize mode."""

    model: MultimodalClassifier
    tokenizer: Tokenizer
    labels: list[str]
    image_size: int
    resize: str
    source: dict[str, Any]


def load_trained(ckpt_path: Path) -> Trained:
    """The checkpoint's model, in eval mode, from its training run dir (``<run>/checkpoints/<name>.ckpt``)."""
    from mmexp.core.log_setup import quiet_known_warnings
    from mmexp.evaluation.trained_run import TrainedRun

    quiet_known_warnings()
    run = TrainedRun.load(ckpt_path)
    datamodule = run.datamodule()  # its tokenizer, image size and resize: what the inputs need
    source = run.source
    return Trained(run.model(), datamodule.tokenizer, run.labels, datamodule.image_size, datamodule.resize, source)


def fresh_dir(out_dir: Path) -> None:
    """``out_dir`` must not exist yet, or be empty: an export never replaces files."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise RunDirInUse(f"{out_dir} already exists and is not empty; an export writes to a new dir only")


def export_checkpoint(ckpt_path: Path, out_dir: Path, fmt: Format) -> Path:
    """Export ``ckpt_path`` in ``fmt`` into the new dir ``out_dir``; return ``out_dir``."""
    fresh_dir(out_dir)
    return export_model(load_trained(ckpt_path), out_dir, fmt)


def export_model(trained: Trained, out_dir: Path, fmt: Format) -> Path:
    """Write, check and move into place: ``out_dir`` holds a verified export or nothing."""
    import torch

    from mmexp.serving import spec as sp
    from mmexp.serving.graph import ServingModel, sample_inputs

    fresh_dir(out_dir)
    serving = ServingModel(trained.model)
    refusal = fmt.refusal(serving)
    if refusal:
        raise ConfigError(f"format={fmt.name}: {refusal}")
    max_tokens = sp.max_tokens_of(trained.tokenizer)
    example = sample_inputs(trained.tokenizer, trained.image_size, 3, words=6, seed=0)
    with torch.no_grad():  # once eagerly first: encoders cache per-device constants (pixel statistics) on their
        serving(*example)  # first call, and a cache filled while torch.export traces holds wrong values (measured)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        try:
            fmt.save(serving, example, staging / fmt.file, max_tokens=max_tokens)
        except ConfigError:
            raise
        except Exception as e:  # the exporter's own limits: say which, and what else to try
            reason = (str(e).strip().splitlines() or [""])[0][:300]
            raise ConfigError(
                f"format={fmt.name}: {fmt.exporter} failed on this model ({type(e).__name__}: {reason}); "
                "docs/export.md lists what exports to which format"
            ) from None
        checked = verify(serving, fmt.load(staging / fmt.file), trained, max_tokens)
        spec = sp.describe(trained, serving, fmt, staging, max_tokens=max_tokens, verified=checked)
        sp.write_spec(staging, spec)
        os.chmod(staging, 0o755)  # mkdtemp makes it private; exports are meant to be shared
        os.rename(staging, out_dir)  # atomic; replaces an empty dir, never a full one
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def verify(serving: Any, run: Any, trained: Trained, max_tokens: int) -> dict[str, Any]:
    """Run the written file on inputs of other batch sizes and token counts than the traced example; compare
    with the model. Raise when any probability differs by more than ``TOLERANCE``."""
    import torch

    from mmexp.serving.graph import sample_inputs

    worst, shapes = 0.0, []
    for seed, (rows, words) in enumerate(CHECKS, start=1):
        inputs = sample_inputs(trained.tokenizer, trained.image_size, rows, words=words, seed=seed)
        with torch.no_grad():
            expected = serving(*inputs).numpy()
        got = run(inputs)
        if got.shape != expected.shape:
            raise ConfigError(
                f"the exported file returned shape {got.shape} for inputs of shape "
                f"{tuple(inputs[1].shape)}; expected {expected.shape}: this model does not export"
            )
        worst = max(worst, float(abs(got - expected).max()))
        shapes.append(list(inputs[1].shape))
    if worst > TOLERANCE:
        raise ConfigError(
            f"the exported file's probabilities differ from the model's by {worst:.2e} (> {TOLERANCE:g}) on "
            f"inputs of (rows, tokens) {shapes}; nothing was written"
        )
    return {"max_abs_diff": worst, "tolerance": TOLERANCE, "inputs": shapes, "max_tokens": max_tokens}


def write_onnx(ckpt_path: Path, out_dir: Path) -> Path:
    """``format=onnx``: ``out_dir``/model.onnx + preprocessing.json (+ vocab.json or tokenizer/)."""
    from mmexp.serving.formats import ONNX

    return export_checkpoint(ckpt_path, out_dir, ONNX)


def write_torchscript(ckpt_path: Path, out_dir: Path) -> Path:
    """``format=torchscript``: ``out_dir``/model.pt + preprocessing.json (+ vocab.json or tokenizer/)."""
    from mmexp.serving.formats import TORCHSCRIPT

    return export_checkpoint(ckpt_path, out_dir, TORCHSCRIPT)
