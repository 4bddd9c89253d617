"""What every encoder returns, so fusions can use pooled vectors or token sequences alike."""

from __future__ import annotations

from typing import NamedTuple

import torch


class EncoderOutput(NamedTuple):
    """``pooled`` (B, D); ``tokens`` (B, N, D) and ``mask`` (B, N, True = real token)."""

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
