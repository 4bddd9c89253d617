"""Token-level fusions built on attention; same contract as mmexp.models.fusion.pooled.

nn.MultiheadAttention returns NaN for a query whose keys are all padding (an all-padding text),
so ``attend`` unmasks the first key of such rows and zeroes their attended output.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from mmexp.contracts import MODALITIES, EncoderOutput
from mmexp.core.errors import ConfigError
from mmexp.models.fusion.pooled import check_dropout, check_positive
from mmexp.models.ops import masked_mean

DIRECTIONS = ("both", "text_to_image", "image_to_text")


def attend(
    attention: nn.MultiheadAttention, query: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor
) -> torch.Tensor:
    """Attention of ``query`` over the real ``keys`` (mask True = real); rows with no real key give zeros."""
    empty = ~key_mask.any(1)  # (B,)
    safe_mask = key_mask.clone()
    safe_mask[:, 0] |= empty
    out, _ = attention(query, keys, keys, key_padding_mask=~safe_mask, need_weights=False)
    return out.masked_fill(empty[:, None, None], 0.0)


def _check_heads(dim: int, heads: int) -> None:
    check_positive(dim=dim, heads=heads)
    if dim % heads:
        raise ConfigError(
            f"fusion.dim ({dim}) must be a multiple of fusion.heads ({heads}); "
            f"e.g. fusion.dim={heads * max(1, round(dim / heads))}"
        )


class CrossAttentionFusion(nn.Module):
    """Text tokens attend to image tokens and/or image tokens to text tokens; each side is pooled.

    Both token sets are projected to ``dim``; each direction is one residual attention block
    (query + attended, LayerNorm), masked-mean pooled over the query's real tokens. With
    ``direction: both`` the two pooled vectors are concatenated (text_to_image first).
    """

    modalities: tuple[str, ...] = MODALITIES
    produces_logits: bool = False

    def __init__(
        self,
        *,
        dims: dict[str, int],
        num_classes: int,
        dim: int = 128,
        heads: int = 4,
        direction: str = "both",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if direction not in DIRECTIONS:
            raise ConfigError(f"fusion.direction must be one of {', '.join(DIRECTIONS)} (got {direction!r})")
        _check_heads(dim, heads)
        check_dropout(dropout)
        self.directions = DIRECTIONS[1:] if direction == "both" else (direction,)
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], dim) for m in self.modalities})
        self.attention = nn.ModuleDict(
            {d: nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True) for d in self.directions}
        )
        self.norm = nn.ModuleDict({d: nn.LayerNorm(dim) for d in self.directions})
        self.out_dim = dim * len(self.directions)

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        tokens = {m: self.proj[m](features[m].tokens) for m in self.modalities}
        masks = {m: features[m].mask for m in self.modalities}
        pooled = []
        for direction in self.directions:
            q, k = ("text", "image") if direction == "text_to_image" else ("image", "text")
            attention = cast(nn.MultiheadAttention, self.attention[direction])  # ModuleDict items are typed Module
            attended = attend(attention, tokens[q], tokens[k], masks[k])
            pooled.append(masked_mean(self.norm[direction](tokens[q] + attended), masks[q]))
        return torch.cat(pooled, dim=-1)


class EarlyTransformerFusion(nn.Module):
    """One transformer over [CLS; image tokens; text tokens] (MultiBench EarlyFusionTransformer); pooled = CLS.

    Tokens are projected to ``dim`` and tagged with a learned modality embedding; no position
    embedding is added (the encoders' tokens already carry their order). The CLS token is never
    masked, so every query has a real key even when the text is all padding.
    """

    modalities: tuple[str, ...] = MODALITIES
    produces_logits: bool = False

    def __init__(
        self,
        *,
        dims: dict[str, int],
        num_classes: int,
        dim: int = 128,
        heads: int = 4,
        layers: int = 2,
        ff_mult: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        _check_heads(dim, heads)
        check_positive(layers=layers, ff_mult=ff_mult)
        check_dropout(dropout)
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], dim) for m in self.modalities})
        self.modality_embed = nn.ParameterDict({m: nn.Parameter(torch.randn(dim) * 0.02) for m in self.modalities})
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * ff_mult, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.out_dim = dim

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        pooled = features[self.modalities[0]].pooled
        batch = pooled.shape[0]
        sequence = [self.cls.expand(batch, 1, -1)]
        mask = [torch.ones(batch, 1, dtype=torch.bool, device=pooled.device)]
        for m in self.modalities:
            sequence.append(self.proj[m](features[m].tokens) + self.modality_embed[m])
            mask.append(features[m].mask.bool())
        encoded = self.encoder(torch.cat(sequence, dim=1), src_key_padding_mask=~torch.cat(mask, dim=1))
        return encoded[:, 0]
