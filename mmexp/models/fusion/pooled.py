"""Fusion strategies: plain nn.Modules built from the encoders' output dims.

Contract (the classifier relies on it):
- constructor: keyword-only ``dims`` ({"image": D_i, "text": D_t}) and ``num_classes`` (most
  fusions ignore it; late fusion needs it), plus the options of its YAML in conf/fusion/;
- attributes: ``out_dim`` and ``modalities`` (the inputs it reads; unused encoders are not built);
  ``produces_logits`` (class attribute, False unless the output already is (B, num_classes) logits,
  which gets no head on top);
- an option the user got wrong raises ConfigError naming ``fusion.<option>``;
- ``forward({modality: EncoderOutput}) -> (B, out_dim)``. A missing modality arrives as an
  encoding of zeros (image) or of an all-padding text (mask all False): outputs must stay finite.
"""

from __future__ import annotations

import torch
from torch import nn

from mmexp.contracts import MODALITIES, EncoderOutput
from mmexp.core.errors import ConfigError
from mmexp.models.ops import masked_mean


def check_positive(**options: int) -> None:
    """ConfigError naming the first ``fusion.<option>`` that is not a positive integer."""
    for name, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"fusion.{name} must be a positive integer (got {value!r})")


def check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"fusion.dropout must be in [0, 1) (got {dropout})")


class ConcatFusion(nn.Module):
    """Concatenate the pooled vectors (seed 003; MultiBench Concat)."""

    modalities: tuple[str, ...] = MODALITIES
    produces_logits: bool = False

    def __init__(self, *, dims: dict[str, int], num_classes: int) -> None:
        super().__init__()
        self.out_dim = sum(dims[m] for m in self.modalities)

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        return torch.cat([features[m].pooled for m in self.modalities], dim=-1)


class AttentionFusion(nn.Module):
    """Project each modality to ``hidden``, weight them by a softmax over learned scores (seed 001).

    Per row: ``h_m = W_m x_m``, ``w = softmax_m(v . tanh(h_m))``, output ``sum_m w_m h_m``: a convex mix of two
    projections, so the head never sees both at full strength, and a modality with a small weight also learns
    slowly (its projection's gradient is scaled by its weight). This is the method, not a bug, and on small data
    it decides the mix early: once the head fits the training set (train accuracy 1.0 within ~4 epochs on
    ~1,000 rows of frozen features) the loss no longer moves the weights, which stay where the first epochs put
    them. Measured (docs/fusions.md): on CM_MEMES it collapses onto the text (image weight 0.02-0.15), i.e. it
    behaves as text only; on Flipkart it mixes (0.21-0.38), and the same split with another model seed moved the
    image weight from 0.21 to 0.42. Runs log ``val/attn_weight_<modality>`` and ``val/attn_entropy``: look
    at them before reading an attention result, and prefer ``concat``/``gated`` where a stable mix matters.
    """

    modalities: tuple[str, ...] = MODALITIES
    produces_logits: bool = False

    def __init__(self, *, dims: dict[str, int], num_classes: int, hidden: int = 128) -> None:
        super().__init__()
        check_positive(hidden=hidden)
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], hidden) for m in self.modalities})
        self.score = nn.Sequential(nn.Tanh(), nn.Linear(hidden, 1, bias=False))
        self.out_dim = hidden

    def _project(self, features: dict[str, EncoderOutput]) -> tuple[torch.Tensor, torch.Tensor]:
        projected = torch.stack([self.proj[m](features[m].pooled) for m in self.modalities], dim=1)  # (B, M, H)
        return projected, torch.softmax(self.score(projected), dim=1)  # weights (B, M, 1)

    def modality_weights(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        """(B, M): each row's weight per modality (order of ``modalities``); logged as ``val/attn_weight_*``."""
        return self._project(features)[1].squeeze(-1)

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        projected, weights = self._project(features)
        return (weights * projected).sum(1)


class UnimodalFusion(nn.Module):
    """Use one modality only: the baseline every fusion must beat."""

    modalities: tuple[str, ...]  # (modality,), set per instance
    produces_logits: bool = False

    def __init__(self, *, dims: dict[str, int], num_classes: int, modality: str) -> None:
        super().__init__()
        if modality not in MODALITIES:
            raise ConfigError(f"fusion.modality must be one of {', '.join(MODALITIES)} (got {modality!r})")
        self.modalities = (modality,)
        self.out_dim = dims[modality]

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        return features[self.modalities[0]].pooled


class SumFusion(nn.Module):
    """Project each modality to ``hidden`` and add (seed 000's 加权求和 when ``weighted``).

    ``weighted``: learned scalar weights, softmax-normalized over modalities (equal at init).
    """

    modalities: tuple[str, ...] = MODALITIES
    produces_logits: bool = False

    def __init__(self, *, dims: dict[str, int], num_classes: int, hidden: int = 128, weighted: bool = False) -> None:
        super().__init__()
        check_positive(hidden=hidden)
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], hidden) for m in self.modalities})
        self.weight_logits = nn.Parameter(torch.zeros(len(self.modalities))) if weighted else None
        self.out_dim = hidden

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        projected = torch.stack([self.proj[m](features[m].pooled) for m in self.modalities], dim=1)  # (B, M, H)
        if self.weight_logits is None:
            return projected.sum(1)
        return torch.einsum("m,bmh->bh", torch.softmax(self.weight_logits, 0), projected)


class ProductFusion(nn.Module):
    """Elementwise product of per-modality softmax distributions (seed 000).

    As in seed 000, each modality is projected to ``hidden`` and turned into a softmax over those
    units; the fused vector is their elementwise product. A product of two softmaxes is ~1/hidden**2
    per unit, so ``rescale`` multiplies it by hidden**2 (ones for uniform inputs): a constant factor
    the head could learn, but that plain SGD would not; set it false to reproduce the original.
    """

    modalities: tuple[str, ...] = MODALITIES
    produces_logits: bool = False

    def __init__(self, *, dims: dict[str, int], num_classes: int, hidden: int = 128, rescale: bool = True) -> None:
        super().__init__()
        check_positive(hidden=hidden)
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], hidden) for m in self.modalities})
        self.scale = float(hidden**2) if rescale else 1.0
        self.out_dim = hidden

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        image, text = (torch.softmax(self.proj[m](features[m].pooled), dim=-1) for m in self.modalities)
        return image * text * self.scale


class GatedFusion(nn.Module):
    """Gated multimodal unit (GMU, Arevalo et al. 2017): a learned gate mixes tanh projections."""

    modalities: tuple[str, ...] = MODALITIES
    produces_logits: bool = False

    def __init__(self, *, dims: dict[str, int], num_classes: int, hidden: int = 128) -> None:
        super().__init__()
        check_positive(hidden=hidden)
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], hidden) for m in self.modalities})
        self.gate_proj = nn.Linear(sum(dims[m] for m in self.modalities), hidden)
        self.out_dim = hidden

    def gate(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        """z = sigmoid(W_z [x_image; x_text]): the weight of the image in each unit, (B, hidden)."""
        return torch.sigmoid(self.gate_proj(torch.cat([features[m].pooled for m in self.modalities], dim=-1)))

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        image, text = (torch.tanh(self.proj[m](features[m].pooled)) for m in self.modalities)
        z = self.gate(features)
        return z * image + (1 - z) * text


class FiLMFusion(nn.Module):
    """FiLM (Perez et al. 2018): the pooled text predicts gamma, beta that modulate projected image features.

    ``use_tokens``: modulate each image token, then masked-mean pool; else modulate the pooled image.
    gamma is predicted as 1 + delta so that at init the text leaves the image features unchanged.
    """

    modalities: tuple[str, ...] = MODALITIES
    produces_logits: bool = False

    def __init__(self, *, dims: dict[str, int], num_classes: int, hidden: int = 128, use_tokens: bool = True) -> None:
        super().__init__()
        check_positive(hidden=hidden)
        self.image_proj = nn.Linear(dims["image"], hidden)
        self.film = nn.Linear(dims["text"], 2 * hidden)
        self.use_tokens = use_tokens
        self.out_dim = hidden

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        delta, beta = self.film(features["text"].pooled).chunk(2, dim=-1)
        image = features["image"]
        if not self.use_tokens:
            return torch.relu((1 + delta) * self.image_proj(image.pooled) + beta)
        modulated = torch.relu((1 + delta.unsqueeze(1)) * self.image_proj(image.tokens) + beta.unsqueeze(1))
        return masked_mean(modulated, image.mask)


class LowRankBilinearFusion(nn.Module):
    """Low-rank multimodal fusion (LMF, Liu et al. 2018; MultiBench LowRankTensorFusion, device-agnostic).

    Each modality vector gets a 1 appended and is mapped by ``rank`` factors to ``hidden``; the
    factors' outputs are multiplied across modalities and summed over the rank with learned weights.
    """

    modalities: tuple[str, ...] = MODALITIES
    produces_logits: bool = False

    def __init__(self, *, dims: dict[str, int], num_classes: int, hidden: int = 64, rank: int = 4) -> None:
        super().__init__()
        check_positive(hidden=hidden, rank=rank)
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(rank, dims[m] + 1, hidden)) for m in self.modalities}
        )
        self.rank_weights = nn.Parameter(torch.empty(1, rank))
        self.bias = nn.Parameter(torch.zeros(hidden))
        for factor in self.factors.values():
            nn.init.xavier_normal_(factor)
        nn.init.xavier_normal_(self.rank_weights)
        self.out_dim = hidden

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        fused = None
        for m in self.modalities:
            x = features[m].pooled
            x = torch.cat([x, x.new_ones(x.shape[0], 1)], dim=-1)
            z = torch.einsum("bd,rdh->rbh", x, self.factors[m])  # (rank, B, hidden)
            fused = z if fused is None else fused * z
        return torch.einsum("r,rbh->bh", self.rank_weights[0], fused) + self.bias


class TensorFusion(nn.Module):
    """Tensor fusion (TFN, Zadeh et al. 2017; MultiBench TensorFusion): flattened outer product of [x_i;1], [x_t;1].

    ``hidden``: project each modality to this size first, so the output stays (hidden+1)**2 wide;
    null keeps the encoders' dims ((D_i+1)*(D_t+1) features).
    """

    modalities: tuple[str, ...] = MODALITIES
    produces_logits: bool = False

    def __init__(self, *, dims: dict[str, int], num_classes: int, hidden: int | None = 32) -> None:
        super().__init__()
        if hidden is not None:
            check_positive(hidden=hidden)
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], hidden) if hidden else nn.Identity() for m in self.modalities})
        sizes = [(hidden or dims[m]) + 1 for m in self.modalities]
        self.out_dim = sizes[0] * sizes[1]

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        image, text = (self.proj[m](features[m].pooled) for m in self.modalities)
        image = torch.cat([image, image.new_ones(image.shape[0], 1)], dim=-1)
        text = torch.cat([text, text.new_ones(text.shape[0], 1)], dim=-1)
        return torch.einsum("bi,bt->bit", image, text).flatten(1)


class LateFusion(nn.Module):
    """Per-modality classifier heads whose logits are averaged or learned-weighted (seed 002; MMF LateFusion).

    ``hidden``: 0 for linear heads, else a one-hidden-layer MLP. ``combine``: ``mean`` or ``learned``
    (softmax-normalized scalar weights, equal at init).
    """

    modalities: tuple[str, ...] = MODALITIES
    produces_logits: bool = True

    def __init__(
        self, *, dims: dict[str, int], num_classes: int, hidden: int = 0, dropout: float = 0.1, combine: str = "mean"
    ) -> None:
        super().__init__()
        if combine not in ("mean", "learned"):
            raise ConfigError(f"fusion.combine must be mean or learned (got {combine!r})")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
            raise ConfigError(f"fusion.hidden must be 0 (linear heads) or a positive integer (got {hidden!r})")
        check_dropout(dropout)
        self.heads = nn.ModuleDict({m: self._head(dims[m], num_classes, hidden, dropout) for m in self.modalities})
        self.weight_logits = nn.Parameter(torch.zeros(len(self.modalities))) if combine == "learned" else None
        self.out_dim = num_classes

    @staticmethod
    def _head(dim: int, num_classes: int, hidden: int, dropout: float) -> nn.Module:
        if not hidden:
            return nn.Linear(dim, num_classes)
        return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, features: dict[str, EncoderOutput]) -> torch.Tensor:
        logits = torch.stack([self.heads[m](features[m].pooled) for m in self.modalities], dim=1)  # (B, M, C)
        if self.weight_logits is None:
            return logits.mean(1)
        return torch.einsum("m,bmc->bc", torch.softmax(self.weight_logits, 0), logits)
