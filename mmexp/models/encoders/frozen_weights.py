"""Frozen pretrained weights travel by reference: a pretrained encoder's ``state_dict()`` holds, in place of its
frozen parameters, one small entry naming their source and a digest of them.

The frozen weights never change during training and are installed on every machine that can rebuild the model
(it loads them from their package or Hugging Face directory when it is built), so writing them into every
checkpoint only costs disk and time: 108 MB per ``experiment=pretrained`` checkpoint, rewritten every epoch. With
the reference, ``load_state_dict`` (``strict=True`` included) checks that the rebuilt module's frozen weights
have the digest the saved ones had, and fails with one line naming both sources when they differ (another
backbone version). Trainable parameters (``unfreeze_last`` blocks, LoRA adapters) and buffers are saved as
usual. ``full_state_dict(module)`` embeds the frozen weights for a machine that lacks the backbone; such a
state dict (or one written before this existed) loads as any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from mmexp.core.errors import ConfigError

REFERENCE_KEY = "frozen_weights"  # the entry's key under the encoder's prefix, e.g. encoders.image.frozen_weights
SOURCE_ATTR = "_frozen_source"
SAVE_FULL = "save with mmexp.models.encoders.frozen_weights.full_state_dict to embed the weights"
# load_state_dict passes strict=True to every module's hooks whatever the caller asked (torch decides at the end),
# so a reference this module cannot match is reported as unexpected keys, never raised here


class FrozenSource:
    """Where a module's frozen weights come from, and their digest (computed once, again when they change)."""

    def __init__(self, source: str, field: str) -> None:
        self.source, self.field = source, field
        self.embed = False  # full_state_dict: write the weights themselves
        self.referenced: list[str] = []  # keys the last loaded state dict held by reference
        self._digest: tuple[tuple[Any, ...], str] | None = None

    def digest(self, params: dict[str, torch.Tensor]) -> str:
        """sha256 of the named tensors (name, dtype, shape, bytes), cached while none of them changes: an
        in-place write bumps a tensor's version, a move or cast gives it new storage."""
        state = tuple((n, id(p), p._version, p.data_ptr(), p.dtype, p.device) for n, p in sorted(params.items()))
        if self._digest is None or self._digest[0] != state:
            self._digest = (state, weights_digest(params))
        return self._digest[1]


def weights_digest(params: dict[str, torch.Tensor]) -> str:
    """sha256 over each tensor's name, dtype, shape and bytes, in name order (device-independent)."""
    digest = hashlib.sha256()
    for name in sorted(params):
        tensor = params[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def package_source(package: str) -> str:
    """``package version``: the installed distribution that shipped the weights."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return package


def reference_frozen_weights(module: nn.Module, *, source: str, field: str) -> None:
    """Make ``module.state_dict()`` hold its frozen parameters (``requires_grad`` False) by reference.

    ``source`` names where the module loaded them from (a package and its version, a Hugging Face name or
    directory); ``field`` is the config group, for error messages. Call it once the module's weights are loaded.
    """
    setattr(module, SOURCE_ATTR, FrozenSource(source, field))  # a plain attribute, not a submodule
    # the three registrations are untyped in torch 2.13
    module.register_state_dict_post_hook(_slim_state_dict)  # type: ignore[no-untyped-call]
    module.register_load_state_dict_pre_hook(_check_reference)  # type: ignore[no-untyped-call]
    module.register_load_state_dict_post_hook(_forgive_referenced)  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def full_state_dict(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``module.state_dict()`` embeds every frozen weight (for a machine lacking the backbone).

    ``with full_state_dict(model): torch.save(model.state_dict(), path)``; the result loads anywhere the model
    can be built, with or without the backbone's source, and needs no digest check.
    """
    sources = [s for m in module.modules() if isinstance(s := getattr(m, SOURCE_ATTR, None), FrozenSource)]
    before = [s.embed for s in sources]
    for s in sources:
        s.embed = True
    try:
        yield module
    finally:
        for s, embed in zip(sources, before, strict=True):
            s.embed = embed


def _frozen_params(module: nn.Module) -> dict[str, torch.Tensor]:
    """Frozen parameters by state-dict name (tied ones under each of their names)."""
    return {name: p for name, p in module.named_parameters(remove_duplicate=False) if not p.requires_grad}


def _source_of(module: nn.Module) -> FrozenSource:
    source = getattr(module, SOURCE_ATTR)
    assert isinstance(source, FrozenSource)
    return source


def _slim_state_dict(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """Post hook of ``state_dict``: drop the frozen parameters, add their reference (a uint8 tensor holding
    JSON, so any tensor format can store it: ``torch.save`` with ``weights_only``, safetensors)."""
    source = _source_of(module)
    frozen = _frozen_params(module)
    if source.embed or not frozen:
        return
    for name in frozen:
        state_dict.pop(prefix + name, None)
    reference = {"source": source.source, "sha256": source.digest(frozen), "params": sorted(frozen)}
    state_dict[prefix + REFERENCE_KEY] = torch.frombuffer(bytearray(json.dumps(reference).encode()), dtype=torch.uint8)


def _check_reference(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: Any,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Pre hook of ``load_state_dict``: take the reference out, check the module's own frozen weights against it,
    and note which keys it stands for (the post hook then forgives their absence)."""
    source = _source_of(module)
    entry = state_dict.pop(prefix + REFERENCE_KEY, None)
    source.referenced = []
    if entry is None:  # the weights themselves (full_state_dict, or an older checkpoint): load as usual
        return
    try:
        saved = json.loads(bytes(entry.cpu().numpy()).decode())
        names, digest, saved_source = list(saved["params"]), str(saved["sha256"]), str(saved["source"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(f"{source.field}: the state dict's {prefix}{REFERENCE_KEY} entry is damaged") from None
    params = dict(module.named_parameters(remove_duplicate=False))
    if any(n not in params for n in names):  # another architecture (e.g. LoRA renames the base weights)
        unexpected_keys.extend(prefix + n for n in names)  # as a full state dict's weights would be reported
        return
    installed = source.digest({n: params[n] for n in names})
    if installed != digest:
        raise ConfigError(
            f"{source.field}: the frozen weights differ from the ones it was saved with: saved "
            f"{saved_source} (sha256 {digest[:12]}), installed {source.source} (sha256 {installed[:12]}); "
            f"install the backbone it was trained with, or {SAVE_FULL}"
        )
    source.referenced = [prefix + n for n in names]


def _forgive_referenced(module: nn.Module, incompatible_keys: Any) -> None:
    """Post hook of ``load_state_dict``: the referenced weights are the module's own, so they are not missing."""
    referenced = set(_source_of(module).referenced)
    if referenced:
        incompatible_keys.missing_keys[:] = [k for k in incompatible_keys.missing_keys if k not in referenced]
