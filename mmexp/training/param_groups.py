"""Optimizer parameter groups: pretrained backbones learn at their own rate, the rest at the optimizer's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from mmexp.models.encoders.base import FreezableEncoder


def parameter_groups(
    model: nn.Module, encoders: Iterable[nn.Module], *, backbone_lr: float | None, backbone_weight_decay: float | None
) -> list[dict[str, Any]]:
    """Trainable parameters of pretrained ``encoders`` in one group (``backbone_lr`` / ``backbone_weight_decay``;
    None: the optimizer's own), every other trainable parameter of ``model`` in another.

    Fine-tuning a pretrained backbone usually wants a learning rate 10-100x below the new fusion and head's.
    """
    backbone = [
        p
        for encoder in encoders
        if isinstance(encoder, FreezableEncoder) and encoder.pretrained
        for p in encoder.parameters()
        if p.requires_grad
    ]
    in_backbone = {id(p) for p in backbone}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in in_backbone]
    options: dict[str, Any] = {}
    if backbone_lr is not None:
        options["lr"] = backbone_lr
    if backbone_weight_decay is not None:
        options["weight_decay"] = backbone_weight_decay
    return [group for group in ({"params": rest}, {"params": backbone, **options}) if group["params"]]
