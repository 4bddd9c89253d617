"""Every fusion config builds, keeps its contract, survives missing modalities, and computes its math."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

import mmexp
from mmexp.contracts import EncoderOutput
from mmexp.models.fusion.attention import attend
from mmexp.training.build import build_partial
from mmexp.training.classifier import build_head

FUSION_DIR = Path(mmexp.__file__).parents[1] / "conf" / "fusion"
NAMES = sorted(p.stem for p in FUSION_DIR.glob("*.yaml"))
DIMS = {"image": 24, "text": 16}
TOKENS = {"image": 9, "text": 7}
NUM_CLASSES = 3
# Non-default options that change the code path, on top of every YAML as shipped.
VARIANTS = [
    ("cross_attention", {"direction": "text_to_image"}),
    ("cross_attention", {"direction": "image_to_text"}),
    ("late", {"combine": "learned", "hidden": 8}),
    ("film", {"use_tokens": False}),
    ("tensor", {"hidden": None}),
    ("product", {"rescale": False}),
]
CASES = [pytest.param(name, {}, id=name) for name in NAMES] + [
    pytest.param(name, options, id=f"{name}-" + "-".join(f"{k}={v}" for k, v in options.items()))
    for name, options in VARIANTS
]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def build(name: str, **options: Any) -> torch.nn.Module:
    """Exactly as the run builds it: the YAML's partial, completed with the encoders' dims."""
    cfg = OmegaConf.merge(OmegaConf.load(FUSION_DIR / f"{name}.yaml"), options)
    torch.manual_seed(0)
    return build_partial(cfg)(dims=dict(DIMS), num_classes=NUM_CLASSES)


def features(
    batch: int = 4,
    *,
    seed: int = 1,
    grad: bool = False,
    zero_image: bool = False,
    empty_text_rows: tuple[int, ...] = (),
    device: str = "cpu",
) -> dict[str, EncoderOutput]:
    """Random encodings: every image token real; texts of different lengths (row 0 has no padding)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for m in ("image", "text"):
        pooled = torch.randn(batch, DIMS[m], generator=gen)
        tokens = torch.randn(batch, TOKENS[m], DIMS[m], generator=gen)
        mask = torch.ones(batch, TOKENS[m], dtype=torch.bool)
        if m == "image" and zero_image:
            pooled, tokens = torch.zeros_like(pooled), torch.zeros_like(tokens)
        if m == "text":
            lengths = torch.tensor([TOKENS[m] - 3 * (i % 3) for i in range(batch)])  # 7, 4, 1, 7, ...
            mask = torch.arange(TOKENS[m]) < lengths[:, None]
            mask[list(empty_text_rows)] = False
        pooled, tokens = pooled.to(device).requires_grad_(grad), tokens.to(device).requires_grad_(grad)
        out[m] = EncoderOutput(pooled, tokens, mask.to(device))
    return out


def used_gradient(feats: dict[str, EncoderOutput], modality: str) -> torch.Tensor | None:
    grads = [t.grad for t in feats[modality][:2] if t.grad is not None]
    return torch.stack([g.abs().sum() for g in grads]).sum() if grads else None


@pytest.mark.parametrize(("name", "options"), CASES)
def test_output_shape_matches_out_dim(name: str, options: dict) -> None:
    fusion = build(name, **options)
    out = fusion(features())
    assert out.shape == (4, fusion.out_dim)
    assert set(fusion.modalities) <= {"image", "text"} and fusion.modalities
    if fusion.produces_logits:
        assert fusion.out_dim == NUM_CLASSES
        assert isinstance(build_head(fusion, num_classes=NUM_CLASSES, hidden=8, dropout=0.0), torch.nn.Identity)


@pytest.mark.parametrize(("name", "options"), CASES)
def test_gradients_reach_every_modality_it_reads(name: str, options: dict) -> None:
    fusion = build(name, **options).train()
    feats = features(grad=True)
    out = fusion(feats)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
    for m in ("image", "text"):
        grad = used_gradient(feats, m)
        if m in fusion.modalities:
            assert grad is not None and torch.isfinite(grad) and grad > 0, f"no gradient reaches {m}"
        else:
            assert grad is None, f"{m} is not read, yet gets a gradient"
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in fusion.parameters())


@pytest.mark.parametrize(("name", "options"), CASES)
def test_batch_of_one(name: str, options: dict) -> None:
    fusion = build(name, **options)
    for mode in (True, False):
        out = fusion.train(mode)(features(1))
        assert out.shape == (1, fusion.out_dim) and torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "options"), CASES)
def test_all_padding_text_stays_finite(name: str, options: dict) -> None:
    fusion = build(name, **options)
    feats = features(grad=True, empty_text_rows=(1,))
    for mode in (True, False):
        out = fusion.train(mode)(feats)
        assert torch.isfinite(out).all()
    out.sum().backward()
    for m in fusion.modalities:
        assert all(t.grad is None or torch.isfinite(t.grad).all() for t in feats[m][:2])


@pytest.mark.parametrize(("name", "options"), CASES)
def test_missing_image_as_zeros_stays_finite(name: str, options: dict) -> None:
    fusion = build(name, **options)
    out = fusion(features(zero_image=True, empty_text_rows=(2,)))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "options"), CASES)
def test_eval_mode_is_deterministic(name: str, options: dict) -> None:
    fusion = build(name, **options).eval()
    with torch.no_grad():
        torch.testing.assert_close(fusion(features()), fusion(features()), rtol=0, atol=0)


@cuda
@pytest.mark.parametrize(("name", "options"), CASES)
def test_runs_on_cuda(name: str, options: dict) -> None:
    fusion = build(name, **options).cuda()
    feats = features(grad=True, empty_text_rows=(1,), device="cuda")
    out = fusion(feats)
    out.sum().backward()
    assert out.device.type == "cuda" and torch.isfinite(out).all()
    cpu_out = build(name, **options).eval()(features(empty_text_rows=(1,)))
    torch.testing.assert_close(fusion.eval()(feats).cpu(), cpu_out, rtol=1e-3, atol=1e-3)


# --- seeded numerical checks: the math each fusion claims -------------------------------------


def test_concat_equals_torch_cat() -> None:
    feats = features()
    torch.testing.assert_close(build("concat")(feats), torch.cat([feats["image"].pooled, feats["text"].pooled], -1))


def test_sum_adds_the_projections() -> None:
    fusion, feats = build("sum"), features()
    expected = fusion.proj["image"](feats["image"].pooled) + fusion.proj["text"](feats["text"].pooled)
    torch.testing.assert_close(fusion(feats), expected)


def test_weighted_sum_uses_softmax_normalized_weights() -> None:
    fusion, feats = build("weighted_sum"), features()
    image, text = fusion.proj["image"](feats["image"].pooled), fusion.proj["text"](feats["text"].pooled)
    torch.testing.assert_close(fusion(feats), (image + text) / 2)  # equal weights at init
    with torch.no_grad():
        fusion.weight_logits.copy_(torch.tensor([1.0, -1.0]))
    w = torch.softmax(torch.tensor([1.0, -1.0]), 0)
    torch.testing.assert_close(fusion(feats), w[0] * image + w[1] * text)


def test_attention_weighs_the_projections_by_its_modality_weights() -> None:
    fusion, feats = build("attention"), features()
    weights = fusion.modality_weights(feats)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4))
    image, text = fusion.proj["image"](feats["image"].pooled), fusion.proj["text"](feats["text"].pooled)
    torch.testing.assert_close(fusion(feats), weights[:, :1] * image + weights[:, 1:] * text)


def test_attention_learns_to_weigh_the_informative_modality() -> None:
    """Image carries the label, text is noise: training must move the weight toward the image (equal at init)."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, NUM_CLASSES, (256,), generator=gen)
    image = torch.randn(256, DIMS["image"], generator=gen)
    image[:, :NUM_CLASSES] += 3 * torch.nn.functional.one_hot(labels, NUM_CLASSES)
    feats = {
        "image": EncoderOutput(image, torch.zeros(256, 1, DIMS["image"]), torch.ones(256, 1, dtype=torch.bool)),
        "text": EncoderOutput(
            torch.randn(256, DIMS["text"], generator=gen),
            torch.zeros(256, 1, DIMS["text"]),
            torch.ones(256, 1, dtype=torch.bool),
        ),
    }
    fusion = build("attention")
    head = torch.nn.Linear(fusion.out_dim, NUM_CLASSES)
    before = fusion.modality_weights(feats)[:, 0].mean().item()
    optimizer = torch.optim.Adam([*fusion.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(100):
        loss = torch.nn.functional.cross_entropy(head(fusion(feats)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = fusion.modality_weights(feats)[:, 0].mean().item()
    assert abs(before - 0.5) < 0.1 and after > 0.7, (before, after)


def test_product_multiplies_softmaxes() -> None:
    fusion, feats = build("product", rescale=False), features()
    expected = torch.softmax(fusion.proj["image"](feats["image"].pooled), -1) * torch.softmax(
        fusion.proj["text"](feats["text"].pooled), -1
    )
    torch.testing.assert_close(fusion(feats), expected)
    rescaled = build("product", rescale=True)
    torch.testing.assert_close(rescaled(feats), expected * rescaled.out_dim**2)


def test_gmu_gate_lies_in_open_unit_interval_and_mixes() -> None:
    fusion, feats = build("gated"), features()
    z = fusion.gate(feats)
    assert z.shape == (4, fusion.out_dim) and bool(((z > 0) & (z < 1)).all())
    h_image = torch.tanh(fusion.proj["image"](feats["image"].pooled))
    h_text = torch.tanh(fusion.proj["text"](feats["text"].pooled))
    torch.testing.assert_close(fusion(feats), z * h_image + (1 - z) * h_text)


def test_film_without_text_signal_is_pooled_image() -> None:
    fusion, feats = build("film"), features()
    with torch.no_grad():
        fusion.film.weight.zero_(), fusion.film.bias.zero_()  # gamma = 1, beta = 0
    expected = torch.relu(fusion.image_proj(feats["image"].tokens)).mean(1)
    torch.testing.assert_close(fusion(feats), expected)


def test_bilinear_rank_one_is_product_of_affine_maps() -> None:
    fusion, feats = build("bilinear", rank=1), features()
    ones = torch.ones(4, 1)
    image = torch.cat([feats["image"].pooled, ones], -1) @ fusion.factors["image"][0]
    text = torch.cat([feats["text"].pooled, ones], -1) @ fusion.factors["text"][0]
    torch.testing.assert_close(fusion(feats), fusion.rank_weights[0, 0] * image * text + fusion.bias)


def test_tensor_fusion_is_outer_product_with_ones() -> None:
    fusion, feats = build("tensor", hidden=5), features()
    grid = fusion(feats).view(4, 6, 6)
    image, text = fusion.proj["image"](feats["image"].pooled), fusion.proj["text"](feats["text"].pooled)
    torch.testing.assert_close(grid[:, :5, :5], image[:, :, None] * text[:, None, :])
    torch.testing.assert_close(grid[:, :5, 5], image)  # the appended 1 keeps the unimodal terms
    torch.testing.assert_close(grid[:, 5, :5], text)
    torch.testing.assert_close(grid[:, 5, 5], torch.ones(4))


@pytest.mark.parametrize("options", [{}, {"combine": "learned"}], ids=["mean", "learned-at-init"])
def test_late_mean_is_mean_of_head_logits(options: dict) -> None:
    fusion, feats = build("late", **options).eval(), features()
    heads = [fusion.heads[m](feats[m].pooled) for m in ("image", "text")]
    torch.testing.assert_close(fusion(feats), (heads[0] + heads[1]) / 2)


def test_late_survives_a_missing_image() -> None:
    fusion = build("late").eval()
    feats = features(zero_image=True)
    text_logits = fusion.heads["text"](feats["text"].pooled)
    torch.testing.assert_close(fusion(feats), (fusion.heads["image"].bias + text_logits) / 2)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        pytest.param("cross_attention", {"direction": d}, id=f"cross_attention-{d}")
        for d in ("both", "text_to_image", "image_to_text")
    ]
    + [pytest.param(name, {}, id=name) for name in ("early_transformer", "film")],
)
def test_padded_text_positions_do_not_change_the_output(name: str, options: dict) -> None:
    fusion = build(name, **options).eval()
    feats = features(empty_text_rows=(1,))
    text = feats["text"]
    noisy = text.tokens.masked_fill(~text.mask.unsqueeze(-1), 1e3)  # garbage where the mask says padding
    changed = dict(feats, text=EncoderOutput(text.pooled, noisy, text.mask))
    assert not torch.equal(noisy, text.tokens)
    with torch.no_grad():
        torch.testing.assert_close(fusion(changed), fusion(feats))


def test_attention_over_no_real_key_gives_zeros_and_finite_gradients() -> None:
    attention = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    query, keys = torch.randn(2, 3, 8, requires_grad=True), torch.randn(2, 4, 8, requires_grad=True)
    key_mask = torch.tensor([[True, True, False, False], [False] * 4])
    out = attend(attention, query, keys, key_mask)
    assert torch.isfinite(out).all() and torch.equal(out[1], torch.zeros(3, 8))
    out.sum().backward()
    assert torch.isfinite(keys.grad).all() and torch.isfinite(attention.in_proj_weight.grad).all()
    torch.testing.assert_close(out[0], attention(query[:1], keys[:1, :2], keys[:1, :2])[0][0])


def test_cross_attention_ignores_text_entirely_when_it_is_all_padding() -> None:
    fusion = build("cross_attention", direction="image_to_text").eval()
    feats = features(empty_text_rows=(0, 1, 2, 3))
    expected = fusion.norm["image_to_text"](fusion.proj["image"](feats["image"].tokens)).mean(1)
    torch.testing.assert_close(fusion(feats), expected)


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("cross_attention", {"direction": "sideways"}, "direction"),
        ("cross_attention", {"heads": 3}, "heads"),
        ("early_transformer", {"heads": 3}, "heads"),
        ("late", {"combine": "max"}, "combine"),
    ],
)
def test_bad_options_name_the_field(name: str, options: dict, field: str) -> None:
    with pytest.raises(Exception, match=field):
        build(name, **options)
