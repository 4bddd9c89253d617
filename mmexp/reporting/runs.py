"""Find run directories and load the files a run writes (docs/run_directory.md lists them)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmexp.core.claim_probe import claim_holder_alive

CURVE_KEYS = ("val/f1_macro", "val/acc")
DIED_RUNNING = "interrupted: its process ended without recording it (killed, out of memory, a crash)"


@dataclass(frozen=True)
class Run:
    """One run dir as read from disk; ``problem`` is set when the run cannot be reported on."""

    path: Path
    status: str
    overrides: tuple[str, ...]
    seed: Any = None
    fold: Any = None
    split_seed: Any = None
    metrics: dict[str, Any] | None = None
    curves: dict[str, dict[int, float]] = field(default_factory=dict)
    problem: str | None = None
    kind: str = "train"  # "eval": a `python -m mmexp.eval` dir (eval.json, optional robustness.json)
    evaluation: dict[str, Any] | None = None
    robustness: dict[str, Any] | None = None
    n_train: int | None = None  # rows in split.json's train / test lists (the corrected t-test's ratio)
    n_test: int | None = None
    split: dict[str, Any] = field(default_factory=dict)  # config.yaml's split.* (k, fold, fractions)
    run_id: str | None = None  # run_info.json's id (absent before runs had one): a copied dir has the same
    start_time: str | None = None
    dataset: tuple[tuple[str, str], ...] = ()  # what data and task the run was trained on (``dataset_fingerprint``)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def pair_key(self) -> tuple[Any, Any, Any]:
        """What must match for two runs to be paired: same init seed, same fold, same split seed."""
        return (self.seed, self.fold, self.split_seed)

    @property
    def identity(self) -> tuple[Any, ...]:
        """What makes two dirs the same run: the run id; for a run made before ids, its start time, seed and
        overrides (two runs never start in the same millisecond with the same overrides); else its path."""
        if self.run_id:
            return ("id", self.run_id)
        if self.start_time:
            return ("start", self.start_time, repr(self.seed), self.overrides)
        return ("path", str(self.path))


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Every directory holding ``run_info.json`` at or below ``paths``, in natural order, no duplicates."""
    found: dict[Path, None] = {}
    for root in paths:
        if (root / "run_info.json").is_file():
            found[root.resolve()] = None
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            if "run_info.json" in filenames:
                found[Path(dirpath).resolve()] = None
                dirnames.clear()  # run dirs do not nest; skip checkpoints/, csv/, .hydra/
            else:
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found, key=_natural_key)


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def load_run(path: Path) -> Run:
    """Read one run dir; unreadable or unfinished runs come back with ``problem`` set, never raise."""
    try:
        info = json.loads((path / "run_info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return Run(path, status="unreadable", overrides=(), problem=f"run_info.json unreadable: {e}")
    if not isinstance(info, dict):
        return Run(path, status="unreadable", overrides=(), problem="run_info.json is not a JSON object")
    status = str(info.get("status", "unknown"))
    problem = status
    if status == "running" and claim_holder_alive(path) is False:  # it died before it could say so
        status, problem = "interrupted", DIED_RUNNING
    listed = info.get("overrides")
    overrides = tuple(map(str, listed)) if isinstance(listed, list) else _hydra_overrides(path)
    config = _read_yaml(path / "config.yaml")
    split = config.get("split") if isinstance(config.get("split"), dict) else {}
    common = dict(
        path=path,
        status=status,
        run_id=_text(info.get("run_id")),
        start_time=_text(info.get("start_time")),
        dataset=dataset_fingerprint(path, config),
        overrides=overrides,
        seed=config.get("seed", info.get("seed")),
        fold=split.get("fold"),
        split_seed=split.get("seed"),
        split=split,
        **_split_sizes(path / "split.json"),
    )
    if status != "completed":
        return Run(**common, problem=problem)
    if (path / "eval.json").is_file():
        return load_eval(path, common)
    try:
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Run(**common, problem="completed, but no metrics.json")
    except (OSError, ValueError) as e:
        return Run(**common, problem=f"metrics.json unreadable: {e}")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test"), dict):
        return Run(**common, problem="metrics.json has no test metrics")
    curves = read_curves(path / "csv" / "metrics.csv", epochs=metrics.get("epochs"))
    return Run(**common, metrics=metrics, curves=curves)


def load_eval(path: Path, common: dict[str, Any]) -> Run:
    """An evaluation dir: eval.json (required) and robustness.json (when corruptions were run)."""
    try:
        evaluation = json.loads((path / "eval.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return Run(**common, kind="eval", problem=f"eval.json unreadable: {e}")
    if not isinstance(evaluation, dict):
        return Run(**common, kind="eval", problem="eval.json is not a JSON object")
    try:
        robustness = json.loads((path / "robustness.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        robustness = None
    return Run(
        **common, kind="eval", evaluation=evaluation, robustness=robustness if isinstance(robustness, dict) else None
    )


DATA_KEYS = ("id_col", "image_col", "text_col", "label_col")  # not root/manifest: a moved data folder is the same data
NOT_DATA = ("_target_", "image_size", "task")  # data.synthetic keys that copy another key or only preprocess


def dataset_fingerprint(path: Path, config: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """What defines the rows and labels a run learned from and was scored on, as sorted (key, value) pairs:
    ``task.name``; the manifest columns read; every ``data.synthetic.*`` value that makes the data (not
    image_size, a preprocessing choice); ``rows``, a digest of every row id in split.json; and ``labels``, the
    class names in labels.json. Where the data lives (data.root) is left out, so runs made on another machine
    still pair up. Missing files or keys are simply left out (older runs)."""
    out: dict[str, str] = {}
    task = config.get("task")
    if isinstance(task, dict) and task.get("name") is not None:
        out["task"] = str(task["name"])
    data = config.get("data")
    if isinstance(data, dict):
        out.update({f"data.{k}": str(data[k]) for k in DATA_KEYS if data.get(k) is not None})
        synthetic = data.get("synthetic")
        if isinstance(synthetic, dict):
            out.update({f"data.synthetic.{k}": str(v) for k, v in synthetic.items() if k not in NOT_DATA})
    try:
        split = json.loads((path / "split.json").read_text(encoding="utf-8"))
        ids = sorted({str(i) for part in ("train", "val", "test") for i in split.get(part, [])})
        if ids:
            out["rows"] = f"{len(ids)} rows, {_digest(ids)}"
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    try:
        labels = json.loads((path / "labels.json").read_text(encoding="utf-8"))
        if isinstance(labels, list) and labels:
            out["labels"] = f"{len(labels)} classes, {_digest(map(str, labels))}"
    except (OSError, ValueError):
        pass
    return tuple(sorted(out.items()))


def _digest(items: Any) -> str:
    return hashlib.blake2b("\x1f".join(items).encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int)) and str(value) else None


def _split_sizes(path: Path) -> dict[str, int]:
    """``n_train`` / ``n_test``: the lengths of split.json's id lists (nothing when unreadable)."""
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(split, dict):
        return {}
    return {f"n_{name}": len(ids) for name in ("train", "test") if isinstance(ids := split.get(name), list)}


def _hydra_overrides(path: Path) -> tuple[str, ...]:
    loaded = _read_yaml(path / ".hydra" / "overrides.yaml", default=[])
    return tuple(str(o) for o in loaded) if isinstance(loaded, list) else ()


def _read_yaml(path: Path, default: Any = None) -> Any:
    """YAML content, or ``default`` (an empty dict unless given) when missing or unparsable."""
    default = {} if default is None else default
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return default
    return default if loaded is None or not isinstance(loaded, type(default)) else loaded


def read_curves(path: Path, *, epochs: int | None) -> dict[str, dict[int, float]]:
    """Per-epoch validation curves from Lightning's CSVLogger file (sparse rows).

    The first value logged in an epoch wins. The re-validation of the best checkpoint after fit is
    logged at ``epoch == epochs`` (an epoch that never trained), so epochs >= ``epochs`` are dropped.
    """
    curves: dict[str, dict[int, float]] = {key: {} for key in CURVE_KEYS}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error):
        return curves
    for row in rows:
        epoch = _number(row.get("epoch"))
        if epoch is None or (isinstance(epochs, int) and epochs > 0 and epoch >= epochs):
            continue
        for key in CURVE_KEYS:
            value = _number(row.get(key))
            if value is not None:
                curves[key].setdefault(int(epoch), value)
    return curves


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
