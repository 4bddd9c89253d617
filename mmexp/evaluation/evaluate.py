"""Evaluate a checkpoint: rebuild its model and data, score it clean, without each modality and corrupted.

The model is rebuilt from the training run's config.yaml (the checkpoint's run dir is its parent's
parent) and evaluated with the checkpoint's tokenizer state and label map. The training run dir is only
read. Heavy imports (torch, lightning) happen inside functions so ``--help`` and config errors are fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from mmexp.app.trained_run import split_chosen
from mmexp.core.cli import task_overrides
from mmexp.core.config_checks import check_config
from mmexp.core.config_io import resolved_dict
from mmexp.core.errors import ConfigError, RunDirInUse
from mmexp.evaluation.checkpoint_pairing import check_run_config
from mmexp.evaluation.recorded_split import recorded_test_rows

if TYPE_CHECKING:
    from mmexp.training.classifier import MultimodalClassifier

log = logging.getLogger("mmexp.eval")
DEFINITIONS = {
    "relative_robustness": "area under accuracy vs severity (0..S mapped to 0..1, trapezoid rule); "
    "MultiBench's, without its min-max normalization across methods",
    "effective_robustness": "mean over s=1..S of (acc(s) - acc(0)) - (base(s) - base(0)), base = the unimodal "
    "model of the corrupted modality under the same corruption; null without a baseline",
}


def locate_run(ckpt_path: str) -> tuple[Path, Path]:
    """The checkpoint file and its training run dir (``<run>/checkpoints/<name>.ckpt``)."""
    ckpt = Path(ckpt_path).expanduser().resolve()
    if not ckpt.is_file():
        raise ConfigError(
            f"ckpt_path={ckpt_path}: no such file; give a checkpoint such as outputs/runs/<run>/checkpoints/best.ckpt"
        )
    run_dir = ckpt.parent.parent
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(
            f"ckpt_path={ckpt_path}: {run_dir / 'config.yaml'} not found; the checkpoint must stay "
            "in its training run dir (<run>/checkpoints/<name>.ckpt) so the model can be rebuilt"
        )
    return ckpt, run_dir


def load_checkpoint(path: Path, *, trust: bool) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True`` unless the user trusts the file; errors name the fix. The
    checkpoint must have been trained with its run dir's config.yaml (``check_run_config``)."""
    import pickle

    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0][:200]
        raise ConfigError(
            f"ckpt_path={path}: holds objects other than tensors and plain values ({reason}); if you "
            "trust the file, add trust_checkpoint=true to load it with full unpickling"
        ) from None
    except (OSError, RuntimeError, EOFError) as e:
        raise ConfigError(f"ckpt_path={path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "MultimodalDataModule" not in ckpt:
        raise ConfigError(
            f"ckpt_path={path}: not an mmexp training checkpoint (no state_dict or no saved "
            "vocabulary and label map); use checkpoints/best.ckpt or last.ckpt of a run"
        )
    check_run_config(ckpt, path, path.parent.parent / "config.yaml")  # where locate_run found its config
    return ckpt


def pick_device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is invalid: expected auto, cpu, cuda or cuda:<n>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: no CUDA device is available; use device=cpu or device=auto")
    return device


def read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def run_evaluations(
    cfg: DictConfig, model: MultimodalClassifier, datamodule: Any, *, device: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Clean test metrics, missing modalities, reliability, complexity; robustness curves when configured."""
    from mmexp.core.build import instantiate
    from mmexp.evaluation import robustness as rb
    from mmexp.evaluation.calibration import reliability
    from mmexp.evaluation.complexity import model_complexity
    from mmexp.evaluation.corruptions import SEVERITIES
    from mmexp.evaluation.inference import infer
    from mmexp.models.contracts import MODALITIES

    labels = datamodule.label_names
    loader = datamodule.test_dataloader()
    clean = infer(model.to(device), loader, device=device)
    missing = rb.missing_modality(model, loader, device=device, clean=clean)
    results = {
        "rows": len(clean.labels),
        "test": rb.scores(clean, model, prefix="test/", ranking=True),
        **rb.per_class(clean, model, labels),
        "missing_modality": missing,
        "modality_reliance": rb.modality_reliance(missing),
        "reliability": reliability(clean.probs, clean.labels, bins=cfg.calibration_bins, objective=model.objective),
        "complexity": model_complexity(model, next(iter(loader)), device=device, latency_runs=cfg.latency_runs),
    }
    log.info(
        "test/acc %.4f; without image %.4f, without text %.4f",
        results["test"]["test/acc"],
        missing["no_image"]["acc"],
        missing["no_text"]["acc"],
    )
    corruptions = {name: instantiate(node) for name, node in (cfg.robustness.get("corruptions") or {}).items() if node}
    if not corruptions:
        return results, None
    given_node = cfg.robustness.get("baselines")
    given = resolved_dict(given_node) if given_node else {}
    baselines = {m: rb.load_baseline(given.get(m), m) for m in MODALITIES}
    curves = rb.robustness_curves(
        model,
        loader,
        corruptions,
        device=device,
        tokenizer=datamodule.tokenizer,
        seed=cfg.seed,
        baselines=baselines,
    )
    results["robustness"] = {
        name: {k: c[k] for k in ("modality", "relative_robustness", "effective_robustness")}
        for name, c in curves.items()
    }
    shown = {m: given.get(m) if isinstance(given.get(m), str) else baselines[m] for m in baselines}
    robustness = {
        "seed": cfg.seed,
        "severities": list(range(SEVERITIES + 1)),
        "clean_acc": results["test"]["test/acc"],
        "baselines": shown,
        "definitions": DEFINITIONS,
        "corruptions": curves,
    }
    return results, robustness


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

    from mmexp.app.trained_run import for_command
    from mmexp.core.io import write_json_atomic
    from mmexp.core.log_setup import quiet_known_warnings
    from mmexp.evaluation.complexity import reset_peak_memory
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
