"""What every encoder shares: reading its own inputs from a Batch, and one way to freeze.

An image encoder normalizes the batch's uint8 pixels with the statistics it declares (``image_input``),
on the device; a text encoder reads the ids its tokenizer produced on the data side. The
LightningModule only calls ``encoder.encode(batch)``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from mmexp.models.contracts import Batch, EncoderOutput, ImageInput


class FreezableEncoder(nn.Module):
    """``freeze()``: no parameter trains; with ``eval_when_frozen`` the encoder also stays in eval mode.

    Staying in eval mode keeps BatchNorm statistics and dropout fixed, so a frozen encoder's outputs never
    drift (and can be cached). Encoders whose train mode matters even when frozen set it False.
    """

    eval_when_frozen: ClassVar[bool] = True
    frozen: bool = False

    def freeze(self) -> None:
        self.frozen = True
        self.requires_grad_(False)
        if self.eval_when_frozen:
            self.eval()

    def train(self, mode: bool = True) -> FreezableEncoder:
        return super().train(mode and not (self.frozen and self.eval_when_frozen))


def normalize_images(image: torch.Tensor, spec: ImageInput, present: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (x / 255 - mean) / std per channel; absent images (``present`` False) -> 0."""
    if image.dtype == torch.uint8:
        mean = torch.tensor(spec.mean, device=image.device).view(1, -1, 1, 1)
        std = torch.tensor(spec.std, device=image.device).view(1, -1, 1, 1)
        image = image.float().div_(255.0 * std).sub_(mean / std)
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
    out_dim: int

    def encode(self, batch: Batch) -> EncoderOutput:
        return self(batch.text_ids, batch.text_mask)
