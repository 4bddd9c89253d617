"""One rule for frozen encoders: no gradients, and eval mode even when Lightning calls .train()."""

from __future__ import annotations

from torch import nn


class StaysFrozen(nn.Module):
    """Mixin: after ``freeze()`` BatchNorm statistics and dropout stay fixed, so outputs never drift."""

    frozen: bool = False

    def freeze(self) -> None:
        self.frozen = True
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "StaysFrozen":
        return super().train(mode and not self.frozen)
