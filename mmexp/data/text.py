"""Word-level tokenizer fitted on the train split only; CJK characters are tokens of their own."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch

PAD, UNK = "<pad>", "<unk>"
# CJK ideographs, kana and hangul are split per character; other scripts by word.
_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+(?:'[^\W_]+)?", re.UNICODE
)


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    return _TOKEN.findall(text.lower() if lowercase else text)


@dataclass
class Vocab:
    """Token list where index 0 is padding and 1 is unknown."""

    tokens: list[str]
    lowercase: bool = True

    @classmethod
    def fit(cls, texts: list[str], *, min_freq: int = 1, max_size: int | None = None, lowercase: bool = True) -> Vocab:
        counts = Counter(tok for text in texts for tok in tokenize(text, lowercase))
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls([PAD, UNK, *kept], lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, texts: list[str], max_tokens: int) -> torch.Tensor:
        """(N, max_tokens) int64 ids, right-padded with 0 and truncated."""
        index = {t: i for i, t in enumerate(self.tokens)}
        ids = torch.zeros(len(texts), max_tokens, dtype=torch.long)
        for row, text in enumerate(texts):
            toks = [index.get(t, 1) for t in tokenize(text, self.lowercase)[:max_tokens]]
            ids[row, : len(toks)] = torch.tensor(toks, dtype=torch.long)
        return ids
