"""The two file formats a model is exported to, each as a writer and a loader that runs the written file.

ONNX goes through ``torch.onnx.export(dynamo=True)`` (``torch.export`` + onnxscript): it handles transformer
attention, Hugging Face backbones and EfficientNet's on-graph resize, where the older TorchScript-based ONNX
exporter fails on several of them. TorchScript is ``torch.jit.trace``: it records the packed LSTM/GRU path too,
which ``torch.export`` cannot (data-dependent lengths). Both give a dynamic batch and token count (docs/export.md).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from mmexp.core.errors import ConfigError
from mmexp.serving.graph import INPUTS, OUTPUT

if TYPE_CHECKING:
    from mmexp.serving.graph import ServingModel

Inputs = tuple[torch.Tensor, ...]
Runner = Callable[[Inputs], np.ndarray]
ONNX_EXTRA = "format=onnx needs the optional extra: pip install 'mmexp[export]' (onnx, onnxscript, onnxruntime)"


@dataclass(frozen=True)
class Format:
    """``save(model, example, path, max_tokens=...)`` writes ``file``; ``load(path)`` runs it on plain tensors.
    ``refusal(model)``: why this format cannot hold the model (None: it can)."""

    name: str
    file: str
    exporter: str
    save: Callable[..., None]
    load: Callable[[Path], Runner]
    refusal: Callable[[ServingModel], str | None]


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """Tracer warnings and the ONNX exporter's progress lines are noise for a user who asked for a file."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def save_onnx(model: ServingModel, example: Inputs, path: Path, *, max_tokens: int) -> None:
    """Batch and token count dynamic (tokens up to ``max_tokens``); image size fixed."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's op library)
    except ImportError:
        raise ConfigError(ONNX_EXTRA) from None
    from torch.export import Dim

    batch, tokens = Dim("batch", min=1), Dim("tokens", min=1, max=max(max_tokens, 2))
    shapes = ({0: batch}, {0: batch, 1: tokens}, {0: batch, 1: tokens})  # image, text_ids, text_mask
    with quiet_exporters(), torch.no_grad():
        program = torch.onnx.export(
            model, example, dynamo=True, dynamic_shapes=shapes, input_names=list(INPUTS), output_names=[OUTPUT]
        )
        assert program is not None  # dynamo=True returns the program
        program.save(str(path))


def load_onnx(path: Path) -> Runner:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(ONNX_EXTRA) from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(inputs: Inputs) -> np.ndarray:
        feed = {name: x.numpy() for name, x in zip(INPUTS, inputs, strict=True) if name in names}
        return np.asarray(session.run([OUTPUT], feed)[0])

    return run


def onnx_refusal(model: ServingModel) -> str | None:
    """Packed recurrent layers (LSTM/GRU over each text's own length) do not go through ``torch.export``."""
    for modality, encoder in model.encoders.items():
        rnn = next((m for m in encoder.modules() if isinstance(m, nn.RNNBase)), None)
        if rnn is not None:
            return (
                f"{modality}_encoder ({type(encoder).__name__}) runs a packed {type(rnn).__name__} over each "
                "text's own length, which the ONNX exporter (torch.export) cannot trace; use format=torchscript, "
                "which exports this model (docs/export.md lists what exports to which format)"
            )
    return None


def save_torchscript(model: ServingModel, example: Inputs, path: Path, *, max_tokens: int) -> None:
    """``torch.jit.trace``: shapes stay symbolic where the code reads them from tensors (batch, token count)."""
    with quiet_exporters(), torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)  # type: ignore[no-untyped-call]
    traced.save(str(path))


def load_torchscript(path: Path) -> Runner:
    module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]

    def run(inputs: Inputs) -> np.ndarray:
        with torch.no_grad():
            return np.asarray(module(*inputs).numpy())

    return run


def no_refusal(model: ServingModel) -> str | None:
    return None


ONNX = Format("onnx", "model.onnx", "torch.onnx.export(dynamo=True)", save_onnx, load_onnx, onnx_refusal)
TORCHSCRIPT = Format("torchscript", "model.pt", "torch.jit.trace", save_torchscript, load_torchscript, no_refusal)
