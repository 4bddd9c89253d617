"""Fusion strategies: plain nn.Modules built from the encoders' output dims.

Contract (the classifier relies on it):
- constructor: keyword-only ``dims`` ({"image": D_i, "text": D_t}) and ``num_classes`` (most
  fusions ignore it; late fusion needs it), plus the options of its YAML in conf/fusion/;
- attributes: ``out_dim`` and ``modalities`` (the inputs it reads; unused encoders are not built);
  ``produces_logits = True`` when the output already is (B, num_classes) logits (no head on top);
- ``forward({modality: EncoderOutput}) -> (B, out_dim)``. A missing modality arrives as an
  encoding of zeros (image) or of an all-padding text (mask all False): outputs must stay finite.
"""

from __future__ import annotations

import torch
from torch import nn

from mmexp.models.outputs import EncoderOutput

MODALITIES = ("image", "text")


class ConcatFusion(nn.Module):
    """Concatenate the pooled vectors (seed 003; MultiBench Concat)."""

    modalities = MODALITIES

    def __init__(self, *, dims: dict[str, int], num_classes: int) -> None:
        super().__init__()
        self.out_dim = sum(dims[m] for m in self.modalities)

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        return torch.cat([features[m].pooled for m in self.modalities], dim=-1)


class AttentionFusion(nn.Module):
    """Project each modality to ``hidden``, weight them by a softmax over learned scores (seed 001)."""

    modalities = MODALITIES

    def __init__(self, *, dims: dict[str, int], num_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], hidden) for m in self.modalities})
        self.score = nn.Sequential(nn.Tanh(), nn.Linear(hidden, 1, bias=False))
        self.out_dim = hidden

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        projected = torch.stack([self.proj[m](features[m].pooled) for m in self.modalities], dim=1)
        weights = torch.softmax(self.score(projected), dim=1)  # (B, M, 1)
        return (weights * projected).sum(1)


class UnimodalFusion(nn.Module):
    """Use one modality only: the baseline every fusion must beat."""

    def __init__(self, *, dims: dict[str, int], num_classes: int, modality: str) -> None:
        super().__init__()
        if modality not in MODALITIES:
            raise ValueError(f"fusion.modality must be one of {MODALITIES} (got {modality!r})")
        self.modalities = (modality,)
        self.out_dim = dims[modality]

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        return features[self.modalities[0]].pooled
