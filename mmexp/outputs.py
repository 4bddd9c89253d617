"""Everything a run writes into its directory; ``mmexp.report`` reads only these files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmexp.utils.io import write_json_atomic, write_text_atomic
from mmexp.utils.run_info import now_iso, start_info


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree if isinstance(tree, (int, float, str, bool)) or tree is None else str(tree)}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class RunRecorder:
    """Writes config.yaml, run_info.json, split.json, labels/vocab and metrics.json atomically."""

    def __init__(self, run_dir: Path, cfg: DictConfig, *, overrides: list[str]) -> None:
        self.run_dir = run_dir
        self.config = OmegaConf.to_container(cfg, resolve=True)
        self.info = start_info(seed=cfg.seed, overrides=overrides)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(self.config))
        write_json_atomic(run_dir / "run_info.json", self.info)

    def flat_config(self) -> dict[str, Any]:
        return _flatten({k: v for k, v in self.config.items() if k != "hydra"})

    def write_data_artifacts(self, datamodule: Any) -> None:
        ids = [r.id for r in datamodule.records]
        write_json_atomic(self.run_dir / "split.json", datamodule.split.to_json(ids))
        write_json_atomic(self.run_dir / "labels.json", datamodule.label_names)
        write_json_atomic(self.run_dir / "vocab.json", datamodule.vocab.tokens)
        if datamodule.skipped:
            lines = [json.dumps({"line": b.line, "reason": b.reason, "row": b.row}, default=str)
                     for b in datamodule.skipped]
            write_text_atomic(self.run_dir / "skipped.jsonl", "\n".join(lines) + "\n")

    def start(self, *, device: str) -> None:
        self.info.update(device=device, start_time=now_iso())
        write_json_atomic(self.run_dir / "run_info.json", self.info)

    def finish(self, *, status: str) -> None:
        self.info.update(status=status, end_time=now_iso())
        write_json_atomic(self.run_dir / "run_info.json", self.info)

    def write_metrics(self, *, val: dict, test: dict, details: dict, best_checkpoint: str, labels: list[str],
                      epochs: int) -> dict[str, Any]:
        per_class = {name: dict(zip(labels, values)) for name, values in details.items()
                     if name != "confusion_matrix"}
        metrics = {"val": {k: _plain(v) for k, v in val.items()}, "test": {k: _plain(v) for k, v in test.items()},
                   "test_per_class": per_class, "confusion_matrix": details.get("confusion_matrix"),
                   "labels": labels, "best_checkpoint": best_checkpoint or None, "epochs": epochs}
        write_json_atomic(self.run_dir / "metrics.json", metrics)
        return metrics
