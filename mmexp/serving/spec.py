"""``preprocessing.json``: what a serving client must do to raw rows before the exported graph sees them.

The graph takes uint8 RGB pixels already resized to the training size, and token ids from the training run's
own tokenizer; it normalizes the pixels and applies the task's activation itself. The spec names every step
(decode, resize mode, tokenizer and its files, longest text) and how to turn probabilities into decisions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mmexp.contracts import Encoder, ImageInput
from mmexp.core.io import write_json_atomic
from mmexp.data.images import RESIZE_MODES
from mmexp.data.text import _TOKEN, PAD, UNK
from mmexp.data.tokenizers import PretrainedTokenizer, Tokenizer, WordTokenizer
from mmexp.serving.graph import INPUTS, OUTPUT

if TYPE_CHECKING:
    from mmexp.serving.export import Trained
    from mmexp.serving.formats import Format
    from mmexp.serving.graph import ServingModel

SPEC = "preprocessing.json"
RESIZE = {
    "squash": "stretch to size x size",
    "pad": "keep the aspect ratio, black borders (PIL.ImageOps.pad)",
    "crop": "keep the aspect ratio, cut the longer side around the center (PIL.ImageOps.fit)",
}
assert set(RESIZE) == set(RESIZE_MODES)


def max_tokens_of(tokenizer: Tokenizer) -> int:
    """The longest token sequence the tokenizer produces (texts are cut there)."""
    if isinstance(tokenizer, WordTokenizer):
        return tokenizer.max_tokens
    if isinstance(tokenizer, PretrainedTokenizer):
        return tokenizer.max_length
    raise TypeError(f"no export spec for tokenizer {type(tokenizer).__name__}")


def text_spec(tokenizer: Tokenizer, out_dir: Path) -> dict[str, Any]:
    """The tokenizer's description, with its vocabulary (vocab.json) or its own files (tokenizer/) in ``out_dir``."""
    common = {"max_tokens": max_tokens_of(tokenizer), "padding": "right, with id 0, to the longest text of the batch"}
    if isinstance(tokenizer, WordTokenizer):
        write_json_atomic(out_dir / "vocab.json", tokenizer.tokens())
        return {
            "tokenizer": "words",
            "vocabulary": "vocab.json",
            "lowercase": tokenizer.lowercase,
            "pattern": _TOKEN.pattern,
            "rule": "tokens = re.findall(pattern, text.lower() if lowercase else text)[:max_tokens]; "
            f"id = index in vocab.json, {UNK!r} (1) when absent; mask = 1 for real tokens",
            "pad": PAD,
            "unknown": UNK,
            **common,
        }
    assert isinstance(tokenizer, PretrainedTokenizer)
    tokenizer.tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    return {
        "tokenizer": "huggingface",
        "files": "tokenizer",
        "rule": "transformers.AutoTokenizer.from_pretrained(files)(texts, padding=True, truncation=True, "
        "max_length=max_tokens); an empty or whitespace-only text gets an all-zero mask and ids",
        **common,
    }


def image_spec(image_size: int, resize: str, image_input: ImageInput | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "size": image_size,
        "decode": "Pillow, EXIF orientation applied, alpha composited on white, converted to RGB",
        "resize": resize,
        "resize_rule": RESIZE[resize] + ", bilinear (PIL.Image.Resampling.BILINEAR)",
        "layout": "uint8 (batch, 3, size, size), RGB, channels first",
        "normalization": "inside the graph: (x / 255 - mean) / std per channel",
    }
    if image_input is not None:
        spec.update(mean=list(image_input.mean), std=list(image_input.std), model_size=image_input.size)
    return spec


def decision_spec(task: str, labels: list[str], thresholds: dict[str, float] | None, positive: int | None) -> Any:
    if task == "multiclass":
        return {"rule": "argmax over the probabilities"}
    if task == "binary":
        assert positive is not None and thresholds is not None
        return {
            "rule": "the positive class when its probability >= its threshold",
            "positive": labels[positive],
            "thresholds": thresholds,
        }
    return {"rule": "each class whose probability >= its threshold", "thresholds": thresholds}


def write_spec(out_dir: Path, spec: dict[str, Any]) -> Path:
    path = out_dir / SPEC
    write_json_atomic(path, spec)
    return path


def signature(image_size: int, max_tokens: int, classes: int, activation: str) -> dict[str, Any]:
    """The graph's inputs and output, by name (the same names in ONNX and TorchScript, in this order)."""
    shapes = {
        "image": ["batch", 3, image_size, image_size],
        "text_ids": ["batch", f"tokens (1..{max_tokens})"],
        "text_mask": ["batch", f"tokens (1..{max_tokens})"],
    }
    dtypes = {"image": "uint8", "text_ids": "int64", "text_mask": "int64 (1 = real token, 0 = padding)"}
    return {
        "inputs": [{"name": n, "dtype": dtypes[n], "shape": shapes[n]} for n in INPUTS],
        "output": {"name": OUTPUT, "dtype": "float32", "shape": ["batch", classes], "activation": activation},
    }


def describe(
    trained: Trained, serving: ServingModel, fmt: Format, out_dir: Path, *, max_tokens: int, verified: dict[str, Any]
) -> dict[str, Any]:
    """The whole spec; the tokenizer's vocabulary or files are written into ``out_dir`` beside it."""
    import torch

    model, labels = trained.model, trained.labels
    image = dict(serving.encoders).get("image")  # absent when the fusion reads text only
    image_input = cast(Encoder, image).image_input if image is not None else None
    return {
        "format": fmt.name,
        "file": fmt.file,
        "exporter": f"{fmt.exporter}, torch {torch.__version__}",
        **signature(trained.image_size, max_tokens, len(labels), "sigmoid" if serving.multilabel else "softmax"),
        "task": model.task.name,
        "labels": labels,
        "decision": decision_spec(model.task.name, labels, model.decision_thresholds(labels), model.objective.positive),
        "modalities": list(serving.encoders),
        "image": image_spec(trained.image_size, trained.resize, image_input),
        "text": text_spec(trained.tokenizer, out_dir),
        "verified": verified,
        "source": trained.source,
    }
