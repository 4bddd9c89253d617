"""mmexp: a Hydra-configured Lightning experiment runner for image + text classification."""

__version__ = "0.1.0"
