"""DDP on CPU (2 gloo processes): metrics are synced, so they equal a single-process evaluation.

The run is a binary task: beside every multiclass metric it tunes its decision threshold on the validation
rows of both ranks (all-gathered), which must equal tuning on all of them in one process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mmexp.training.build import build_datamodule, build_model
from tests.conftest import quiet_cpu_trainer, run_cli


def test_ddp_test_metrics_equal_single_process_evaluation(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    result = run_cli(
        "mmexp.train",
        "trainer=ddp_cpu",
        "debug=fast",
        "data.synthetic.n_samples=320",  # 224 / 48 / 48 rows: an even test split, so no rank gets a padded row
        "task=binary",
        "trainer.limit_val_batches=1.0",
        "logger=csv",
        f"hydra.run.dir={run}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((run / "metrics.json").read_text())
    assert (run / "train_ddp_process_1.log").exists()  # the second rank ran, and wrote no run files of its own

    cfg = OmegaConf.load(run / "config.yaml")
    datamodule = build_datamodule(cfg.data, cfg.text_encoder, task=cfg.task)
    datamodule.setup()
    assert len(datamodule.info.split.test) % 2 == 0  # no DistributedSampler padding: every row counted once
    model = build_model(
        cfg, num_classes=datamodule.num_classes, labels=datamodule.label_names, **datamodule.tokenizer.encoder_kwargs()
    )
    state = torch.load(saved["best_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict(state)
    trainer = quiet_cpu_trainer(limit_test_batches=cfg.trainer.limit_test_batches)
    single = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    keys = ("test/acc", "test/f1_macro", "test/precision_macro", "test/recall_macro", "test/loss", "test/auroc")
    for key in (*keys, "test/pr_auc", "test/f1_pos", "test/f1_pos_05"):
        assert saved["test"][key] == pytest.approx(single[key], abs=1e-5), key
    assert sum(map(sum, saved["confusion_matrix"])) == len(datamodule.info.split.test)
    tuned_by_both_ranks = model.thresholds.clone()
    trainer.validate(model, datamodule=datamodule, verbose=False)  # re-tunes on every val row in one process
    assert model.thresholds.tolist() == pytest.approx(tuned_by_both_ranks.tolist(), abs=1e-6)
    assert saved["thresholds"] == {"yes": pytest.approx(tuned_by_both_ranks.item(), abs=1e-6)}
