"""The typed seams between data, encoders, fusions and the LightningModule: read this file first.

Data produces a ``Batch``; each encoder turns the part of it that it reads into an ``EncoderOutput``
(it also owns the preprocessing of that input: ``ImageInput`` for pixels, a tokenizer for texts);
a fusion maps ``{modality: EncoderOutput}`` to a vector (or to logits); a head maps that to logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch only for annotations: the report and config checks import this without it
    import torch

MODALITIES: tuple[str, ...] = ("image", "text")


class EncoderOutput(NamedTuple):
    """``pooled`` (B, D); ``tokens`` (B, N, D) and ``mask`` (B, N, True = real token)."""

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor


@dataclass
class Batch:
    """One batch of paired inputs, as every loader hands it out and every model part reads it.

    ``image`` is uint8 (B, 3, H, W): each image encoder normalizes it its own way, on the device.
    ``text_ids``/``text_mask`` come from the text encoder's own tokenizer, applied once by the data side;
    ``texts`` keeps the raw strings for code that must change them (text corruptions re-tokenize them).
    ``index`` is each row's position in the dataset, the key of cached frozen-encoder features; None
    for rows that are not dataset rows. ``image_present`` (B,) bool marks removed images (None: all
    present). ``modified`` names the modalities whose inputs no longer equal the dataset's, so their
    encoders must run instead of using cached features.
    """

    image: torch.Tensor
    text_ids: torch.Tensor
    text_mask: torch.Tensor
    label: torch.Tensor
    texts: list[str] = field(default_factory=list)
    index: torch.Tensor | None = None
    image_present: torch.Tensor | None = None
    modified: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.label)

    def replace(self, **changes: Any) -> Batch:
        """A shallow copy with ``changes``; the original batch is never edited in place."""
        return replace(self, **changes)

    def first(self, rows: int) -> Batch:
        """The first ``rows`` rows (all of them when the batch is smaller)."""
        cut = {k: v[:rows] for k, v in self._tensors().items()}
        return self.replace(**cut, texts=self.texts[:rows])

    def marked_modified(self, modality: str) -> Batch:
        """This batch with ``modality``'s inputs declared changed (its encoder must run)."""
        return self.replace(modified=self.modified | {modality})

    def _tensors(self) -> dict[str, torch.Tensor]:
        import torch

        return {f.name: v for f in fields(self) if isinstance(v := getattr(self, f.name), torch.Tensor)}

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Tensors moved to ``device`` (Lightning calls this through its batch transfer)."""
        return self.replace(**{k: v.to(device, non_blocking=non_blocking) for k, v in self._tensors().items()})

    def pin_memory(self) -> Batch:
        """Page-locked copies for fast host-to-GPU copies (the DataLoader's ``pin_memory=True``)."""
        return self.replace(**{k: v.pin_memory() for k, v in self._tensors().items()})


@dataclass(frozen=True)
class ImageInput:
    """How an image encoder wants its pixels: per channel, (x / 255 - mean) / std, at ``size`` x ``size``.

    The default (0.5, 0.5) maps [0, 255] to [-1, 1], right for encoders trained from scratch; a pretrained
    encoder declares the statistics and input size it was trained with (ImageNet, CLIP, ...). ``size`` None:
    any size (the data's ``data.image_size``); otherwise images of another size are resized on the device.
    """

    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    size: int | None = None


@runtime_checkable
class Encoder(Protocol):
    """An image or text encoder: reads its own inputs from a ``Batch``, returns an ``EncoderOutput``.

    ``modality``: the inputs it reads; ``out_dim``: the width of its pooled vector and tokens. ``pretrained``:
    its weights come from elsewhere, so its trainable parameters learn at ``model.backbone_lr``. ``frozen``: set by
    ``freeze()`` with no block left to train: no parameter trains, and it runs without building a graph.
    ``image_input``: the pixels an image encoder wants (mean, std, size: data loaders, exported models and the
    feature cache's key follow it); None for a text encoder.
    """

    modality: ClassVar[str]
    pretrained: ClassVar[bool]
    out_dim: int

    @property
    def frozen(self) -> bool: ...

    @property
    def image_input(self) -> ImageInput | None: ...

    def freeze(self, *, unfreeze_last: int = 0) -> None:
        """No parameter trains; ``unfreeze_last`` > 0 trains its last blocks (and all after them) again."""
        ...

    def encode(self, batch: Batch) -> EncoderOutput: ...


@runtime_checkable
class Fusion(Protocol):
    """Built as ``Fusion(dims={modality: out_dim}, num_classes=C, **options)``.

    ``modalities``: the inputs it reads (encoders of other modalities are not built); ``out_dim``: the
    width of its output; ``produces_logits``: True when the output already is (B, C) logits (no head).
    A missing modality arrives as an encoding of a zero image or an all-padding text: outputs stay finite.
    """

    modalities: tuple[str, ...]
    out_dim: int
    produces_logits: bool

    def __call__(self, features: Mapping[str, EncoderOutput]) -> torch.Tensor: ...
