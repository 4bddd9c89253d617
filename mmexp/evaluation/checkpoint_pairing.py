"""A checkpoint belongs to the config.yaml that rebuilds its model: checked once, for every command that rebuilds
a trained run (eval, predict, export, ``mmexp.load`` of a checkpoint), through ``evaluate.load_checkpoint``.

Without the check, a checkpoint copied into another run's dir is scored through that dir's config (another image
size, another tokenizer) without complaint, and a config.yaml edited after training ends in a ``load_state_dict``
traceback. Checkpoints written before the stamp existed still load, with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mmexp.core.config_io import load_config
from mmexp.core.errors import ConfigError
from mmexp.core.model_config import STAMP_KEY, stamp_differences

log = logging.getLogger("mmexp.eval")
FIX = "use a checkpoint inside the run dir that trained it (<run>/checkpoints/), or restore that config.yaml"


def check_run_config(ckpt: dict[str, Any], ckpt_path: Path, config_path: Path) -> None:
    """The checkpoint's stamp of its model-defining config matches ``config_path``; one line naming the keys."""
    stamp = ckpt.get(STAMP_KEY)
    if stamp is None:
        log.warning(
            "%s has no stamp of the config it was trained with (written by an older mmexp): not checked against %s",
            ckpt_path,
            config_path,
        )
        return
    if not isinstance(stamp, dict):
        raise ConfigError(f"ckpt_path={ckpt_path}: its {STAMP_KEY} entry is damaged; {FIX}")
    differences = stamp_differences(stamp, load_config(config_path))
    if differences:
        raise ConfigError(
            f"ckpt_path={ckpt_path} was trained with another model config than {config_path}: "
            f"{'; '.join(differences)}; {FIX}"
        )


def load_weights(model: Any, ckpt: dict[str, Any], ckpt_path: Path) -> None:
    """``model.load_state_dict(ckpt["state_dict"])``; weights that do not fit are one line, not a traceback."""
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        details = [line.strip() for line in str(e).splitlines()[1:] if line.strip()] or [str(e).strip()]
        shown = "; ".join(d if len(d) <= 200 else f"{d[:197]}..." for d in details[:2])
        config = Path(ckpt_path).parent.parent / "config.yaml"
        raise ConfigError(
            f"ckpt_path={ckpt_path}: its weights do not fit the model {config} builds ({shown}); {FIX}"
        ) from None
