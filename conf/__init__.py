"""Hydra config groups (shipped inside the package so a non-editable install finds them)."""
