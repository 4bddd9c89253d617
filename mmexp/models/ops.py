"""Tensor helpers shared by encoders and fusions."""

from __future__ import annotations

import torch


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens (B, N, D) -> (B, D); a row with no real token gives zeros, never NaN."""
    kept = tokens.masked_fill(~mask.unsqueeze(-1), 0.0)
    return kept.sum(1) / mask.sum(1, keepdim=True).clamp_min(1).to(tokens.dtype)
