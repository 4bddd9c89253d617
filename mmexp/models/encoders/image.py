"""Image encoders: uint8-normalized (B, 3, H, W) float batches -> EncoderOutput."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmexp.contracts import EncoderOutput
from mmexp.core.errors import ConfigError
from mmexp.models.encoders.base import ImageEncoder

LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601 RGB -> gray weights, as in PIL's "L" mode


def channels_last(image: torch.Tensor) -> torch.Tensor:
    """``image`` in NHWC memory order, the layout CPU convolution and max-pool kernels are fast in
    (``scripts/bench_layout.py``, one core: a training step of the default CNN on 64 x 3 x 64 x 64 takes 438 ms in
    NCHW, 324 ms in NHWC; max-pool alone ~12x faster) and that tensor cores want on GPUs; values and shapes are
    unchanged."""
    return image.contiguous(memory_format=torch.channels_last)


class CNNEncoder(ImageEncoder):
    """Conv -> BatchNorm -> ReLU -> MaxPool blocks; feature-map cells are the tokens.

    Frozen, it keeps train mode: its BatchNorm goes on normalizing with batch statistics (a random-feature
    baseline), so it is never feature-cached.
    """

    eval_when_frozen = False

    def __init__(
        self,
        *,
        channels: Sequence[int] = (32, 64, 128),
        kernel_size: int = 3,
        pool: str = "avg",
        out_dim: int | None = None,
        grayscale: bool = False,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ConfigError(f"image_encoder.pool must be 'avg' or 'max' (got {pool!r})")
        self.grayscale = grayscale  # seed 000's conv net reads one luma channel
        layers: list[nn.Module] = []
        in_ch = 1 if grayscale else 3
        for ch in channels:
            layers += [
                nn.Conv2d(in_ch, ch, kernel_size, padding=kernel_size // 2, bias=False),
                nn.BatchNorm2d(ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_ch = ch
        self.features = nn.Sequential(*layers)
        self.pool = pool
        self.proj = nn.Linear(in_ch, out_dim) if out_dim else nn.Identity()
        self.out_dim = out_dim or in_ch
        if freeze:
            self.freeze()

    def forward(self, image: torch.Tensor) -> EncoderOutput:
        if self.grayscale:
            image = (image * LUMA.to(image.device, image.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
        fmap = self.features(channels_last(image))
        tokens = self.proj(fmap.flatten(2).transpose(1, 2))  # (B, H'W', D)
        pooled = tokens.mean(1) if self.pool == "avg" else tokens.amax(1)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(pooled, tokens, mask)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (1x1 conv-BN projection when the shape changes)."""

    def __init__(self, *, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x), inplace=True)


class ResNetEncoder(ImageEncoder):
    """ResNet of basic blocks; every stage after the first halves the resolution.

    The defaults (3x3 stem, stride 1, no pool) suit small images; a 7x7 stride-2 stem with a max pool
    is the ImageNet layout. A frozen encoder stays in eval mode, so BatchNorm statistics stay fixed too.
    """

    def __init__(
        self,
        *,
        widths: Sequence[int] = (32, 64, 128, 256),
        blocks_per_stage: int | list[int] = 2,
        stem_width: int = 32,
        stem_kernel: int = 3,
        stem_stride: int = 1,
        stem_pool: bool = False,
        out_dim: int | None = None,
        weights_path: str | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        widths = list(widths)
        blocks = [blocks_per_stage] * len(widths) if isinstance(blocks_per_stage, int) else list(blocks_per_stage)
        if not widths or len(blocks) != len(widths) or min(blocks) < 1:
            raise ConfigError(
                f"image_encoder.blocks_per_stage must be a positive int or one per stage of "
                f"image_encoder.widths={widths} (got {blocks_per_stage})"
            )
        stem: list[nn.Module] = [
            nn.Conv2d(3, stem_width, stem_kernel, stride=stem_stride, padding=stem_kernel // 2, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
        ]
        if stem_pool:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        stages, in_ch = [], stem_width
        for i, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            stage = [BasicBlock(in_ch=in_ch, out_ch=width, stride=1 if i == 0 else 2)]
            stage += [BasicBlock(in_ch=width, out_ch=width, stride=1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*stage))
            in_ch = width
        self.stages = nn.Sequential(*stages)
        self.proj = nn.Linear(in_ch, out_dim) if out_dim else nn.Identity()
        self.out_dim = out_dim or in_ch
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if weights_path:
            self.load_weights(weights_path)
        if freeze:
            self.freeze()

    def load_weights(self, path: str) -> None:
        """Load a local ``state_dict`` saved from a ResNetEncoder of the same shape; fail naming the field."""
        file = Path(path).expanduser()
        field = "image_encoder.weights_path"
        if not file.is_file():
            raise ConfigError(
                f"{field}: no file at {file}; give a state_dict saved with "
                f"torch.save(encoder.state_dict(), path), or set it to null"
            )
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as e:  # not a torch file, or it holds more than tensors
            raise ConfigError(f"{field}: {file} is not a loadable state_dict ({type(e).__name__}: {e})") from None
        if not isinstance(state, Mapping):
            raise ConfigError(f"{field}: {file} holds a {type(state).__name__}, not a state_dict")
        own = self.state_dict()
        missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
        reshaped = sorted(
            k
            for k in own.keys() & state.keys()
            if not isinstance(state[k], torch.Tensor) or state[k].shape != own[k].shape
        )
        if missing or unexpected or reshaped:
            raise ConfigError(
                f"{field}: {file} does not fit this ResNetEncoder (missing keys {missing[:3]}, "
                f"unexpected keys {unexpected[:3]}, other shapes {reshaped[:3]}); make "
                f"image_encoder.widths / blocks_per_stage / stem_* / out_dim match the saved one"
            )
        self.load_state_dict(state)

    def forward(self, image: torch.Tensor) -> EncoderOutput:
        fmap = self.stages(self.stem(channels_last(image)))
        tokens = self.proj(fmap.flatten(2).transpose(1, 2))  # (B, H'W', D)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(tokens.mean(1), tokens, mask)


class ViTEncoder(ImageEncoder):
    """Vision Transformer: patch embedding, learned positions, a CLS token; pooled = CLS output.

    ``image_size`` fixes the number of positions, so it comes from ``data.image_size``.
    """

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int = 4,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        if patch_size < 1 or image_size % patch_size:
            fits = [p for p in range(2, min(image_size, 32) + 1) if image_size % p == 0]
            raise ConfigError(
                f"image_encoder.patch_size={patch_size} must divide data.image_size={image_size}; "
                f"sizes that fit: {fits}"
            )
        if dim % heads:
            raise ConfigError(f"image_encoder.dim={dim} must be divisible by image_encoder.heads={heads}")
        self.image_size, self.patch_size = image_size, patch_size
        num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * mlp_ratio), dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.out_dim = dim
        if freeze:
            self.freeze()

    def forward(self, image: torch.Tensor) -> EncoderOutput:
        if tuple(image.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"ViTEncoder was built for {self.image_size}x{self.image_size} images "
                f"(data.image_size), got {tuple(image.shape[-2:])}"
            )
        patches = self.patch_embed(image).flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(patches.shape[0], -1, -1), patches], dim=1) + self.pos_embed
        x = self.blocks(self.dropout(x))
        tokens = x[:, 1:]
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(x[:, 0], tokens, mask)
