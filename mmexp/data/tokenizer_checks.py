"""A pretrained tokenizer belongs to its text model: checked before a single text is tokenized.

transformers builds a tokenizer from whatever a folder holds: without its vocabulary files, a BERT tokenizer of
five special tokens (every word ``[UNK]``, training runs to the end on nothing); another model's tokenizer can
make ids the model has no embedding for (an ``IndexError`` mid-training). Each is one line naming both sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmexp.core.errors import ConfigError

TOKENIZER_FILES = ("tokenizer.json",)  # besides the tokenizer class's own vocabulary files


def check_text_model(config: Any, path: str, field: str) -> None:
    """The model config at ``path`` (None: none there) is a text model's: it has a vocabulary."""
    if config is None or getattr(config, "vocab_size", None) is not None:
        return
    kind = type(config).__name__
    if hasattr(config, "num_channels") or hasattr(config, "image_size"):
        raise ConfigError(
            f"{field}={path} is an image model ({kind}, no text vocabulary); "
            f"use it as image_encoder=hf image_encoder.name={path}"
        )
    raise ConfigError(f"{field}={path} is not a text model ({kind} has no text vocabulary); give a text backbone")


def check_tokenizer(tokenizer: Any, config: Any, path: str, field: str) -> None:
    """``tokenizer``'s files are in ``path`` (a local folder), and it has no id the model (``config``, the
    text part of the model config found there; None: none) has no embedding for."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        wanted = list(dict.fromkeys([*TOKENIZER_FILES, *getattr(tokenizer, "vocab_files_names", {}).values()]))
        if not any((folder / name).is_file() for name in wanted):
            raise ConfigError(
                f"{field}={path} has no tokenizer files (none of {', '.join(wanted)}); without them every word "
                "would be read as unknown: save the model's tokenizer there "
                "(AutoTokenizer.from_pretrained(<its source>).save_pretrained(dir))"
            )
    vocab = getattr(config, "vocab_size", None)
    if isinstance(vocab, int) and len(tokenizer) > vocab:
        raise ConfigError(
            f"{field}={path}: its tokenizer has {len(tokenizer)} tokens but the model has {vocab} token embeddings; "
            "the tokenizer belongs to another model: save the model's own tokenizer beside it"
        )
