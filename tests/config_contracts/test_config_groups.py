"""Every option of every config group composes and instantiates; bad values fail early and clearly."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from hydra.errors import ConfigCompositionException

from mmexp.app.config_checks import check_config
from mmexp.core.errors import ConfigError
from mmexp.train import train
from mmexp.training.build import build_callbacks, build_datamodule, build_model
from mmexp.training.loggers import build_loggers
from tests.hf_factory import required_overrides

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")
REQUIRED = {("data", "folder"): [f"data.root={CONF}"]}  # any existing folder composes
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]


def test_every_group_has_options() -> None:
    assert {
        "data",
        "split",
        "image_encoder",
        "text_encoder",
        "fusion",
        "model",
        "optimizer",
        "scheduler",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "debug",
    } <= set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_instantiates(group: str, option: str, make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(f"{group}={option}", *REQUIRED.get((group, option), []), *required_overrides(group, option))
    check_config(cfg)
    datamodule = build_datamodule(cfg.data, cfg.text_encoder)
    assert datamodule.batch_size == cfg.data.batch_size
    text_inputs = {} if cfg.text_encoder.get("tokenizer") else {"vocab_size": 40}  # pretrained: own tokenizer
    model = build_model(cfg, num_classes=3, **text_inputs)
    assert sum(p.numel() for p in model.parameters()) > 0
    loggers = build_loggers(cfg)
    build_callbacks(cfg, has_logger=bool(loggers))
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        return  # a CUDA trainer cannot be built without a GPU; composing and the model are checked above
    hydra.utils.instantiate(cfg.trainer)


def test_pretrained_preset_stops_early_on_the_metric_that_picks_the_checkpoint(make_cfg) -> None:
    """Small data overfits within a few epochs: the preset stops after 5 epochs without a better val macro-F1,
    and best.ckpt is still chosen on that same metric (docs/results.md, "Choosing the preset's fusion")."""
    cfg = make_cfg("experiment=pretrained")
    stop, best = cfg.callbacks.early_stopping, cfg.callbacks.model_checkpoint
    assert (stop.monitor, stop.mode, stop.patience) == ("val/f1_macro", "max", 5)
    assert (best.monitor, best.mode) == (stop.monitor, stop.mode)
    assert cfg.fusion._target_ == "mmexp.models.fusion.pooled.GatedFusion"


def test_unknown_option_lists_choices(make_cfg) -> None:
    with pytest.raises(ConfigCompositionException, match="Available options"):
        make_cfg("fusion=telepathy")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("data.batch_size=-1", "data.batch_size"),
        ("data.image_size=4", "data.image_size"),
        ("split.train=0.8", "must sum to 1"),
        ("optimizer.lr=0", "optimizer.lr"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("model.backbone_lr=-1", "model.backbone_lr"),  # a negative rate would train by gradient ascent, silently
        ("image_encoder=efficientnet_lite0 image_encoder.unfreeze_last=-2", "image_encoder.unfreeze_last"),
    ],
)
def test_bad_values_name_the_field(override: str, field: str, make_cfg) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        train(make_cfg(*override.split()))


def test_missing_required_value_is_named(make_cfg) -> None:
    with pytest.raises(ConfigError, match=r"data\.root is required"):
        check_config(make_cfg("data=folder"))


def test_empty_split_set_is_a_clear_error(make_cfg) -> None:
    cfg = make_cfg(
        "debug=fast",
        "split=random",
        "data.synthetic.n_samples=20",
        "split.train=0.8",
        "split.val=0.2",
        "split.test=0.0",
    )
    with pytest.raises(ConfigError, match=r"test set is empty.*split\.test"):
        train(cfg)


def test_class_missing_from_train_is_a_clear_error(make_cfg) -> None:
    cfg = make_cfg(
        "debug=fast",
        "split=random",
        "data.synthetic.n_samples=12",
        "data.synthetic.n_shapes=6",
        "data.synthetic.n_words=6",
        "split.train=0.34",
        "split.val=0.33",
        "split.test=0.33",
    )
    with pytest.raises(ConfigError, match="no training example"):
        train(cfg)
