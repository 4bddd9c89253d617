"""Input corruptions at severities 0..5: images on uint8 batches, texts on raw strings.

Severity 0 returns the input object itself (exactly clean); severity s >= 1 uses ``levels[s - 1]``.
All randomness comes from the ``torch.Generator`` passed in, so a seed gives the same corrupted data.
Each class is selected by ``_target_`` in ``conf/eval.yaml`` (``robustness.corruptions``); the level
defaults follow ImageNet-C where it has the corruption, scaled to the small images mmexp trains on.
"""

from __future__ import annotations

import math
from collections.abc import Container, Sequence

import torch
import torch.nn.functional as F

from mmexp.core.errors import ConfigError
from mmexp.data.text import tokenize

SEVERITIES = 5
GRAY = 128.0  # occluder colour: mid-gray is ~0 after the model's [-1, 1] normalization
LETTERS = "abcdefghijklmnopqrstuvwxyz"


class Corruption:
    """Holds the five per-severity levels; subclasses say which modality they corrupt."""

    modality: str = ""

    def __init__(self, *, levels: Sequence[float]) -> None:
        if len(levels) != SEVERITIES:
            raise ConfigError(
                f"robustness.corruptions.*.levels must list {SEVERITIES} values, one per severity "
                f"1..{SEVERITIES} (got {list(levels)})"
            )
        self.levels = [float(v) for v in levels]

    def level(self, severity: int) -> float:
        if not 0 < severity <= SEVERITIES:
            raise ValueError(f"severity must be in 0..{SEVERITIES} (got {severity})")
        return self.levels[severity - 1]


class ImageCorruption(Corruption):
    """Works on float pixels in [0, 255]; the result is rounded back to uint8 like a saved image."""

    modality = "image"

    def __call__(self, images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
        if severity == 0:
            return images
        if images.dtype != torch.uint8:
            raise TypeError(f"image corruptions expect uint8 (B, 3, H, W) batches, got {images.dtype}")
        out = self.corrupt(images.float(), self.level(severity), generator)
        return out.round_().clamp_(0, 255).to(torch.uint8)

    def corrupt(self, images: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


class GaussianNoise(ImageCorruption):
    """Additive per-pixel noise; ``levels`` = std as a fraction of the pixel range (ImageNet-C's)."""

    def corrupt(self, images: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(images.shape, generator=generator).to(images.device)  # CPU generator: same on any device
        return images + noise * (level * 255.0)


class GaussianBlur(ImageCorruption):
    """Separable Gaussian blur; ``levels`` = sigma as a fraction of the image side (radius 3 sigma).

    Relative to the side, so a severity means the same on 32 px and 224 px images; borders are reflected.
    """

    def corrupt(self, images: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
        _, channels, height, width = images.shape
        sigma = level * min(height, width)
        radius = max(1, min(math.ceil(3 * sigma), height - 1, width - 1))
        x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
        kernel = torch.exp(-0.5 * (x / sigma) ** 2)
        kernel = (kernel / kernel.sum()).repeat(channels, 1, 1, 1)  # (C, 1, 1, K)
        out = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), kernel, groups=channels)
        out = F.pad(out, (0, 0, radius, radius), mode="reflect")
        return F.conv2d(out, kernel.transpose(2, 3), groups=channels)


class Occlusion(ImageCorruption):
    """A gray square at a random place per image; ``levels`` = its side as a fraction of the image side."""

    def corrupt(self, images: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
        batch, _, height, width = images.shape
        side = max(1, round(level * min(height, width)))
        top = torch.randint(0, height - side + 1, (batch,), generator=generator).to(images.device)
        left = torch.randint(0, width - side + 1, (batch,), generator=generator).to(images.device)
        rows, cols = torch.arange(height, device=images.device), torch.arange(width, device=images.device)
        inside_r = (rows >= top[:, None]) & (rows < top[:, None] + side)  # (B, H)
        inside_c = (cols >= left[:, None]) & (cols < left[:, None] + side)  # (B, W)
        mask = (inside_r[:, :, None] & inside_c[:, None, :]).unsqueeze(1)  # (B, 1, H, W)
        return images.masked_fill(mask, GRAY)


class Brightness(ImageCorruption):
    """Adds ``level`` x 255 to every pixel (clipped), as ImageNet-C brightness does in value space."""

    def corrupt(self, images: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
        return images + level * 255.0


class Contrast(ImageCorruption):
    """Shrinks pixels towards each image's mean; ``levels`` = the remaining contrast factor."""

    def corrupt(self, images: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return (images - mean) * level + mean


class TextCorruption(Corruption):
    """Works on each text's words (the tokenizer's words, case kept), rejoined with spaces.

    ``known`` is the checkpoint's vocabulary, for corruptions that must produce unknown words.
    """

    modality = "text"

    def __call__(
        self, texts: list[str], severity: int, generator: torch.Generator, known: Container[str] = ()
    ) -> list[str]:
        if severity == 0:
            return texts
        level = self.level(severity)
        return [" ".join(self.corrupt(tokenize(text, lowercase=False), level, generator, known)) for text in texts]

    def corrupt(self, words: list[str], level: float, generator: torch.Generator, known: Container[str]) -> list[str]:
        raise NotImplementedError


def _draws(n: int, generator: torch.Generator) -> list[float]:
    return torch.rand(n, generator=generator).tolist()


class WordDropout(TextCorruption):
    """Deletes each word with probability ``level``."""

    def corrupt(self, words: list[str], level: float, generator: torch.Generator, known: Container[str]) -> list[str]:
        return [w for w, u in zip(words, _draws(len(words), generator), strict=True) if u >= level]


class WordSwap(TextCorruption):
    """Swaps each word with its right neighbour with probability ``level`` (each word moves once)."""

    def corrupt(self, words: list[str], level: float, generator: torch.Generator, known: Container[str]) -> list[str]:
        out, draws, i = list(words), _draws(len(words), generator), 0
        while i < len(out) - 1:
            if draws[i] < level:
                out[i], out[i + 1] = out[i + 1], out[i]
                i += 1
            i += 1
        return out


class CharTypos(TextCorruption):
    """With probability ``level`` a word gets one typo: a deleted, inserted, replaced or swapped letter."""

    def corrupt(self, words: list[str], level: float, generator: torch.Generator, known: Container[str]) -> list[str]:
        out = []
        for word, u in zip(words, _draws(len(words), generator), strict=True):
            op, pos, letter = torch.randint(0, 1 << 30, (3,), generator=generator).tolist()
            out.append(_typo(word, op % 4, pos, LETTERS[letter % len(LETTERS)]) if u < level else word)
        return [w for w in out if w]


def _typo(word: str, op: int, pos: int, letter: str) -> str:
    i = pos % len(word)
    if op == 0 and len(word) > 1:
        return word[:i] + word[i + 1 :]  # delete
    if op == 1:
        return word[:i] + letter + word[i:]  # insert
    if op == 3 and len(word) > 1:
        i = min(i, len(word) - 2)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap neighbours
    return word[:i] + (letter if letter != word[i] else LETTERS[(LETTERS.find(letter) + 1) % 26]) + word[i + 1 :]


class UnknownWords(TextCorruption):
    """Replaces each word with probability ``level`` by a placeholder outside the vocabulary (``<unk>``)."""

    def corrupt(self, words: list[str], level: float, generator: torch.Generator, known: Container[str]) -> list[str]:
        placeholder = "unk"
        while placeholder in known:
            placeholder += "x"
        return [
            f"<{placeholder}>" if u < level else w for w, u in zip(words, _draws(len(words), generator), strict=True)
        ]
