"""Train-time image augmentation on the batch, on the device: never at validation or test.

One affine warp per image (random resized crop and horizontal flip, sampled with ``grid_sample``) and optional
colour jitter, all vectorized over the batch. Randomness comes from torch's generator on the batch's device,
which ``seed`` seeds, so a run is repeatable. Images stay uint8, the ``Batch`` contract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmexp.core.errors import ConfigError

LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True, kw_only=True)
class Augment:
    """``crop_scale``: range of the kept area's fraction (random resized crop, aspect 3/4..4/3); ``flip``:
    horizontal flips with probability 0.5; ``color_jitter``: brightness, contrast and saturation factors drawn
    from [1 - s, 1 + s]."""

    crop_scale: tuple[float, float] = (1.0, 1.0)
    flip: bool = False
    color_jitter: float = 0.0

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ConfigError(
                f"augment.crop_scale must be [low, high] with 0 < low <= high <= 1 (got {self.crop_scale})"
            )
        if not 0 <= self.color_jitter < 1:
            raise ConfigError(f"augment.color_jitter must be in [0, 1) (got {self.color_jitter})")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> augmented uint8 (B, 3, H, W)."""
        out = images.float()
        if self.crop_scale != (1.0, 1.0) or self.flip:
            out = self._warp(out)
        if self.color_jitter:
            out = self._jitter(out)
        return out.round_().clamp_(0, 255).to(torch.uint8)

    def _warp(self, images: torch.Tensor) -> torch.Tensor:
        batch, device = images.shape[0], images.device
        low, high = self.crop_scale
        area = low + (high - low) * torch.rand(batch, device=device)
        jitter = math.log(4 / 3) if low < 1 else 0.0  # the aspect changes only with a crop
        ratio = torch.exp((torch.rand(batch, device=device) * 2 - 1) * jitter)
        width, height = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)
        center_x = (torch.rand(batch, device=device) * 2 - 1) * (1 - width)
        center_y = (torch.rand(batch, device=device) * 2 - 1) * (1 - height)
        flips = torch.rand(batch, device=device) < 0.5 if self.flip else torch.zeros(batch, dtype=torch.bool)
        sign = torch.where(flips.to(device), -1.0, 1.0)
        theta = torch.zeros(batch, 2, 3, device=device)
        theta[:, 0, 0], theta[:, 0, 2] = width * sign, center_x
        theta[:, 1, 1], theta[:, 1, 2] = height, center_y
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _jitter(self, images: torch.Tensor) -> torch.Tensor:
        batch, device, s = images.shape[0], images.device, self.color_jitter
        factors = 1 + (torch.rand(3, batch, 1, 1, 1, device=device) * 2 - 1) * s
        images = images * factors[0]  # brightness
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = (images - mean) * factors[1] + mean  # contrast
        gray = (images * torch.tensor(LUMA, device=device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        return (images - gray) * factors[2] + gray  # saturation
