"""Optimizer parameter groups: pretrained backbones learn at their own rate, the rest at the optimizer's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from mmexp.core.errors import ConfigError
from mmexp.models.encoders.base import FreezableEncoder, blocks_of
from mmexp.training.options import check_layer_lr_decay


def parameter_groups(
    model: nn.Module,
    encoders: Iterable[nn.Module],
    *,
    backbone_lr: float | None,
    backbone_weight_decay: float | None,
    layer_lr_decay: float | None = None,
    base_lr: float | None = None,
) -> list[dict[str, Any]]:
    """Trainable parameters of pretrained ``encoders`` at ``backbone_lr`` / ``backbone_weight_decay`` (None: the
    optimizer's own), every other trainable parameter of ``model`` in a group at the optimizer's settings.

    Fine-tuning a pretrained backbone usually wants a learning rate 10-100x below the new fusion and head's.
    ``layer_lr_decay`` (in (0, 1]) scales it further per depth, as in BEiT / ELECTRA fine-tuning: what follows
    the backbone's last block (final norms, poolers) learns at the backbone rate, the last block at ``decay``
    times it, each block below at ``decay`` times the one above, and the embeddings at ``decay ** (blocks + 1)``;
    ``base_lr`` is the optimizer's rate, used when ``backbone_lr`` is None.
    """
    backbones = [e for e in encoders if isinstance(e, FreezableEncoder) and e.pretrained]
    in_backbone = {id(p) for encoder in backbones for p in encoder.parameters()}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in in_backbone]
    options: dict[str, Any] = {}
    if backbone_weight_decay is not None:
        options["weight_decay"] = backbone_weight_decay
    groups: list[dict[str, Any]] = [{"params": rest}]
    if layer_lr_decay is None:
        lr = {} if backbone_lr is None else {"lr": backbone_lr}
        backbone = [p for encoder in backbones for p in encoder.parameters() if p.requires_grad]
        groups.append({"params": backbone, **lr, **options})
    else:
        check_layer_lr_decay(layer_lr_decay)
        top_lr = backbone_lr if backbone_lr is not None else base_lr
        if top_lr is None:
            raise ConfigError("model.layer_lr_decay needs a learning rate: set model.backbone_lr or optimizer.lr")
        for encoder in backbones:
            for depth, params in enumerate(parameters_by_depth(encoder)):
                trainable = [p for p in params if p.requires_grad]
                groups.append({"params": trainable, "lr": top_lr * layer_lr_decay**depth, **options})
    return [group for group in groups if group["params"]]


def parameters_by_depth(encoder: nn.Module) -> list[list[nn.Parameter]]:
    """The encoder's parameters from the top down: [after the last block, last block, ..., first block, before].

    Blocks are the backbone's longest module list (as for ``unfreeze_last``); parameters are ordered as
    registered, so the embeddings come before the first block and final norms / poolers after the last.
    """
    blocks = blocks_of(encoder)
    block_of = {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}
    levels: list[list[nn.Parameter]] = [[] for _ in range(len(blocks) + 2)]  # index = depth from the top
    seen_block = -1
    for parameter in encoder.parameters():
        index = block_of.get(id(parameter))
        if index is not None:
            seen_block = index
            levels[len(blocks) - index].append(parameter)
        elif seen_block < 0:
            levels[len(blocks) + 1].append(parameter)  # before the first block: embeddings
        elif seen_block == len(blocks) - 1:
            levels[0].append(parameter)  # after the last block: final norms, poolers, projections
        else:
            levels[len(blocks) - seen_block].append(parameter)  # between blocks: with the block before it
    return levels
