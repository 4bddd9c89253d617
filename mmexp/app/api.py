"""The Python API's work (``mmexp.api`` exposes it): train and load models from notebooks and programs
(docs/portable.md).

    import mmexp
    run = mmexp.fit(["fusion=concat", "trainer.max_epochs=5"], data=frame)   # or mmexp.train(...)
    predictor = mmexp.load(run.dir)          # a bundle dir, a run dir or a checkpoint
    predictor.predict(new_frame)             # pandas Series; predict_proba: DataFrame

``fit`` composes the config exactly as ``python -m mmexp.train <overrides>`` would and runs the same ``train``:
the same run dir files and the same numbers. The caller needs no Hydra state; Hydra's singletons are restored
when it returns. ``mmexp.train`` is both the CLI module and, called, ``fit`` (see mmexp/train.py).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from mmexp.core.errors import ConfigError
from mmexp.core.io import write_text_atomic
from mmexp.data.manifest import ERROR
from mmexp.data.records import BadRow, Columns, Record, format_bad_rows, parse_records
from mmexp.portable.bundle import MANIFEST, BundleError, read_bundle, write_bundle
from mmexp.portable.frames import FRAME, FrameRows, frame_rows, is_frame

if TYPE_CHECKING:
    from mmexp.portable.predictor import Predictor

__all__ = ["Run", "fit", "load"]


@dataclass(frozen=True)
class Run:
    """A finished training run: its dir (the CLI's run dir contract) and what metrics.json holds."""

    dir: Path
    metrics: dict[str, Any] = field(repr=False)

    def predictor(self, *, device: str = "cpu") -> Predictor:
        """The run's model (its ``model/`` bundle), ready to predict."""
        return load(self.dir, device=device)


def load(path: str | Path, *, device: str = "cpu") -> Predictor:
    """A ``Predictor`` from a bundle folder, a run dir (its ``model/``) or a checkpoint inside its run dir."""
    from mmexp.portable.predictor import Predictor

    path = Path(path).expanduser()
    if (path / MANIFEST).is_file():
        return Predictor(read_bundle(path), device=device)
    if (path / "model" / MANIFEST).is_file():
        return Predictor(read_bundle(path / "model"), device=device)
    checkpoint = path / "checkpoints" / "best.ckpt" if path.is_dir() else path
    if checkpoint.suffix == ".ckpt" and checkpoint.is_file():
        with tempfile.TemporaryDirectory(prefix="mmexp-bundle-") as tmp:  # the same bundle a run writes
            return Predictor(read_bundle(write_bundle(checkpoint, Path(tmp) / "model")), device=device)
    raise BundleError(
        f"{path}: not a model bundle, a run dir or a checkpoint; give a run's model/ folder, its run dir, or "
        "<run>/checkpoints/best.ckpt"
    )


def fit(
    overrides: Sequence[str] = (),
    *,
    data: Any = None,
    root: str | Path | None = None,
    run_dir: str | Path | None = None,
) -> Run:
    """Train one model as ``python -m mmexp.train <overrides>`` would; return its ``Run``.

    ``data``: a pandas DataFrame with manifest columns (images as paths relative to ``root``, ``PIL.Image``s
    or bytes), a manifest file, or a data folder; None: the config's data (the built-in dataset by default).
    ``run_dir``: where the run goes (default: the CLI's ``<paths.output_dir>/runs/<time>_<overrides>``).
    """
    from mmexp.app.compose import compose_train_config
    from mmexp.app.train import train

    if isinstance(overrides, str):
        raise ConfigError(f"overrides must be a list of strings, e.g. ['fusion=concat'] (got {overrides!r})")
    overrides = [str(o) for o in overrides]
    extra = [] if data is None else ["data=folder"]
    with _hydra_state_restored():
        first = _compose(overrides + extra)
        target = Path(run_dir) if run_dir is not None else Path(str(first.hydra.run.dir))
        if data is not None:
            extra += _data_overrides(data, root=root, cfg=first)
        cfg = compose_train_config(overrides + extra, run_dir=target.expanduser().absolute())
        metrics = train(cfg)
    return Run(target, metrics)


def _compose(overrides: list[str]) -> DictConfig:
    """train.yaml with ``overrides`` and Hydra's node (run dir pattern), as the CLI composes it."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("mmexp.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    OmegaConf.resolve(cfg.hydra.run)  # the run dir's timestamp is taken now
    return cfg


@contextmanager
def _hydra_state_restored() -> Iterator[None]:
    """Composing needs Hydra's process-wide singletons (GlobalHydra, HydraConfig) to itself: a caller's own (a
    notebook that composed, a @hydra.main app calling the API) are set aside and given back."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    config = HydraConfig.instance().cfg
    saved = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        yield
    finally:  # instance() again: Hydra's initialize contexts swap the singleton object itself
        GlobalHydra.instance().clear()
        if saved is not None:
            GlobalHydra.instance().initialize(saved)
        HydraConfig.instance().cfg = config


def _quoted(value: Path) -> str:
    """A path as a Hydra override value (quoted, so any character in it is taken as is)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _data_overrides(data: Any, *, root: str | Path | None, cfg: DictConfig) -> list[str]:
    """``data.root`` / ``data.manifest`` for a frame (written as a manifest under the cache), a manifest file
    or a data folder."""
    if is_frame(data):
        folder, manifest = frame_manifest(data, cfg, root=root)
    else:
        path = Path(data).expanduser().absolute()
        if path.is_dir():
            folder, manifest = path, path / str(cfg.data.manifest)
        elif path.is_file():
            folder, manifest = (Path(root).expanduser().absolute() if root else path.parent), path
        else:
            raise ConfigError(f"data={data}: no such file or folder; give a DataFrame, a manifest or a data folder")
    return [f"data.root={_quoted(folder)}", f"data.manifest={_quoted(manifest)}"]


def frame_manifest(frame: Any, cfg: DictConfig, *, root: str | Path | None = None) -> tuple[Path, Path]:
    """Check a training frame's rows as a manifest's, then write them as one under ``<cache>/frames/`` (named
    by content, so the same frame reuses its files and the decoded-image cache). Returns (data root, manifest)."""
    from mmexp.training.build import build_task

    data = cfg.data
    columns = Columns(
        id=data.id_col, image=data.image_col, text=data.text_col, label=data.label_col, group=data.group_col,
        split=data.split_col,
    )  # fmt: skip
    cache = Path(str(cfg.paths.cache_dir)).expanduser().absolute() / "frames"
    rows = frame_rows(frame, columns, root=root, images_dir=cache / "images")
    records, bad = parse_records(rows.rows, rows.root, columns, build_task(cfg.get("task")))
    if bad and data.on_bad_record == "error":
        raise ConfigError(format_bad_rows(bad, FRAME, describe=rows.describe))
    reasons = {b.line: rows.describe(b) for b in bad}
    text = "".join(json.dumps(_manifest_row(row, reasons.get(line)), default=repr) + "\n" for line, row in rows.rows)
    manifest = cache / f"{hashlib.sha256((str(rows.root) + text).encode()).hexdigest()[:24]}.jsonl"
    if not manifest.is_file():
        write_text_atomic(manifest, text)
    if data.on_bad_record == "error":
        _check_images(records, manifest, data, rows)
    return rows.root, manifest


def _check_images(records: list[Record], manifest: Path, data: DictConfig, rows: FrameRows) -> None:
    """Decode the frame's images as the run will (into its decoded-image cache, which the run then reads), so an
    image that does not decode is reported by index before the run starts."""
    from mmexp.data.image_cache import cache_key, load_or_decode

    paths = [r.image for r in records]
    size, resize, limit = int(data.image_size), str(data.resize), int(data.max_image_pixels)
    key = cache_key(paths, size, manifest, resize, limit)
    folder = Path(str(data.cache_dir)) / "images" if data.image_cache else None
    _, problems = load_or_decode(
        paths, size, manifest=manifest, cache_dir=folder, key=key, resize=resize, max_pixels=limit
    )
    if problems:
        bad = [BadRow(records[i].line, reason, {}) for i, reason in sorted(problems.items())]
        raise ConfigError(format_bad_rows(bad, FRAME, describe=rows.describe))


def _manifest_row(row: dict[str, Any], bad: str | None) -> dict[str, Any]:
    """The row as the manifest holds it; a bad row (kept for ``data.on_bad_record=skip``) as a broken row with
    its reason, so the run skips it for that reason and lists it in skipped.jsonl. Values JSON cannot hold
    (dates, objects: never in a good row's used columns) are written as their repr."""
    return row if bad is None else {ERROR: bad, "row": {k: repr(v) for k, v in row.items()}}
