"""The package version, in the bottom layer so any layer can stamp what it writes (a model bundle) with it."""

__version__ = "0.1.0"
