"""The fine-tuning option rules of the pretrained encoders, without torch: ``configure_backbone`` applies them
where the encoder is built, and the config checks call the same functions before torch is imported."""

from __future__ import annotations

from mmexp.core.errors import ConfigError


def check_lora_rank(field: str, rank: object) -> None:
    """``<field>.lora_rank`` (``field``: image_encoder or text_encoder): an integer >= 0 (0: no adapters)."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise ConfigError(f"{field}.lora_rank={rank!r} must be an integer >= 0 (0: no adapters)")
