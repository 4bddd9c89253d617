"""Errors a user can cause; entry points print their message as one line, without a traceback."""

from __future__ import annotations

import errno
import os

from omegaconf.errors import GrammarParseError, InterpolationResolutionError, MissingMandatoryValue

# A config that cannot be resolved (an interpolation loop, a missing key, bad ${...} syntax) is the user's to fix.
UNRESOLVABLE = (InterpolationResolutionError, GrammarParseError, MissingMandatoryValue)


class ConfigError(ValueError):
    """A config value, path or data record is wrong; the message names the field and the fix."""


class RunDirInUse(ConfigError):
    """The run directory already holds another run, which must be left untouched."""


class OutputError(ConfigError, OSError):
    """The operating system refused to write a run's file (disk full, read-only dir); nothing was half-written.

    A ConfigError, so every entry point prints it as one line (the fix is the user's: space, permissions);
    an OSError, so best-effort writers (caches) that skip a failed write still do.
    """


def error_lines(error: ConfigError) -> str:
    """How a command prints ``error``: ``mmexp: error: <line>`` for each line (a config check reports every
    problem of a config, one per line), so each problem reads, and greps, like a single error."""
    return "\n".join(f"mmexp: error: {line}" for line in str(error).splitlines() or [""])


def run_dir_in_use(run_dir: object, command: str = "train") -> RunDirInUse:
    """The refusal for a run dir that already holds a run (``run_info.json``), raised before touching it; only
    training can continue a run (``resume=auto``), so only train's message offers it."""
    fix = (
        "use a new hydra.run.dir, or resume=auto to continue it"
        if command.startswith("train")
        else ("leave hydra.run.dir unset for a new dir, or give a new one")
    )
    return RunDirInUse(f"run dir {run_dir} already holds a run; refusing to overwrite it ({fix})")


_HINTS = {
    errno.ENOSPC: "free some space, or point paths.output_dir at another disk",
    errno.EDQUOT: "free some space, or point paths.output_dir at another disk",
    errno.EROFS: "choose a writable paths.output_dir or hydra.run.dir",
    errno.EACCES: "choose a writable paths.output_dir or hydra.run.dir",
    errno.EPERM: "choose a writable paths.output_dir or hydra.run.dir",
    errno.EFBIG: "the file size limit (ulimit -f) is too small for it",
}


def output_error(error: OSError, path: object, *, action: str = "writing") -> OutputError:
    """One line naming the cause and the path: ``no space left on device while writing <path>; <fix>``."""
    reason = os.strerror(error.errno).lower() if error.errno else str(error)
    hint = _HINTS.get(error.errno or 0)
    failure = OutputError(f"{reason} while {action} {path}" + (f"; {hint}" if hint else ""))
    failure.errno = error.errno  # for callers that look at it; the message stays the line above
    return failure


def unresolvable_config(error: Exception, overrides: list[str]) -> ConfigError:
    """One line for a config whose ``${...}`` cannot be resolved (a loop, a missing key, bad syntax), naming the
    key and the overrides that hold an interpolation (where such a loop usually comes from)."""
    reason = str(getattr(error, "msg", None) or error).strip().splitlines()[0]
    key = getattr(error, "full_key", None)
    where = f" (at {key})" if key else ""
    suspects = [o for o in overrides if "${" in o]
    fix = (
        f"check the ${{...}} in the overrides {', '.join(suspects)} (each must name another key, with no loop)"
        if suspects
        else "check the ${...} interpolations of the config (each must name an existing key, with no loop)"
    )
    return ConfigError(f"the config cannot be resolved{where}: {reason}; {fix}")


def cache_write_reason(error: OSError) -> str:
    """Why a write under ``paths.cache_dir`` failed, with the fix for that folder (``output_error``'s hints name
    the run's output dir): ``no space left on device; free some space there, or set paths.cache_dir ...``."""
    reason = os.strerror(error.errno).lower() if error.errno else str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{reason}; free some space there, or set paths.cache_dir to another disk"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{reason}; set paths.cache_dir to a writable folder"
    return reason
