"""Errors a user can cause; entry points print their message as one line, without a traceback."""


class ConfigError(ValueError):
    """A config value, path or data record is wrong; the message names the field and the fix."""


class RunDirInUse(ConfigError):
    """The run directory already holds another run, which must be left untouched."""
