"""The trained classifier as a function of plain tensors: what an exported file computes.

``ServingModel(image, text_ids, text_mask) -> probabilities``: uint8 images (B, 3, H, W), token ids and an
attention mask (B, T) in, class probabilities (B, K) out, with the task's activation. It holds the classifier's
encoders, feature norms, fusion and head (not the LightningModule, which tracing cannot walk) and never reads
the feature cache: every input is encoded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from mmexp.contracts import Batch, Encoder, EncoderOutput

if TYPE_CHECKING:
    from mmexp.training.classifier import MultimodalClassifier

INPUTS = ("image", "text_ids", "text_mask")
OUTPUT = "probabilities"


class ServingModel(nn.Module):
    """The forward pass of ``MultimodalClassifier`` (encoders -> feature norms -> fusion -> head) plus the
    task's activation (softmax, or sigmoid per class for multilabel), on tensors only."""

    def __init__(self, model: MultimodalClassifier) -> None:
        super().__init__()
        self.encoders = model.encoders
        self.feature_norms = model.feature_norms
        self.fusion = model.fusion
        self.head = model.head
        self.multilabel = model.task.multilabel
        self.eval()

    def forward(self, image: torch.Tensor, text_ids: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        # label: any (B,) tensor; no encoder reads it
        batch = Batch(image=image, text_ids=text_ids, text_mask=text_mask.bool(), label=text_ids[:, 0])
        features: dict[str, EncoderOutput] = {}
        for modality, encoder in self.encoders.items():
            out = cast(Encoder, encoder).encode(batch)
            features[modality] = out._replace(pooled=self.feature_norms[modality](out.pooled))
        logits = self.head(self.fusion(features)).float()
        return logits.sigmoid() if self.multilabel else logits.softmax(-1)


def sample_inputs(tokenizer: Any, image_size: int, rows: int, *, words: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(image, text_ids, text_mask): random pixels, and texts of up to ``words`` of the vocabulary's own tokens
    (one row empty: a missing text) tokenized as serving will, so the width T follows the longest text."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (rows, 3, image_size, image_size), dtype=torch.uint8, generator=generator)
    vocabulary = [t for t in tokenizer.tokens()[2:200] if t.isalpha()] or ["a"]
    picks = torch.randint(0, len(vocabulary), (rows, words), generator=generator).tolist()
    lengths = torch.randint(0, words + 1, (rows,), generator=generator).tolist()
    lengths[0], lengths[-1] = words, 0
    texts = [" ".join(vocabulary[k] for k in row[:n]) for row, n in zip(picks, lengths, strict=True)]
    ids, mask = tokenizer.encode(texts)
    return image, ids.long(), mask.long()
