"""Missing modalities: a removed image is an all-zero (normalized) image, a removed text is all padding."""

from __future__ import annotations

import torch

from mmexp.contracts import MODALITIES, Batch


def remove_modality(batch: Batch, modality: str, rows: torch.Tensor) -> Batch:
    """A copy of ``batch`` with ``modality`` removed for the rows where ``rows`` (B,) is True.

    Images cannot be blanked in uint8 (0 is not 0 after normalization), so the batch carries
    ``image_present`` and the image encoder zeroes absent images after normalizing. The modality is marked
    modified, so its encoder runs instead of using cached frozen-encoder features.
    """
    if modality == "image":
        present = batch.image_present if batch.image_present is not None else torch.ones_like(rows)
        batch = batch.replace(image_present=present & ~rows)
    elif modality == "text":
        keep = ~rows.unsqueeze(1)
        texts = (
            ["" if drop else text for text, drop in zip(batch.texts, rows.tolist(), strict=True)] if batch.texts else []
        )
        batch = batch.replace(text_ids=batch.text_ids * keep, text_mask=batch.text_mask & keep, texts=texts)
    else:
        raise ValueError(f"unknown modality {modality!r} (expected one of {MODALITIES})")
    return batch.marked_modified(modality)


def modality_dropout(batch: Batch, rates: dict[str, float], generator: torch.Generator | None = None) -> Batch:
    """Remove each modality per sample with its probability, never both from the same sample."""
    n = len(batch)
    device = batch.label.device
    dropped = torch.zeros(n, dtype=torch.bool, device=device)
    for modality, rate in rates.items():
        if rate <= 0:
            continue
        rows = (torch.rand(n, generator=generator).to(device) < rate) & ~dropped
        batch = remove_modality(batch, modality, rows)
        dropped |= rows
    return batch
