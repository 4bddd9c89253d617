"""Every image encoder x text encoder x fusion (Hugging Face and EfficientNet backbones: every fusion, one partner):
shapes, forward + backward, gradients reach both encoders."""

from __future__ import annotations

from functools import cache

import hydra
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmexp.contracts import Batch
from mmexp.data.task import Task
from mmexp.training.build import build_partial, build_text_encoder
from mmexp.training.classifier import MultimodalClassifier
from tests.conftest import REPO, composed, cover_fast
from tests.hf_factory import required_overrides

CONF = REPO / "conf"
IMAGE = sorted(p.stem for p in (CONF / "image_encoder").glob("*.yaml"))
TEXT = sorted(p.stem for p in (CONF / "text_encoder").glob("*.yaml"))
FUSIONS = sorted(p.stem for p in (CONF / "fusion").glob("*.yaml"))
# pretrained backbones meet every fusion with one partner each (cnn / lstm); tests/models/encoders/test_huggingface.py
# covers them frozen and fine-tuned; the encoders trained from scratch meet every partner and every fusion
PRETRAINED = {"efficientnet_lite0", "hf"}
COMBINATIONS = [
    (i, t, f)
    for i in IMAGE
    for t in TEXT
    for f in FUSIONS
    if (i not in PRETRAINED or t == "lstm") and (t not in PRETRAINED or i == "cnn")
]
VOCAB, CLASSES = 30, 3


@cache
def encoder(group: str, name: str) -> nn.Module:
    """One instance per encoder option (MiniLM loads once); reused by every combination."""
    overrides = [f"{group}={name}", "data.image_size=16", *required_overrides(group, name)]
    cfg = composed(*overrides)
    if group == "image_encoder":
        return hydra.utils.instantiate(cfg[group])
    own_tokenizer = cfg.text_encoder.get("tokenizer") is not None  # pretrained: no vocab_size
    return build_text_encoder(cfg.text_encoder, **({} if own_tokenizer else {"vocab_size": VOCAB}))


def batch_of(size: int) -> Batch:
    torch.manual_seed(0)
    ids = torch.randint(2, VOCAB, (size, 7))
    ids[:, 5:] = 0  # padding
    return Batch(
        image=torch.randint(0, 256, (size, 3, 16, 16), dtype=torch.uint8),
        text_ids=ids,
        text_mask=ids != 0,
        texts=["a red round thing"] * size,
        label=torch.arange(size) % CLASSES,
        index=torch.arange(size),
    )


def build(
    image_name: str, text_name: str, fusion: str, task: Task | None = None, classes: int = CLASSES
) -> MultimodalClassifier:
    """A classifier over the shared encoder instances, in train mode, without the feature cache."""
    fusion_cfg = composed(f"fusion={fusion}").fusion
    model = MultimodalClassifier(
        image_encoder=encoder("image_encoder", image_name),
        text_encoder=encoder("text_encoder", text_name),
        fusion=build_partial(fusion_cfg),
        num_classes=classes,
        optimizer=torch.optim.AdamW,
        feature_cache=False,
        task=task,
    )
    return model.train()


@pytest.mark.parametrize(
    ("image_name", "text_name", "fusion"), cover_fast(COMBINATIONS, lambda c: c[:2], lambda c: c[2])
)
def test_combination_trains_every_used_encoder(image_name: str, text_name: str, fusion: str) -> None:
    model = build(image_name, text_name, fusion)
    model.zero_grad(set_to_none=True)
    batch = batch_of(2)
    logits = model(batch)
    assert logits.shape == (2, CLASSES) and torch.isfinite(logits).all()
    F.cross_entropy(logits, batch.label).backward()
    for modality, module in model.encoders.items():
        trainable = [p for p in module.parameters() if p.requires_grad]
        if trainable:  # frozen encoders (MiniLM by default) get none, by design
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable), modality
    assert set(model.encoders) == set(model.fusion.modalities)


TASK_CASES = [
    (f, t) for i, f in enumerate(FUSIONS) for t in (("binary", "multilabel") if i % 2 else ("multilabel", "binary"))
]


@pytest.mark.parametrize(("fusion", "task"), cover_fast(TASK_CASES, lambda c: c[0], lambda c: c[1]))
def test_every_fusion_trains_for_each_task(fusion: str, task: str) -> None:
    """The task's loss and probabilities on every fusion's logits (binary: 2 classes; multilabel: K sigmoids)."""
    classes = 2 if task == "binary" else CLASSES
    model = build("cnn", "bow", fusion, Task(name=task), classes)
    batch = batch_of(4)
    target = batch.label % 2 if task == "binary" else F.one_hot(batch.label, CLASSES).float()
    model.zero_grad(set_to_none=True)
    logits = model(batch)
    loss = model.loss(logits, target)
    loss.backward()
    probs = model.objective.probabilities(logits)
    assert probs.shape == (4, classes) and torch.isfinite(loss)
    assert torch.allclose(probs.sum(1), torch.ones(4)) == (task == "binary")  # multilabel: one sigmoid per class
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders.parameters())


BF16_CASES = sorted(
    {("cnn", "lstm", f) for f in FUSIONS}
    | {(i, "lstm", "concat") for i in IMAGE}
    | {("cnn", t, "concat") for t in TEXT}
)


@pytest.mark.parametrize(("image_name", "text_name", "fusion"), BF16_CASES)
def test_bf16_autocast_forward_backward(image_name: str, text_name: str, fusion: str) -> None:
    """Every encoder and fusion under the CPU autocast that ``trainer.precision=bf16-mixed`` uses."""
    model = build(image_name, text_name, fusion)
    batch = batch_of(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(batch)
        loss = F.cross_entropy(logits, batch.label)
    assert torch.isfinite(logits.float()).all()
    loss.backward()
