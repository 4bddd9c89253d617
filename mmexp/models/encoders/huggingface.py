"""Any Hugging Face backbone by name (hub id in the local cache, or a local directory), loaded with no network.

Vision: ViT, DeiT, DINOv2, Swin, ConvNeXt, ResNet, ... and the image towers of CLIP / SigLIP. Text: BERT,
RoBERTa, DistilBERT, XLM-R, multilingual sentence models, ... and the text towers of CLIP / SigLIP. Each returns
its pooled vector and its token (or feature-map cell) features with a mask, and takes its preprocessing from
the model itself: pixel statistics and input size from its image processor, its own tokenizer and length limit.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch
import torch.nn.functional as F

from mmexp.contracts import EncoderOutput, ImageInput
from mmexp.core.errors import ConfigError
from mmexp.core.pretrained import load_pretrained, weights_source
from mmexp.models.encoders.adapters import configure_backbone
from mmexp.models.encoders.base import ImageEncoder, TextEncoder
from mmexp.models.encoders.frozen_weights import reference_frozen_weights
from mmexp.models.encoders.hf_checks import check_modality, check_weights_loaded
from mmexp.models.ops import masked_mean

log = logging.getLogger(__name__)
POOLS = ("mean", "cls", "pooler")


def load_backbone(name: str, field: str, tower: str) -> Any:
    """``AutoModel`` of ``name``, or its ``tower`` (``vision_model`` / ``text_model``) for two-tower models;
    checked to read this tower's modality and to have its own weights (hf_checks)."""
    import transformers

    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # its key table: ours is one line
    try:
        model, info = load_pretrained(transformers.AutoModel, name, field, output_loading_info=True)
    finally:
        transformers.utils.logging.set_verbosity(verbosity)
    check_weights_loaded(model, info, name, field)
    model = getattr(model, tower) if hasattr(model, tower) else model  # CLIP / SigLIP: one tower of two
    check_modality(model, name, "image" if tower == "vision_model" else "text")
    return model


def image_input_of(name: str, field: str) -> ImageInput:
    """The pixel statistics and input size the model was trained with (its image processor; else its config)."""
    import transformers

    try:
        processor = load_pretrained(transformers.AutoImageProcessor, name, field)
    except ConfigError:
        processor = None
    config = load_pretrained(transformers.AutoConfig, name, field)
    vision = config.vision_config if hasattr(config, "vision_config") else config
    size = processor_size(processor) or (vision.image_size if hasattr(vision, "image_size") else None)
    if processor is None or not hasattr(processor, "image_mean") or processor.image_mean is None:
        log.warning(
            "%s=%s has no image processor: using mean/std 0.5 (set them by saving one beside the model)", field, name
        )
        return ImageInput(size=int(size) if size else None)
    return ImageInput(
        mean=tuple(processor.image_mean), std=tuple(processor.image_std), size=int(size) if size else None
    )


def processor_size(processor: Any) -> int | None:
    """The square input side of an image processor (``size`` is an int, a dict or a SizeDict by version)."""
    size = processor.size if processor is not None and hasattr(processor, "size") else None
    if size is None or isinstance(size, int):
        return size
    return size.get("height") or size.get("shortest_edge")


class HFImageEncoder(ImageEncoder):
    """A Hugging Face vision backbone; pooled = its pooler output (else the mean of its tokens).

    Transformer models' tokens are their patch outputs; convolutional ones' are the cells of their last
    feature map. Images are resized on the device to the model's input size when ``data.image_size`` differs.
    """

    pretrained = True

    def __init__(
        self,
        *,
        name: str,
        freeze: bool = True,
        unfreeze_last: int = 0,
        lora_rank: int = 0,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self.model = load_backbone(name, "image_encoder.name", "vision_model")  # first: a text model stops here
        self.image_input = image_input_of(name, "image_encoder.name")
        size = self.image_input.size or 224
        with torch.no_grad():
            self.out_dim = int(self.features(torch.zeros(1, 3, size, size)).pooled.shape[-1])
        configure_backbone(
            self,
            freeze=freeze,
            unfreeze_last=unfreeze_last,
            lora_rank=lora_rank,
            gradient_checkpointing=gradient_checkpointing,
        )
        reference_frozen_weights(self, source=name, field="image_encoder")  # checkpoints stay small

    def features(self, image: torch.Tensor) -> EncoderOutput:
        out = self.model(pixel_values=image)
        hidden = out.last_hidden_state
        tokens = hidden.flatten(2).transpose(1, 2) if hidden.dim() == 4 else hidden  # conv maps: cells as tokens
        pooler = out.get("pooler_output")
        pooled = pooler.flatten(1) if pooler is not None else tokens.mean(1)
        if pooled.shape[-1] != tokens.shape[-1]:
            raise ConfigError(
                f"image_encoder.name={self.name}: pooled ({pooled.shape[-1]}) and token "
                f"({tokens.shape[-1]}) widths differ; this model family is not supported"
            )
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return EncoderOutput(pooled, tokens, mask)

    def forward(self, image: torch.Tensor) -> EncoderOutput:
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            return self.features(image)


class HFTextEncoder(TextEncoder):
    """A Hugging Face text backbone reading the ids of its own tokenizer (``text_encoder.tokenizer``).

    ``pool``: ``mean`` over real tokens (what sentence-transformers models are trained for), ``cls`` (the
    first token) or ``pooler`` (the model's pooler output); ``normalize``: the pooled vector L2-normalized, as
    sentence-transformers models such as all-MiniLM-L6-v2 (``text_encoder=minilm``) give it. A text with no
    real token gives zeros.
    """

    pretrained = True

    def __init__(
        self,
        *,
        name: str,
        pool: str = "mean",
        normalize: bool = False,
        freeze: bool = True,
        unfreeze_last: int = 0,
        lora_rank: int = 0,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ConfigError(f"text_encoder.pool must be one of {', '.join(POOLS)} (got {pool!r})")
        self.name, self.pool, self.normalize = name, pool, normalize
        self.model = load_backbone(name, "text_encoder.name", "text_model")
        self.out_dim = int(self.model.config.hidden_size)
        configure_backbone(
            self,
            freeze=freeze,
            unfreeze_last=unfreeze_last,
            lora_rank=lora_rank,
            gradient_checkpointing=gradient_checkpointing,
        )
        reference_frozen_weights(self, source=weights_source(name), field="text_encoder")  # checkpoints stay small

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            out = self.model(input_ids=ids, attention_mask=mask.long())
        hidden = out.last_hidden_state
        if self.pool == "mean":
            pooled = masked_mean(hidden, mask)
        elif self.pool == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = out.pooler_output
        if self.normalize:
            pooled = F.normalize(pooled, dim=-1)  # a zero vector (no real token) stays zero
        present = mask.any(1, keepdim=True)
        tokens = torch.where(mask.unsqueeze(-1), hidden, torch.zeros((), dtype=hidden.dtype, device=hidden.device))
        return EncoderOutput(
            torch.where(present, pooled, torch.zeros((), dtype=pooled.dtype, device=pooled.device)), tokens, mask
        )
