"""Missing modalities: a removed image is an all-zero (normalized) image, a removed text is all padding."""

from __future__ import annotations

import torch


def remove_modality(batch: dict, modality: str, rows: torch.Tensor) -> dict:
    """A copy of ``batch`` with ``modality`` removed for the rows where ``rows`` (B,) is True.

    Images cannot be blanked in uint8 (0 is not 0 after normalization), so the batch carries
    ``image_present`` and the model zeroes absent images after normalizing. ``modality`` is added to
    ``inputs_modified``, so the model re-encodes it instead of using cached frozen-encoder features.
    """
    batch = dict(batch)
    batch["inputs_modified"] = {*batch.get("inputs_modified", ()), modality}
    if modality == "image":
        present = batch.get("image_present", torch.ones_like(rows))
        batch["image_present"] = present & ~rows
    elif modality == "text":
        keep = ~rows.unsqueeze(1)
        batch["text_ids"] = batch["text_ids"] * keep
        batch["text_mask"] = batch["text_mask"] & keep
        if "text_raw" in batch:
            batch["text_raw"] = ["" if drop else text for text, drop in zip(batch["text_raw"], rows.tolist())]
    else:
        raise ValueError(f"unknown modality {modality!r} (expected 'image' or 'text')")
    return batch


def modality_dropout(batch: dict, rates: dict[str, float], generator: torch.Generator | None = None) -> dict:
    """Remove each modality per sample with its probability, never both from the same sample."""
    n = len(batch["label"])
    device = batch["label"].device
    dropped = torch.zeros(n, dtype=torch.bool, device=device)
    for modality, rate in rates.items():
        if rate <= 0:
            continue
        rows = (torch.rand(n, generator=generator).to(device) < rate) & ~dropped
        batch = remove_modality(batch, modality, rows)
        dropped |= rows
    return batch
