"""Errors a user can cause; entry points print their message as one line, without a traceback."""


class ConfigError(ValueError):
    """A config value, path or data record is wrong; the message names the field and the fix."""


class RunDirInUse(ConfigError):
    """The run directory already holds another run, which must be left untouched."""


def run_dir_in_use(run_dir: object) -> RunDirInUse:
    """The refusal for a run dir that already holds a run (``run_info.json``), raised before touching it."""
    return RunDirInUse(
        f"run dir {run_dir} already holds a run; refusing to overwrite it "
        "(use a new hydra.run.dir, or resume=auto to continue it)"
    )
