"""Text encoders: (B, T) token ids + mask -> EncoderOutput; padding never changes the output."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmexp.models.outputs import EncoderOutput


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class BagOfWordsEncoder(nn.Module):
    """Mean of word embeddings over real tokens: the fastest sensible text baseline."""

    def __init__(self, *, vocab_size: int, embed_dim: int = 128, freeze: bool = False) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.out_dim = embed_dim
        if freeze:
            self.requires_grad_(False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        tokens = self.embedding(ids)
        return EncoderOutput(masked_mean(tokens, mask), tokens, mask)


class LSTMEncoder(nn.Module):
    """Embedding + (optionally bidirectional) LSTM over packed sequences; pooled = final states."""

    rnn_type: type[nn.LSTM] | type[nn.GRU] = nn.LSTM

    def __init__(self, *, vocab_size: int, embed_dim: int = 128, hidden: int = 128, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, freeze: bool = False) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.rnn = self.rnn_type(embed_dim, hidden, num_layers=num_layers, batch_first=True,
                                 bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.out_dim = hidden * (2 if bidirectional else 1)
        if freeze:
            self.requires_grad_(False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        lengths = mask.sum(1).clamp_min(1).cpu()  # an empty text still yields a (zero-input) state
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        tokens, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        h = state[0] if isinstance(state, tuple) else state  # LSTM returns (h, c), GRU returns h
        directions = 2 if self.rnn.bidirectional else 1
        pooled = h[-directions:].transpose(0, 1).reshape(ids.shape[0], -1)
        return EncoderOutput(pooled, tokens, mask)
