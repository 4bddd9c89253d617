"""Image encoders: uint8-normalized (B, 3, H, W) float batches -> EncoderOutput."""

from __future__ import annotations

import torch
from torch import nn

from mmexp.models.outputs import EncoderOutput


class CNNEncoder(nn.Module):
    """Conv -> BatchNorm -> ReLU -> MaxPool blocks; feature-map cells are the tokens."""

    def __init__(self, *, channels: list[int] = (32, 64, 128), kernel_size: int = 3, pool: str = "avg",
                 out_dim: int | None = None, freeze: bool = False) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"image_encoder.pool must be 'avg' or 'max' (got {pool!r})")
        layers: list[nn.Module] = []
        in_ch = 3
        for ch in channels:
            layers += [nn.Conv2d(in_ch, ch, kernel_size, padding=kernel_size // 2, bias=False),
                       nn.BatchNorm2d(ch), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            in_ch = ch
        self.features = nn.Sequential(*layers)
        self.pool = pool
        self.proj = nn.Linear(in_ch, out_dim) if out_dim else nn.Identity()
        self.out_dim = out_dim or in_ch
        if freeze:
            self.requires_grad_(False)

    def forward(self, image: torch.Tensor) -> EncoderOutput:
        fmap = self.features(image)
        tokens = self.proj(fmap.flatten(2).transpose(1, 2))  # (B, H'W', D)
        pooled = tokens.mean(1) if self.pool == "avg" else tokens.amax(1)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(pooled, tokens, mask)
