"""The ``data.sampler`` rule, without torch: the datamodule applies it where it is built, and the config checks
call the same function before torch is imported."""

from __future__ import annotations

from mmexp.core.errors import ConfigError

SAMPLERS = (None, "none", "balanced")


def sampler_option(value: object) -> str | None:
    """``data.sampler`` as None (shuffle) or ``"balanced"``."""
    if value not in SAMPLERS:
        raise ConfigError(f"data.sampler must be null (shuffle) or balanced (got {value!r})")
    return None if value in (None, "none") else "balanced"
