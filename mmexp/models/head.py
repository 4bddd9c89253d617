"""The classifier head over the fused vector."""

from __future__ import annotations

from torch import nn

from mmexp.contracts import Fusion


def build_head(fusion: Fusion, *, num_classes: int, hidden: int, dropout: float) -> nn.Module:
    """MLP (or linear when ``hidden`` is 0) over the fused vector; none for logit-level fusions."""
    if fusion.produces_logits:
        return nn.Identity()
    if not hidden:
        return nn.Linear(fusion.out_dim, num_classes)
    return nn.Sequential(
        nn.Linear(fusion.out_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
    )
