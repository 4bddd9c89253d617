"""Everything a run writes into its directory; ``mmexp.report`` reads only these files."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from mmexp.core.config_io import resolved_dict
from mmexp.core.io import write_json_atomic, write_text_atomic
from mmexp.data.fingerprint import test_digests
from mmexp.run.run_info import now_iso, start_info
from mmexp.training.metric_specs import specs_json

if TYPE_CHECKING:
    from mmexp.data.datamodule import DatasetInfo
    from mmexp.data.tokenizers import Tokenizer


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree if isinstance(tree, (int, float, str, bool)) or tree is None else str(tree)}


ALIAS = re.compile(r"^\$\{\.*[\w.]+\}$")  # ${split}, ${..image_size}: a plain copy of another key


def config_aliases(cfg: DictConfig) -> list[str]:
    """Keys whose value is a plain reference to another key (``data.split: ${split}``), so that loggers get
    each value once, under the key it is set at."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    flat = _flatten({k: v for k, v in raw.items() if k != "hydra"} if isinstance(raw, dict) else {})
    return [key for key, value in flat.items() if isinstance(value, str) and ALIAS.match(value)]


TEST_INPUTS = "test_inputs.jsonl"
TEXT_CHARS = 500  # of each test row's text, on one line: more than any excerpt the report shows


def test_inputs(info: DatasetInfo) -> str:
    """One JSON line per test row: its id, its text (on one line, cut) and its image's absolute path, so the
    report's error analysis shows the rows without reading the data or its manifest again."""
    rows = (info.records[i] for i in info.split.test.tolist())
    lines = [
        json.dumps({"id": r.id, "text": " ".join(r.text.split())[:TEXT_CHARS], "image": os.path.abspath(r.image)})
        for r in rows
    ]
    return "".join(line + "\n" for line in lines)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class RunRecorder:
    """Writes config.yaml, run_info.json, split.json, labels/vocab and metrics.json atomically."""

    def __init__(
        self,
        run_dir: Path,
        cfg: DictConfig,
        *,
        overrides: list[str],
        choices: dict[str, str | None] | None = None,
        write: bool = True,
        resumed: bool = False,
        composed: DictConfig | None = None,
    ) -> None:
        """``write=False`` on DDP ranks other than zero: they compute, rank zero writes. ``composed``: the
        command's config with its interpolations (a resumed run's ``cfg`` is its resolved config.yaml).
        ``choices``: each config group's option, kept in run_info.json (a resume keeps the run's own)."""
        self.run_dir, self.write = run_dir, write
        self.config = resolved_dict(cfg)
        self.aliases = config_aliases(composed if composed is not None else cfg)
        self.info = {**start_info(seed=cfg.seed, overrides=overrides), "choices": dict(choices or {})}
        if resumed:
            previous = json.loads((run_dir / "run_info.json").read_text())
            self.info.update(
                run_id=previous.get("run_id", self.info["run_id"]),
                start_time=previous.get("start_time"),
                overrides=previous.get("overrides", []),
                choices=previous.get("choices", self.info["choices"]),
                resumed=previous.get("resumed", 0) + 1,
            )
        self._write_text("config.yaml", OmegaConf.to_yaml(self.config))
        self._write_json("run_info.json", self.info)

    def _write_json(self, name: str, obj: Any) -> None:
        if self.write:
            write_json_atomic(self.run_dir / name, obj)

    def _write_text(self, name: str, text: str) -> None:
        if self.write:
            write_text_atomic(self.run_dir / name, text)

    def flat_config(self) -> dict[str, Any]:
        """The config as loggers get it: nested keys joined by dots, each value once (no aliases)."""
        flat = _flatten({k: v for k, v in self.config.items() if k != "hydra"})
        return {k: v for k, v in flat.items() if not any(k == a or k.startswith(a + ".") for a in self.aliases)}

    def write_data_artifacts(self, info: DatasetInfo, tokenizer: Tokenizer) -> None:
        """split.json, labels.json, vocab.json (the tokenizer's tokens in id order), test_inputs.jsonl, skipped.jsonl.

        split.json also holds a content digest of every test row, so ``mmexp.eval`` can refuse data
        whose held-out rows changed since training.
        """
        self._write_json("split.json", {**info.split.to_json(info.ids), "test_digests": test_digests(info)})
        self._write_json("labels.json", info.label_names)
        self._write_json("vocab.json", tokenizer.tokens())
        self._write_text(TEST_INPUTS, test_inputs(info))
        if info.skipped:
            lines = [json.dumps({"line": b.line, "reason": b.reason, "row": b.row}, default=str) for b in info.skipped]
            self._write_text("skipped.jsonl", "\n".join(lines) + "\n")

    def start(self, *, device: str) -> None:
        self.info.update(device=device)
        self._write_json("run_info.json", self.info)

    def finish(self, *, status: str) -> None:
        self.info.update(status=status, end_time=now_iso())
        self._write_json("run_info.json", self.info)

    def write_metrics(
        self,
        *,
        val: Mapping[str, Any],
        test: Mapping[str, Any],
        details: dict[str, list[Any]],
        best_checkpoint: str,
        labels: list[str],
        epochs: int,
        complexity: dict[str, Any] | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """``complexity``: cost figures from ``mmexp.evaluation.complexity.model_complexity`` (params, FLOPs, times).

        ``test_per_class`` holds precision, recall and F1 per class, and ``support``: each class's test rows.
        """
        per_class = {
            name: dict(zip(labels, values, strict=True))
            for name, values in details.items()
            if name != "confusion_matrix"
        }
        if details.get("confusion_matrix") and "support" not in details:  # the test rows of each class (rows)
            per_class["support"] = dict(
                zip(labels, (int(sum(row)) for row in details["confusion_matrix"]), strict=True)
            )
        metrics = {
            "val": {k: _plain(v) for k, v in val.items()},
            "test": {k: _plain(v) for k, v in test.items()},
            "test_per_class": per_class,
            "confusion_matrix": details.get("confusion_matrix"),
            "labels": labels,
            "thresholds": thresholds,  # binary/multilabel decision thresholds of the tested checkpoint
            "best_checkpoint": best_checkpoint or None,
            "epochs": epochs,
            "metric_specs": specs_json([*val, *test]),  # direction and range of each metric, for the report
        }
        if complexity is not None:
            metrics["complexity"] = complexity
        self._write_json("metrics.json", metrics)
        return metrics
