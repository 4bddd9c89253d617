"""Config targets that moved: a run dir's config.yaml names the classes of the mmexp that trained it, so a class
that became a configuration of another is mapped here once, and old run dirs still rebuild (eval, predict, export).

The mapping changes only what is built: config.yaml and the config stamp in its checkpoints stay as written, so
they still match each other.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

MINILM = "all-MiniLM-L6-v2"  # mmexp.core.pretrained.PACKAGED
MOVED: dict[str, dict[str, Any]] = {  # old _target_ -> the target and options that replace it
    # issue 26: text_encoder=minilm is the Hugging Face text encoder with mean pooling and normalization
    "mmexp.models.encoders.pretrained.MiniLMEncoder": {
        "_target_": "mmexp.models.encoders.huggingface.HFTextEncoder",
        "name": MINILM,
        "pool": "mean",
        "normalize": True,
    },
    "mmexp.models.encoders.pretrained.MiniLMTokenizer": {
        "_target_": "mmexp.data.tokenizers.PretrainedTokenizer",
        "path": MINILM,
    },
}


def current(node: Any) -> Any:
    """``node`` with a moved ``_target_`` replaced by what it became; any other node as it is."""
    if not isinstance(node, DictConfig) or node.get("_target_") not in MOVED:
        return node
    return OmegaConf.merge(node, MOVED[str(node._target_)])
