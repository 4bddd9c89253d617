"""Evaluate a checkpoint: rebuild its model and data, score it clean, without each modality and corrupted.

The model is rebuilt from the training run's config.yaml (the checkpoint's run dir is its parent's
parent) and evaluated with the checkpoint's tokenizer state and label map. The training run dir is only
read. Heavy imports (torch, lightning) happen inside functions so ``--help`` and config errors are fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mmexp.core.config_io import resolved_copy, resolved_dict
from mmexp.core.errors import ConfigError
from mmexp.evaluation.checkpoint_pairing import check_run_config
from mmexp.training.build import build_task

if TYPE_CHECKING:
    from mmexp.training.classifier import MultimodalClassifier

log = logging.getLogger("mmexp.eval")
DEFINITIONS = {
    "relative_robustness": "area under accuracy vs severity (0..S mapped to 0..1, trapezoid rule); "
    "MultiBench's, without its min-max normalization across methods",
    "effective_robustness": "mean over s=1..S of (acc(s) - acc(0)) - (base(s) - base(0)), base = the unimodal "
    "model of the corrupted modality under the same corruption; null without a baseline",
}


def split_chosen() -> bool:
    """True when the command line picked a split option (``split=<name>``), not eval.yaml's every-row split."""
    return HydraConfig.initialized() and HydraConfig.get().runtime.choices.get("split") is not None


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


def data_node(cfg: DictConfig, train_cfg: DictConfig) -> DictConfig:
    """The data config to evaluate on: the user's ``data=...``, else the training run's own.

    Tokenization and image size always come from training (the model was fitted to them); caches go
    to this run's ``paths.cache_dir``; the training data's leakage check already ran at training time.
    The run's own data is read whole and its test rows are then taken by the ids in its split.json.
    """
    user_data = cfg.get("data") is not None
    if not user_data and split_chosen():
        raise ConfigError(
            "split=... selects rows of a dataset given with data=... (e.g. data=folder "
            "data.root=/path); without data=, the checkpoint's own test split is evaluated"
        )
    node = resolved_copy(cfg.data if user_data else train_cfg.data)
    node.text, node.image_size = train_cfg.data.text, train_cfg.data.image_size  # the word tokenizer's spec
    node.resize = train_cfg.data.get("resize", "squash")  # images made square as the model saw them
    node.eval_batch_size = cfg.batch_size or train_cfg.data.get("eval_batch_size") or train_cfg.data.batch_size
    node.cache_dir = cfg.paths.cache_dir
    if user_data and node.get("synthetic"):  # the built-in data labelled for the run's task
        node.synthetic.task = build_task(train_cfg.get("task")).name
    if not user_data:  # every row is read; the run's own test rows are picked by id (recorded_split)
        node.split = {"_target_": "mmexp.data.splits.AllRowsSplit"}
        node.on_leak = "ignore"
    return node


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


def run_evaluations(
    cfg: DictConfig, model: MultimodalClassifier, datamodule: Any, *, device: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Clean test metrics, missing modalities, reliability, complexity; robustness curves when configured."""
    from mmexp.contracts import MODALITIES
    from mmexp.evaluation import robustness as rb
    from mmexp.evaluation.calibration import reliability
    from mmexp.evaluation.complexity import model_complexity
    from mmexp.evaluation.corruptions import SEVERITIES
    from mmexp.evaluation.inference import infer
    from mmexp.training.build import instantiate

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
