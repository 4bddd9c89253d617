"""How much of a pretrained transformer trains: all of it, its last blocks, or LoRA adapters only; and whether
its activations are recomputed in the backward pass (gradient checkpointing) to save memory.

One place for the three Hugging Face-based encoders (``image_encoder=hf``, ``text_encoder=hf``, ``minilm``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mmexp.core.errors import ConfigError
from mmexp.models.encoders.base import ImageEncoder, TextEncoder, blocks_of
from mmexp.models.encoders.fine_tuning import check_lora_rank

PEFT_EXTRA = "{field}.lora_rank needs peft: pip install 'mmexp[pretrained]'"


def configure_backbone(
    encoder: ImageEncoder | TextEncoder,
    *,
    freeze: bool,
    unfreeze_last: int,
    lora_rank: int,
    gradient_checkpointing: bool,
) -> None:
    """Apply the encoder's fine-tuning options to its Hugging Face model (``encoder.model``)."""
    model: Any = encoder.model  # a transformers PreTrainedModel
    field = f"{encoder.modality}_encoder"  # the config group, for error messages
    check_lora_rank(field, lora_rank)
    if lora_rank and (not freeze or unfreeze_last):
        raise ConfigError(
            f"{field}.lora_rank={lora_rank} trains adapters on a frozen backbone; it cannot be combined with "
            f"{field}.freeze=false or {field}.unfreeze_last (they train the backbone's own weights): set one"
        )
    if lora_rank:
        add_lora(model, lora_rank, field)  # freezes every weight of the backbone but the adapters'
    elif freeze:
        encoder.freeze(unfreeze_last=unfreeze_last)
    if gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise ConfigError(f"{field}.gradient_checkpointing: {type(model).__name__} does not support it")
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 (the old name is deprecated)
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def add_lora(model: nn.Module, rank: int, field: str) -> None:
    """LoRA adapters (``lora_alpha = 2 * rank``) on every linear layer inside the backbone's blocks, in place.

    Targeting the blocks' linear layers (attention projections and MLPs) works for every transformer family
    without a per-model list of module names; embeddings, poolers and final norms stay frozen.
    """
    try:
        import peft
    except ImportError:
        raise ConfigError(PEFT_EXTRA.format(field=field)) from None
    blocks = blocks_of(model)
    block_ids = {id(m) for block in blocks for m in block.modules()}
    targets = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and id(m) in block_ids]
    if not targets:
        raise ConfigError(f"{field}.lora_rank: {type(model).__name__} has no linear layers in its blocks to adapt")
    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets)
    peft.inject_adapter_in_model(config, model)
