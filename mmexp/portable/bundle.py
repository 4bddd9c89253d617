"""A model bundle: everything prediction needs, in one folder that loads anywhere (docs/portable.md).

    model/
      bundle.json     format, mmexp version, task, label map, thresholds, input schema, preprocessing, digests
      config.yaml     the model-defining config (encoders, fusion, head, task, tokenizer, image size)
      tokenizer.json  the fitted tokenizer's state (a word vocabulary; a pretrained tokenizer's name)
      weights.pt      ``model.state_dict()`` of the best checkpoint (loads with ``weights_only=True``)

Every training run writes one into ``<run>/model/``; ``write_bundle`` makes one from any checkpoint. Loading
rebuilds the model from ``config.yaml`` (pretrained backbones come from the installed packages, as in
training) and then loads ``weights.pt``: no run dir, no Hydra app. Heavy imports happen inside functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from omegaconf import DictConfig, OmegaConf

from mmexp.core.errors import ConfigError, RunDirInUse, output_error
from mmexp.core.io import write_atomic, write_json_atomic, write_text_atomic
from mmexp.core.model_config import model_config
from mmexp.core.version import __version__

if TYPE_CHECKING:
    from mmexp.data.datamodule import MultimodalDataModule
    from mmexp.training.classifier import MultimodalClassifier

FORMAT = 1  # bundle.json layout; a reader refuses a newer one
MANIFEST = "bundle.json"
FILES = ("config.yaml", "tokenizer.json", "weights.pt")


class BundleError(ConfigError):
    """A bundle that cannot be loaded: damaged, incomplete or from an incompatible mmexp."""


@dataclass(frozen=True)
class Bundle:
    """A bundle read back: its folder, ``bundle.json``, the model config, tokenizer state and weights."""

    path: Path
    meta: dict[str, Any]
    config: DictConfig
    tokenizer_state: dict[str, Any]
    state_dict: dict[str, Any]


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return f"sha256:{sha.hexdigest()}"


def save_bundle(
    out_dir: Path,
    cfg: DictConfig,
    model: MultimodalClassifier,
    datamodule_state: dict[str, Any],
    *,
    source: dict[str, str],
    embed_backbones: bool = False,
) -> Path:
    """Write the bundle of ``model`` (its current weights) into ``out_dir``, atomically: the folder appears
    complete or not at all; a bundle already there is replaced, any other non-empty folder is refused.

    Frozen pretrained weights travel by reference (``model.state_dict()`` holds their source and digest); with
    ``embed_backbones`` they are written into weights.pt, so the bundle does not depend on the installed
    backbone's version (its package still builds the architecture)."""
    import contextlib

    import torch

    from mmexp.contracts import Encoder
    from mmexp.models.encoders.frozen_weights import full_state_dict

    labels = list(datamodule_state["labels"])
    tokenizer_state = {k: v for k, v in datamodule_state.items() if k != "labels"}
    config = model_config(cfg)
    image = dict(model.encoders).get("image")
    spec = cast(Encoder, image).image_input if image is not None else None
    data = config["data"]
    with full_state_dict(model) if embed_backbones else contextlib.nullcontext():
        state_dict = model.state_dict()
    weights = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in state_dict.items()}
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise RunDirInUse(f"{out_dir} is not empty and is not a model bundle; give a new or empty folder")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    except OSError as e:
        raise output_error(e, out_dir) from e
    try:
        write_text_atomic(tmp / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)))
        write_json_atomic(tmp / "tokenizer.json", tokenizer_state)

        def save(f: IO[bytes]) -> None:
            torch.save(weights, f)

        write_atomic(tmp / "weights.pt", save)
        meta = {
            "format": FORMAT,
            "mmexp_version": __version__,
            "task": {k: v for k, v in config["task"].items() if k != "_target_"},  # the options, as recorded
            "labels": labels,
            "thresholds": model.decision_thresholds(labels),
            "inputs": {
                "columns": {k: data.get(f"{k}_col", k) for k in ("id", "image", "text", "label")},
                "modalities": list(model.encoders),
            },
            "image": {
                "size": data.get("image_size"),
                "resize": data.get("resize", "squash"),
                "max_pixels": data.get("max_image_pixels"),
                "encoder_size": spec.size if spec else None,
                "mean": list(spec.mean) if spec else None,
                "std": list(spec.std) if spec else None,
            },
            "tokenizer": config["text_encoder"].get("tokenizer") or data.get("text"),
            "source": source,
            "frozen_weights": "embedded" if embed_backbones else "by reference",
            "files": {name: _digest(tmp / name) for name in FILES},
        }
        write_json_atomic(tmp / MANIFEST, meta)
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished folder to ``out_dir``; an old bundle there is moved aside first, then removed."""
    old = None
    try:
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
    except OSError as e:
        raise output_error(e, out_dir) from e
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_run_bundle(
    run_dir: Path, cfg: DictConfig, model: MultimodalClassifier, datamodule: MultimodalDataModule, *, best: str
) -> Path:
    """A training run's ``model/``: the model as ``trainer.test`` left it (the best checkpoint's weights)."""
    return save_bundle(
        run_dir / "model", cfg, model, datamodule.state_dict(), source={"run_dir": str(run_dir), "checkpoint": best}
    )


def write_bundle(ckpt_path: Path, out_dir: Path, *, embed_backbones: bool = False) -> Path:
    """The bundle of a checkpoint in its training run dir (``python -m mmexp.export format=bundle``, with
    ``embed_backbones=true`` to write frozen pretrained weights into it); returns ``out_dir``."""
    from mmexp.evaluation.trained_run import TrainedRun

    run = TrainedRun.load(ckpt_path)
    model = run.model(OmegaConf.create(model_config(run.config)))  # built as the bundle's config.yaml builds it
    source = {"run_dir": str(run.run_dir), "checkpoint": str(run.checkpoint_path)}
    return save_bundle(out_dir, run.config, model, run.data_state, source=source, embed_backbones=embed_backbones)


def read_bundle(path: Path) -> Bundle:
    """Read and check a bundle folder; any damage (a missing or changed file) or a newer format is one
    ``BundleError`` naming the folder and the fix."""
    import torch

    path = Path(path)
    fix = "write it again (python -m mmexp.export ckpt_path=<run>/checkpoints/best.ckpt format=bundle)"
    try:
        meta = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: not a model bundle (no {MANIFEST}); give a run's model/ folder") from None
    except (OSError, ValueError) as e:
        raise BundleError(f"{path}: {MANIFEST} is damaged ({e}); {fix}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("format"), int) or "files" not in meta:
        raise BundleError(f"{path}: {MANIFEST} is not an mmexp bundle description; {fix}")
    if meta["format"] > FORMAT:
        raise BundleError(
            f"{path}: written by mmexp {meta.get('mmexp_version')} in bundle format {meta['format']}; this mmexp "
            f"{__version__} reads format {FORMAT} and older: upgrade mmexp"
        )
    for name in FILES:
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing; the bundle is incomplete, {fix}")
        if _digest(file) != meta["files"].get(name):
            raise BundleError(f"{path}: {name} does not match the digest in {MANIFEST} (damaged or edited); {fix}")
    try:
        config = OmegaConf.load(path / "config.yaml")
        tokenizer_state = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
        state_dict = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # digests matched, so this is a bundle written wrong: still one line
        raise BundleError(f"{path}: cannot be read ({type(e).__name__}: {e}); {fix}") from None
    if not isinstance(config, DictConfig):
        raise BundleError(f"{path}: config.yaml is not a mapping; {fix}")
    return Bundle(path, meta, config, tokenizer_state, state_dict)
