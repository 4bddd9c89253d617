"""Load pretrained models and tokenizers from local files only: a missing one is one line saying how to get it."""

from __future__ import annotations

import os
from typing import Any

from mmexp.core.errors import ConfigError


def load_pretrained(loader: Any, name: str, field: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(name)`` (a transformers Auto class) with no network.

    ``name`` is a local directory or a hub id already in the local Hugging Face cache; ``field`` is the config
    key that named it, for the error message.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights are local or nowhere: never ask the hub
    import transformers

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # untyped in transformers
    try:
        return loader.from_pretrained(name, local_files_only=True, **kwargs)
    except (OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"{field}={name}: cannot load it from local files ({reason}). Give a local directory written by "
            f"save_pretrained, or download it once where there is network (`huggingface-cli download {name}`) "
            "so it is in the Hugging Face cache; mmexp never downloads at run time"
        ) from None
