"""What makes cached encoder outputs valid: which encoders may be cached, and the key of their cache file.

A key changes with the encoder (class, source file, module-tree config, weights), its input data, the
model's preprocessing code, device type, precision and torch version, and the file ``FORMAT``.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import nn

if TYPE_CHECKING:
    from mmexp.models.feature_cache import DatasetInputs

FORMAT = 1  # bump when the file layout changes


def mode_dependent(module: nn.Module) -> bool:
    """True for a layer whose output in its current mode can differ from eval mode or depend on the batch."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):  # batch statistics in train mode, or always
        return module.training or not module.track_running_stats
    if not module.training:
        return False
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return module.p > 0
    if isinstance(module, (nn.RNNBase, nn.MultiheadAttention)):
        return module.dropout > 0
    return False


def is_cacheable(encoder: nn.Module) -> bool:
    """No trainable parameter, and no mode-dependent layer once ``.train()`` is called (modes restored)."""
    if any(p.requires_grad for p in encoder.parameters()):
        return False
    modes = [(m, m.training) for m in encoder.modules()]
    encoder.train()  # what Lightning does every epoch; frozen ResNet/ViT/MiniLM stay in eval mode
    try:
        return not any(mode_dependent(m) for m in encoder.modules())
    finally:
        for module, mode in modes:
            module.training = mode


def _scalars(module: nn.Module) -> str:
    """The module's plain-valued attributes (num_heads, pool, max_length...): its realized constructor config."""
    plain = (bool, int, float, str, type(None))
    items = {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training"
             and (isinstance(v, plain) or (isinstance(v, tuple) and all(isinstance(x, plain) for x in v)))}
    return repr(sorted(items.items()))


def _source(obj: Any) -> bytes:
    try:
        return Path(inspect.getsourcefile(obj)).read_bytes()
    except (TypeError, OSError):
        return b""


def encoder_fingerprint(encoder: nn.Module) -> hashlib._Hash:
    """Digest of the encoder's class and its source file, its module tree's config, and its weights."""
    digest = hashlib.sha256(f"{type(encoder).__module__}.{type(encoder).__qualname__}\n".encode())
    digest.update(_source(type(encoder)))
    for name, module in encoder.named_modules():
        digest.update(f"{name}:{type(module).__qualname__}:{_scalars(module)}\n".encode())
    for name, tensor in encoder.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest


def input_fingerprint(modality: str, encoder: nn.Module, inputs: DatasetInputs) -> str:
    """What the encoder reads: the images' source, the raw texts, or the word ids (text spec + vocabulary)."""
    if modality == "image":
        return f"images:{inputs.image_key}:{tuple(inputs.images.shape)}"
    if getattr(encoder, "wants_raw_text", False):
        digest = hashlib.sha256()
        for text in inputs.texts:
            data = text.encode()
            digest.update(f"{len(data)}:".encode() + data)
        return f"texts:{digest.hexdigest()}"
    ids = inputs.text_ids.contiguous()
    return f"ids:{tuple(ids.shape)}:{hashlib.sha256(ids.numpy()).hexdigest()}"


def cache_key(encoder: nn.Module, modality: str, inputs: DatasetInputs, *, context: str) -> str:
    """Changes with the encoder (class, code, config, weights), its input data, or ``context``
    (preprocessing code, device type, precision, torch version)."""
    digest = encoder_fingerprint(encoder)
    digest.update(f"|{modality}|{input_fingerprint(modality, encoder, inputs)}|{context}|{FORMAT}".encode())
    return digest.hexdigest()[:24]


def stage_context(trainer: L.Trainer, module: L.LightningModule) -> str:
    """What else shapes the outputs: the model's input preprocessing code, device type, precision, torch."""
    preprocessing = hashlib.sha256(inspect.getsource(type(module).encode_modality).encode()).hexdigest()
    return f"{preprocessing}|{module.device.type}|{trainer.precision}|torch {torch.__version__}"
