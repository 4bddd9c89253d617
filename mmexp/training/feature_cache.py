"""Frozen-encoder feature cache: a frozen encoder's outputs for every dataset row, computed once and reused.

``FeatureCacheCallback`` (from the classifier's ``configure_callbacks`` when ``model.feature_cache`` is on)
computes them once per dataset into ``<paths.cache_dir>/features/`` and attaches them to the model while a
Trainer stage runs; ``MultimodalClassifier.encode`` looks them up by ``batch.index``. Outside a stage
(``mmexp.eval``, robustness, complexity) nothing is attached and the encoders run as usual.

Cached (``feature_cache_keys.is_cacheable``; that module also keys the files): encoders whose output for a
row cannot change during training: no parameter requires grad and no layer behaves differently once
Lightning calls ``.train()``. Frozen ResNet/ViT/Transformer/MiniLM keep themselves in eval mode; frozen
BoW/LSTM (no inter-layer dropout) have no mode-dependent layer; a frozen CNN is not cached (its BatchNorm
uses batch statistics in train mode). mmexp's encoders never read ``self.training`` in their own code; one
that does must stay in eval mode when frozen, as ResNet/ViT do.

Tokens keep the encoder's dtype (float32), not float16, so a cached run reproduces an uncached one; an
encoder whose tokens exceed ``budget_gb`` is simply not cached. Rows are stored packed (up to their last
real token when widths vary) and re-padded per batch. ``fast_dev_run`` caches nothing:
it encodes a batch or two, less than one pass over every row.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn

from mmexp.contracts import Batch, EncoderOutput
from mmexp.core.errors import cache_write_reason
from mmexp.core.io import remove_stale_temps, write_atomic
from mmexp.core.progress import progress
from mmexp.data.datamodule import MultimodalDataModule
from mmexp.data.tensors import DatasetTensors
from mmexp.training.feature_cache_keys import FORMAT, cache_key, content_checksum, is_cacheable, stage_context

if TYPE_CHECKING:  # the classifier imports this module
    from mmexp.training.classifier import MultimodalClassifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetInputs:
    """The rows to encode (every row of the dataset) and how: what the images were made from, where the
    cache files go, how many rows a batch holds."""

    tensors: DatasetTensors
    image_key: str  # the decoded images' key: manifest, image files, image size
    cache_dir: Path
    batch_size: int

    def batch(self, start: int, device: torch.device) -> Batch:
        """The ``batch_size`` rows from ``start`` on, on ``device``."""
        rows = torch.arange(start, min(start + self.batch_size, len(self.tensors)))
        return self.tensors.take(rows).to(device)


def dataset_inputs(datamodule: object) -> DatasetInputs | None:
    """Every row of a set-up ``MultimodalDataModule`` (its train/val/test share them); else None."""
    if not isinstance(datamodule, MultimodalDataModule):
        return None
    info = datamodule.info
    return DatasetInputs(
        tensors=info.tensors,
        image_key=info.image_key,
        cache_dir=Path(datamodule.cache_dir) / "features",
        batch_size=datamodule.eval_batch_size,
    )


@dataclass
class FeatureCache:
    """One encoder's outputs for rows 0..N-1; tokens packed row after row, plus a zero sentinel row.

    ``width`` > 0: every row has ``width`` tokens (the encoder's fixed output length); 0: each row has
    its own length and a batch is padded to its longest row, padding = zeros with mask False.
    """

    pooled: torch.Tensor  # (N, D)
    tokens: torch.Tensor  # (sum of lengths + 1, D), last row zeros
    mask: torch.Tensor  # (sum of lengths + 1,), last False
    lengths: torch.Tensor  # (N,)
    width: int

    def __post_init__(self) -> None:
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.pooled, self.tokens, self.mask, self.lengths))

    def to(self, device: torch.device) -> FeatureCache:
        return FeatureCache(
            self.pooled.to(device), self.tokens.to(device), self.mask.to(device), self.lengths.to(device), self.width
        )

    def lookup(self, index: torch.Tensor) -> EncoderOutput:
        """The outputs of dataset rows ``index`` (B,), shaped as the encoder would return them."""
        index = index.to(self.pooled.device)
        lengths = self.lengths[index]
        width = self.width or max(int(lengths.max()), 1)  # variable-length rows: one device sync
        steps = torch.arange(width, device=index.device)
        sentinel = len(self.tokens) - 1
        pos = torch.where(steps < lengths[:, None], self.offsets[index, None] + steps, sentinel)
        return EncoderOutput(self.pooled[index], self.tokens[pos], self.mask[pos])

    @property
    def tensors(self) -> list[torch.Tensor]:
        return [self.pooled, self.tokens, self.mask, self.lengths]

    def save(self, path: Path, key: str) -> None:
        """Atomic (temp file + rename): concurrent sweep jobs only ever read complete files."""
        state = {
            "format": FORMAT,
            "key": key,
            "checksum": content_checksum(self.tensors),
            "pooled": self.pooled,
            "tokens": self.tokens,
            "mask": self.mask,
            "lengths": self.lengths,
            "width": self.width,
        }
        write_atomic(path, lambda f: torch.save(state, f))

    @classmethod
    def load(cls, path: Path, key: str) -> FeatureCache:
        """The file's cache; ValueError when it holds another cache or its bytes changed since it was saved."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != FORMAT or state.get("key") != key:
            raise ValueError(f"{path} holds another cache (format {state.get('format')}, key {state.get('key')})")
        pooled, tokens, mask, lengths = state["pooled"], state["tokens"], state["mask"], state["lengths"]
        if state.get("checksum") != content_checksum([pooled, tokens, mask, lengths]):
            raise ValueError("its content is not what was written (checksum mismatch: truncated or corrupted)")
        return cls(pooled, tokens, mask, lengths, int(state["width"]))


def pack(outputs: list[EncoderOutput]) -> FeatureCache:
    """Concatenate per-batch outputs; rows keep their full width unless the width varied between batches."""
    widths = {out.tokens.shape[1] for out in outputs}
    variable = len(widths) > 1
    tokens, masks, lengths = [], [], []
    for out in outputs:
        steps = torch.arange(out.tokens.shape[1], device=out.mask.device)
        if variable:  # up to the last real token of each row
            row_len = torch.where(out.mask, steps + 1, 0).amax(1) if out.mask.shape[1] else out.mask.sum(1)
        else:
            row_len = torch.full((len(out.mask),), out.tokens.shape[1], device=out.mask.device)
        keep = steps < row_len[:, None]
        tokens.append(out.tokens[keep])
        masks.append(out.mask[keep])
        lengths.append(row_len)
    dim, dtype = outputs[0].tokens.shape[-1], outputs[0].tokens.dtype
    tokens.append(torch.zeros(1, dim, dtype=dtype, device=outputs[0].tokens.device))
    masks.append(torch.zeros(1, dtype=torch.bool, device=outputs[0].mask.device))
    return FeatureCache(
        torch.cat([o.pooled for o in outputs]),
        torch.cat(tokens),
        torch.cat(masks),
        torch.cat(lengths).long(),
        0 if variable else widths.pop(),
    )


def compute_features(
    encode: Callable[[Batch], EncoderOutput],
    inputs: DatasetInputs,
    *,
    device: torch.device,
    budget_bytes: float,
    context: AbstractContextManager[object],
    what: str = "feature cache",
) -> FeatureCache | None:
    """Run ``encode`` over every row in batches (no grad), showing progress as ``what``; None as soon as the
    tokens exceed the budget."""
    outputs, used = [], 0
    with torch.no_grad(), context, progress(what, len(inputs.tensors), logger=log) as shown:
        for start in range(0, len(inputs.tensors), inputs.batch_size):
            out = encode(inputs.batch(start, device))
            outputs.append(EncoderOutput(*(t.detach() for t in out)))
            used += out.tokens.numel() * out.tokens.element_size()
            if used > budget_bytes:
                return None
            shown.advance(len(out.pooled))
    return pack(outputs)


def load_or_compute(
    module: MultimodalClassifier,
    modality: str,
    inputs: DatasetInputs,
    *,
    context: str,
    budget_bytes: float,
    forward_context: AbstractContextManager[object],
    unsaved: dict[Path, FeatureCache] | None = None,
) -> FeatureCache | None:
    """The cache file for this encoder and data when it is current, else computed now and written.

    A file that fails to load or to verify is recomputed and replaced (one warning). One that cannot be
    written goes into ``unsaved`` (one warning), where a later stage of the same run finds it.
    """
    encoder = module.encoders[modality]
    key = cache_key(encoder, modality, inputs, context=context)
    path = inputs.cache_dir / f"features-{key}.pt"
    name = f"{modality} encoder {type(encoder).__name__}"
    if unsaved is not None and path in unsaved:
        return unsaved[path]
    if path.exists():
        try:
            loaded = FeatureCache.load(path, key)
            log.info("feature cache: %s: loaded %d rows from %s", name, len(loaded.pooled), path)
            return loaded
        except Exception as e:  # unreadable or foreign file: recompute and replace it
            log.warning("feature cache: %s: cannot read %s (%s); recomputing", name, path, e)
    start = time.perf_counter()
    cache = compute_features(
        lambda batch: module.encode_modality(modality, batch),
        inputs,
        device=module.device,
        budget_bytes=budget_bytes,
        context=forward_context,
        what=f"feature cache: {name}: computing",
    )
    if cache is None:
        log.warning(
            "feature cache: %s: its token outputs exceed model.feature_cache_budget_gb=%.2f; not cached "
            "(the encoder runs on every batch; raise the budget to cache it)",
            name,
            budget_bytes / 2**30,
        )
        return None
    for stale in remove_stale_temps(path.parent, "features-") if path.parent.is_dir() else []:
        log.info("feature cache: removed %s, left by a run that was killed while writing it", stale)
    try:
        cache.save(path, key)
    except OSError as e:
        reason = cache_write_reason(e)
        log.warning("feature cache: %s: cannot write %s (%s); using it for this run only", name, path, reason)
        if unsaved is not None:
            unsaved[path] = cache
    log.info(
        "feature cache: %s: computed %d rows in %.1fs (%.1f MiB) -> %s",
        name,
        len(cache.pooled),
        time.perf_counter() - start,
        cache.nbytes / 2**20,
        path,
    )
    return cache


class FeatureCacheCallback(L.Callback):
    """Attaches cached outputs of the model's frozen encoders while a Trainer stage runs; detaches after.

    Attaching at each stage's start (after Lightning restored a checkpoint and moved the model) keys the
    cache by the weights actually in use. Every rank of a DDP run reads or computes the same file.
    """

    def __init__(self, *, budget_gb: float = 2.0) -> None:
        self.budget_bytes = budget_gb * 2**30
        self.unsaved: dict[Path, FeatureCache] = {}  # computed this run, not writable: kept for its other stages

    def attach(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module = cast("MultimodalClassifier", pl_module)  # only the classifier adds this callback
        module.feature_caches = {}
        # a smoke run encodes a batch or two: a pass over every row would cost more.
        # (fast_dev_run and datamodule are set on the Trainer by Lightning's connectors, not declared on it)
        if trainer.fast_dev_run:  # type: ignore[attr-defined]
            return
        frozen = [m for m, encoder in module.encoders.items() if is_cacheable(encoder)]
        inputs = dataset_inputs(trainer.datamodule) if frozen else None  # type: ignore[attr-defined]
        if inputs is None:
            return
        context = stage_context(trainer, module)
        for modality in frozen:
            cache = load_or_compute(
                module,
                modality,
                inputs,
                context=context,
                budget_bytes=self.budget_bytes,
                forward_context=trainer.precision_plugin.forward_context(),
                unsaved=self.unsaved,
            )
            if cache is not None:
                module.feature_caches[modality] = cache.to(module.device)

    @staticmethod
    def detach(pl_module: L.LightningModule) -> None:
        cast("MultimodalClassifier", pl_module).feature_caches = {}

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.attach(trainer, module)

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.detach(module)

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.state.fn != TrainerFn.FITTING:  # during fit, on_fit_start attached them already
            self.attach(trainer, module)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            self.detach(module)

    def on_test_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.attach(trainer, module)

    def on_test_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.detach(module)

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self.detach(module)


@contextlib.contextmanager
def features_attached(trainer: L.Trainer, module: L.LightningModule) -> Iterator[None]:
    """The model's frozen encoders served from their feature cache outside a Trainer stage (a run's test
    predictions after ``trainer.test``), as the trainer's ``FeatureCacheCallback`` serves them inside one."""
    callback = next((c for c in trainer.callbacks if isinstance(c, FeatureCacheCallback)), None)  # type: ignore[attr-defined]
    if callback is None:
        yield
        return
    callback.attach(trainer, module)
    try:
        yield
    finally:
        callback.detach(module)
