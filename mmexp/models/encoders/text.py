"""Text encoders trained from scratch on word ids: (B, T) ids + mask -> EncoderOutput, padding-invariant."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmexp.contracts import EncoderOutput
from mmexp.core.errors import ConfigError
from mmexp.models.encoders.base import TextEncoder
from mmexp.models.ops import masked_mean


class BagOfWordsEncoder(TextEncoder):
    """Mean of word embeddings over real tokens: the fastest sensible text baseline."""

    def __init__(self, *, vocab_size: int, embed_dim: int = 128, freeze: bool = False) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.out_dim = embed_dim
        if freeze:
            self.freeze()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        tokens = self.embedding(ids)
        return EncoderOutput(masked_mean(tokens, mask), tokens, mask)


def cpu_autocast_off(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Autocast disabled on the CPU (``trainer.precision=bf16-mixed`` there), a no-op elsewhere."""
    if device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return torch.autocast("cpu", enabled=False)
    return contextlib.nullcontext()


class LSTMEncoder(TextEncoder):
    """Embedding + (optionally bidirectional) LSTM over packed sequences; pooled = final states.

    Frozen, it keeps train mode, so inter-layer dropout (``num_layers`` > 1) stays on as configured.
    """

    eval_when_frozen = False

    rnn_type: type[nn.LSTM] | type[nn.GRU] = nn.LSTM

    def __init__(
        self,
        *,
        vocab_size: int,
        embed_dim: int = 128,
        hidden: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        out_dim: int | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.rnn = self.rnn_type(
            embed_dim,
            hidden,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        rnn_dim = hidden * (2 if bidirectional else 1)
        self.proj = nn.Linear(rnn_dim, out_dim) if out_dim else nn.Identity()  # e.g. seed 003's Linear(128, 64)
        self.out_dim = out_dim or rnn_dim
        if freeze:
            self.freeze()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        lengths = mask.sum(1).clamp_min(1).cpu()  # an empty text still yields a (zero-input) state
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
        with cpu_autocast_off(ids.device):  # oneDNN has no bf16 LSTM/GRU on most CPUs: run it in fp32
            out, state = self.rnn(packed)
        tokens, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        h = state[0] if isinstance(state, tuple) else state  # LSTM returns (h, c), GRU returns h
        directions = 2 if self.rnn.bidirectional else 1
        pooled = h[-directions:].transpose(0, 1).reshape(ids.shape[0], -1)
        return EncoderOutput(self.proj(pooled), self.proj(tokens), mask)


class BiGRUEncoder(LSTMEncoder):
    """The LSTM encoder with a GRU, bidirectional by default (seed 002's text model)."""

    rnn_type = nn.GRU

    def __init__(
        self,
        *,
        vocab_size: int,
        embed_dim: int = 128,
        hidden: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        out_dim: int | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__(
            vocab_size=vocab_size,
            embed_dim=embed_dim,
            hidden=hidden,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            out_dim=out_dim,
            freeze=freeze,
        )


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Fixed sin/cos position codes (Vaswani et al.): no parameters, any length up to ``length``."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return codes


class TransformerTextEncoder(TextEncoder):
    """Embedding + sinusoidal positions + pre-norm transformer; pooled = mean over real tokens.

    Padding is masked out of attention; a text with no real token still gets one attended position
    (an all-masked softmax is NaN) and then zeros. A frozen encoder stays in eval mode.
    """

    positions: torch.Tensor  # a buffer (registered in __init__)

    def __init__(
        self,
        *,
        vocab_size: int,
        dim: int = 128,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        max_len: int = 512,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"text_encoder.dim={dim} must be divisible by text_encoder.heads={heads}")
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.register_buffer("positions", sinusoidal_positions(max_len, dim), persistent=False)
        self.scale, self.max_len = math.sqrt(dim), max_len
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * mlp_ratio), dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.out_dim = dim
        if freeze:
            self.freeze()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        length = ids.shape[1]
        if length > self.max_len:
            raise ConfigError(
                f"texts of {length} tokens exceed text_encoder.max_len={self.max_len}; raise it "
                f"or lower data.text.max_tokens"
            )
        x = self.embedding(ids) * self.scale + self.positions[:length].to(self.embedding.weight.dtype)
        empty = ~mask.any(1, keepdim=True)
        first = torch.arange(length, device=ids.device) == 0
        attend = mask | (empty & first)  # every row keeps at least one key
        tokens = self.encoder(self.dropout(x), src_key_padding_mask=~attend)
        tokens = tokens * mask.unsqueeze(-1).to(tokens.dtype)
        return EncoderOutput(masked_mean(tokens, mask), tokens, mask)
