"""What every encoder shares: reading its own inputs from a Batch, and one way to freeze.

An image encoder normalizes the batch's uint8 pixels with the statistics it declares (``image_input``),
on the device; a text encoder reads the ids its tokenizer produced on the data side. The
LightningModule only calls ``encoder.encode(batch)``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mmexp.contracts import Batch, Encoder, EncoderOutput, ImageInput
from mmexp.core.errors import ConfigError


class FreezableEncoder(nn.Module):
    """``freeze()``: no parameter trains; with ``eval_when_frozen`` the encoder also stays in eval mode.

    Staying in eval mode keeps BatchNorm statistics and dropout fixed, so a frozen encoder's outputs never
    drift (and can be cached). Encoders whose train mode matters even when frozen set it False.
    ``pretrained`` encoders get their own learning rate (``model.backbone_lr``).
    """

    eval_when_frozen: ClassVar[bool] = True
    pretrained: ClassVar[bool] = False
    frozen: bool = False

    def freeze(self, *, unfreeze_last: int = 0) -> None:
        """Freeze every parameter; ``unfreeze_last`` > 0 trains the last blocks (and all after them) again."""
        self.requires_grad_(False)
        if unfreeze_last > 0:
            unfreeze_last_blocks(self, unfreeze_last)
            return
        self.frozen = True
        if self.eval_when_frozen:
            self.eval()

    def train(self, mode: bool = True) -> FreezableEncoder:
        super().train(mode and not (self.frozen and self.eval_when_frozen))
        if mode and not self.frozen:  # partly frozen: the frozen blocks' BatchNorm statistics stay fixed too
            for module in self.modules():
                params = list(module.parameters())
                if (
                    isinstance(module, nn.modules.batchnorm._BatchNorm)
                    and params
                    and not any(p.requires_grad for p in params)
                ):
                    module.eval()
        return self


def blocks_of(module: nn.Module) -> nn.ModuleList:
    """The backbone's blocks: its longest ``nn.ModuleList`` (transformer layers, ResNet/ConvNeXt stages, ...)."""
    lists = [m for m in module.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ConfigError(f"{type(module).__name__} has no list of blocks: use freeze=true or freeze=false")
    return max(lists, key=len)


def unfreeze_last_blocks(module: nn.Module, count: int) -> None:
    """Train the last ``count`` blocks and every parameter registered after them (final norms, poolers)."""
    blocks = blocks_of(module)
    first = {id(p) for p in blocks[max(len(blocks) - count, 0)].parameters()}
    trainable = False
    for parameter in module.parameters():
        trainable = trainable or id(parameter) in first
        parameter.requires_grad_(trainable)


@functools.lru_cache(maxsize=16)
def _pixel_affine(spec: ImageInput, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(255 * std, mean / std) per channel on ``device``: made once, not copied to the device every step."""
    with torch.inference_mode(False):  # plain tensors even when first made under inference mode (evaluation)
        mean = torch.tensor(spec.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(spec.std, device=device).view(1, -1, 1, 1)
        return 255.0 * std, mean / std


def normalize_images(image: torch.Tensor, spec: ImageInput, present: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (x / 255 - mean) / std per channel, resized to ``spec.size`` when it differs;
    absent images (``present`` False) -> 0."""
    if image.dtype == torch.uint8:
        divisor, shift = _pixel_affine(spec, image.device)
        image = image.float().div_(divisor).sub_(shift)
    if spec.size and tuple(image.shape[-2:]) != (spec.size, spec.size):
        image = F.interpolate(image, size=(spec.size, spec.size), mode="bilinear", antialias=True, align_corners=False)
    if present is not None:
        image = image * present.view(-1, 1, 1, 1).to(image.dtype)
    return image


class ImageEncoder(FreezableEncoder):
    """Base of image encoders: ``forward`` takes normalized float images (B, 3, H, W)."""

    modality: ClassVar[str] = "image"
    image_input: ImageInput = ImageInput()
    out_dim: int

    def encode(self, batch: Batch) -> EncoderOutput:
        return self(normalize_images(batch.image, self.image_input, batch.image_present))


class TextEncoder(FreezableEncoder):
    """Base of text encoders: ``forward`` takes ids (B, T) and mask (B, T) from the encoder's tokenizer."""

    modality: ClassVar[str] = "text"
    image_input: None = None  # reads no pixels (the Encoder contract's image_input)
    out_dim: int

    def encode(self, batch: Batch) -> EncoderOutput:
        return self(batch.text_ids, batch.text_mask)


if TYPE_CHECKING:  # mypy checks here that every encoder (each derives from one of the two) meets the contract
    _CONTRACT: tuple[type[Encoder], ...] = (ImageEncoder, TextEncoder)
