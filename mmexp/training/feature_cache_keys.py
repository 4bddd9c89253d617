"""What makes cached encoder outputs valid: which encoders may be cached, and the key of their cache file.

A key changes with the encoder (class, the source files of it and its mmexp base classes, which hold its
preprocessing, module-tree config, input spec, weights), its input data, the device type, precision and
torch version, and the file ``FORMAT``. A file's content is checked by ``content_checksum``: a key says which
file to read, the checksum that the file still holds what was written.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightning as L
import torch
from torch import nn

from mmexp.contracts import Encoder
from mmexp.core.io import checksum
from mmexp.models.encoders.frozen_weights import full_state_dict

if TYPE_CHECKING:
    from mmexp.training.feature_cache import DatasetInputs

FORMAT = 3  # bump when the file layout or the meaning of a key changes (3: content checksum)


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
    items = {
        k: v
        for k, v in vars(module).items()
        if not k.startswith("_")
        and k != "training"
        and (isinstance(v, plain) or (isinstance(v, tuple) and all(isinstance(x, plain) for x in v)))
    }
    return repr(sorted(items.items()))


def _source(obj: Any) -> bytes:
    try:
        file = inspect.getsourcefile(obj)  # TypeError for built-ins, None when there is no source file
        return Path(file).read_bytes() if file is not None else b""
    except (TypeError, OSError):
        return b""


def encoder_fingerprint(encoder: nn.Module) -> hashlib._Hash:
    """Digest of the encoder's class and the source files of its mmexp classes, its config, and its weights."""
    digest = hashlib.sha256(f"{type(encoder).__module__}.{type(encoder).__qualname__}\n".encode())
    for cls in type(encoder).__mro__:
        if cls.__module__.startswith("mmexp."):
            digest.update(_source(cls))
    image_input = cast(Encoder, encoder).image_input
    if image_input is not None:  # an image encoder's pixel statistics are part of its preprocessing
        digest.update(repr(image_input).encode())
    for name, module in encoder.named_modules():
        digest.update(f"{name}:{type(module).__qualname__}:{_scalars(module)}\n".encode())
    with full_state_dict(encoder):  # the weights themselves, not a reference naming where they came from
        state = encoder.state_dict()
    for name, tensor in state.items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest


def input_fingerprint(modality: str, encoder: nn.Module, inputs: DatasetInputs) -> str:
    """What the encoder reads: the images' source, or the ids and mask its tokenizer made."""
    if modality == "image":
        return f"images:{inputs.image_key}:{tuple(inputs.tensors.images.shape)}"
    digest = hashlib.sha256()
    for tensor in (inputs.tensors.text_ids, inputs.tensors.text_mask):
        digest.update(f"{tuple(tensor.shape)}:{tensor.dtype}:".encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return f"ids:{digest.hexdigest()}"


def cache_key(encoder: nn.Module, modality: str, inputs: DatasetInputs, *, context: str) -> str:
    """Changes with the encoder (class, code, config, weights), its input data, or ``context``
    (preprocessing code, device type, precision, torch version)."""
    digest = encoder_fingerprint(encoder)
    digest.update(f"|{modality}|{input_fingerprint(modality, encoder, inputs)}|{context}|{FORMAT}".encode())
    return digest.hexdigest()[:24]


def stage_context(trainer: L.Trainer, module: L.LightningModule) -> str:
    """What else shapes the outputs: device type, precision, torch version."""
    return f"{module.device.type}|{trainer.precision}|torch {torch.__version__}"


def content_checksum(tensors: list[torch.Tensor]) -> str:
    """Checksum of the tensors' bytes (their dtypes and shapes included): torch.load does not notice bytes
    changed inside a tensor's data, which would reach the model as wrong features (or NaN)."""
    cpu = [t.detach().cpu().contiguous() for t in tensors]
    header = "|".join(f"{t.dtype}:{tuple(t.shape)}" for t in cpu).encode()
    return checksum([header, *(t.reshape(-1).view(torch.uint8).numpy() for t in cpu)])
