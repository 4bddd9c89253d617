"""The evaluation job: a checkpoint scored clean, without each modality and corrupted, into eval.json and
robustness.json in a new run dir (the rebuilding and scoring are ``mmexp.evaluation.evaluate``'s).

The training run dir is only read. Heavy imports (torch) happen inside ``evaluate`` so ``--help`` and config
errors are fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmexp.app.cli import task_overrides
from mmexp.app.config_checks import check_config
from mmexp.core.errors import RunDirInUse
from mmexp.evaluation.evaluate import locate_run, pick_device, run_evaluations, split_chosen
from mmexp.evaluation.recorded_split import recorded_test_rows

log = logging.getLogger("mmexp.eval")


def read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def provenance(cfg: DictConfig, ckpt_path: Path, ckpt: dict[str, Any], datamodule: Any, *, rows: int) -> dict[str, Any]:
    """Which checkpoint and which rows the numbers in eval.json come from."""
    user_data = cfg.get("data") is not None
    return {
        "checkpoint": str(ckpt_path),
        "checkpoint_epoch": ckpt.get("epoch"),
        "data": {
            "source": "data=... on the command line" if user_data else "the training run's data",
            "split": "test" if split_chosen() or not user_data else "all rows",
            "rows": rows,
            "labels": datamodule.label_names,
        },
    }


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` into ``cfg.paths.run_dir``; return what eval.json holds."""
    check_config(cfg)
    run_dir = Path(cfg.paths.run_dir)
    ckpt_path, train_dir = locate_run(cfg.ckpt_path)
    if run_dir.resolve() == train_dir or (run_dir / "run_info.json").exists():
        raise RunDirInUse(
            f"run dir {run_dir} already holds a run; mmexp.eval writes to a new dir only "
            "(leave hydra.run.dir unset, or give a fresh one)"
        )

    import torch

    from mmexp.core.io import write_json_atomic
    from mmexp.core.log_setup import quiet_known_warnings
    from mmexp.evaluation.complexity import reset_peak_memory
    from mmexp.evaluation.trained_run import for_command
    from mmexp.run.recorder import RunRecorder

    quiet_known_warnings()
    reset_peak_memory()  # this evaluation's peak, not the process's
    recorder = RunRecorder(run_dir, cfg, overrides=task_overrides())
    run, datamodule = for_command(cfg)  # a relative data.root of the run's own data: see training_config
    datamodule.setup("test")  # keeps the checkpoint's tokenizer state and label map
    if cfg.get("data") is None:
        datamodule.split_rows["test"] = torch.tensor(recorded_test_rows(train_dir, datamodule.info), dtype=torch.int64)
    device = pick_device(str(cfg.device))
    recorder.start(device=str(device))
    torch.manual_seed(cfg.seed)
    results, robustness = run_evaluations(cfg, run.model(), datamodule, device=device)
    train_metrics = read_json(train_dir / "metrics.json")
    train_run = {
        "dir": str(train_dir),
        "overrides": read_json(train_dir / "run_info.json").get("overrides", []),
        "test": train_metrics.get("test"),
    }  # the report groups evals by these overrides
    results = {
        **provenance(cfg, ckpt_path, run.checkpoint, datamodule, rows=results.pop("rows")),
        "train_run": train_run,
        "device": str(device),
        **results,
    }
    train_cost = train_metrics.get("complexity") or {}
    for key in ("train_s_per_epoch", "train_epochs_timed"):  # from the training run, when it timed its epochs
        results["complexity"][key] = train_cost.get(key)
    if robustness is not None:
        write_json_atomic(run_dir / "robustness.json", robustness)
    write_json_atomic(run_dir / "eval.json", results)
    recorder.finish(status="completed")
    log.info("wrote %s", run_dir / "eval.json")
    return results
