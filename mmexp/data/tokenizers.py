"""Tokenizers: the data side turns texts into the ids a text encoder reads, once, before training.

A text encoder that brings its own tokenizer names it in its config (``text_encoder.tokenizer``);
otherwise it reads word ids from the word tokenizer configured by ``data.text``.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from mmexp.core.errors import ConfigError
from mmexp.core.pretrained import load_pretrained
from mmexp.data.text import Vocab
from mmexp.data.tokenizer_checks import check_text_model, check_tokenizer


@runtime_checkable
class Tokenizer(Protocol):
    """Fitted on the train texts (a no-op for pretrained ones); saved inside every checkpoint."""

    def fit(self, texts: Sequence[str]) -> None: ...

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (N, T) int64, right-padded with 0, and mask (N, T) bool (True = real token)."""
        ...

    def encoder_kwargs(self) -> dict[str, int]:
        """What the text encoder needs from it (``vocab_size`` for word-level encoders)."""
        ...

    def known_tokens(self) -> Container[str]: ...

    def tokens(self) -> list[str]:
        """The vocabulary in id order (written to the run dir as vocab.json)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class WordTokenizer:
    """Words (one token per CJK character), vocabulary fitted on the train split only.

    A vocabulary loaded from a checkpoint (``load_state_dict``) is kept: ``fit`` does not refit it.
    """

    def __init__(
        self, *, max_tokens: int = 32, min_freq: int = 1, max_vocab: int | None = 20000, lowercase: bool = True
    ) -> None:
        self.max_tokens, self.min_freq, self.max_vocab, self.lowercase = max_tokens, min_freq, max_vocab, lowercase
        self.vocab: Vocab | None = None

    def _fitted(self) -> Vocab:
        if self.vocab is None:
            raise RuntimeError("WordTokenizer used before fit() or load_state_dict()")
        return self.vocab

    def fit(self, texts: Sequence[str]) -> None:
        if self.vocab is None:
            self.vocab = Vocab.fit(
                list(texts), min_freq=self.min_freq, max_size=self.max_vocab, lowercase=self.lowercase
            )

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded to the longest text encoded together (cut at ``max_tokens``), as pretrained tokenizers do: a
        generous ``max_tokens`` costs nothing on short texts."""
        ids = self._fitted().encode(list(texts), self.max_tokens)
        width = max(int((ids != 0).sum(1).max()) if len(ids) else 0, 1)
        ids = ids[:, :width].contiguous()
        return ids, ids != 0

    def encoder_kwargs(self) -> dict[str, int]:
        return {"vocab_size": len(self._fitted())}

    def known_tokens(self) -> Container[str]:
        return set(self._fitted().tokens)

    def tokens(self) -> list[str]:
        return self._fitted().tokens

    def state_dict(self) -> dict[str, Any]:
        return {"vocab": self.vocab.tokens if self.vocab else None, "lowercase": self.lowercase}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("vocab"):
            self.lowercase = state.get("lowercase", True)
            self.vocab = Vocab(state["vocab"], self.lowercase)


def text_config(path: str, field: str) -> Any:
    """The text part of the model config at ``path`` (a two-tower model's ``text_config``)."""
    import transformers

    config = load_pretrained(transformers.AutoConfig, path, field)
    return config.text_config if hasattr(config, "text_config") else config


def model_max_length(tokenizer: Any, path: str, field: str) -> int:
    """The longest input the model takes: its tokenizer's limit, else its config's position embeddings."""
    limit = int(min(tokenizer.model_max_length, 10**6))  # "no limit" is stored as 1e30
    text = text_config(path, field)
    if hasattr(text, "max_position_embeddings"):
        limit = min(limit, int(text.max_position_embeddings))
    return limit if limit < 10**6 else 512


class PretrainedTokenizer:
    """A Hugging Face tokenizer (local directory or local cache), truncated to ``max_length`` tokens.

    ``max_length`` None: the model's own limit.
    Texts are padded to the longest one encoded together. An empty or whitespace-only text is a missing
    text: its mask is all False, so encoders treat it exactly like a removed one.
    """

    def __init__(self, *, path: str, max_length: int | None = None, field: str = "text_encoder.name") -> None:
        import transformers

        self.path = path
        try:
            model = text_config(path, field)
        except ConfigError:  # a tokenizer-only folder (given with max_length): nothing to pair it with
            model = None
        check_text_model(model, path, field)
        self.tokenizer = load_pretrained(transformers.AutoTokenizer, path, field)
        check_tokenizer(self.tokenizer, model, path, field)
        self.max_length = max_length or model_max_length(self.tokenizer, path, field)

    def fit(self, texts: Sequence[str]) -> None:
        """Pretrained: nothing to fit."""

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        present = torch.tensor([bool(t.strip()) for t in texts], dtype=torch.bool)
        mask = out["attention_mask"].bool() & present.unsqueeze(1)
        return out["input_ids"].long() * mask, mask

    def encoder_kwargs(self) -> dict[str, int]:
        return {}

    def known_tokens(self) -> Container[str]:
        return self.tokenizer.get_vocab()

    def tokens(self) -> list[str]:
        vocab = self.tokenizer.get_vocab()
        return sorted(vocab, key=vocab.__getitem__)

    def state_dict(self) -> dict[str, Any]:
        return {"pretrained": self.path, "max_length": self.max_length}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The tokenizer is the model's own: nothing learned to restore."""
