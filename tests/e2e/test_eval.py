"""`python -m mmexp.eval`: a checkpoint is rebuilt from its run dir and evaluated in a new dir."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from mmexp.core.errors import ConfigError, RunDirInUse
from mmexp.eval import evaluate
from mmexp.train import train
from tests.conftest import REPO, compose_cfg, compose_command, run_cli

FUSIONS = sorted(p.stem for p in (REPO / "conf" / "fusion").glob("*.yaml"))
NO_CORRUPTIONS = "~robustness.corruptions"


def compose_eval(out: Path, cache_dir: Path, *overrides: str, run_dir: Path | None = None) -> DictConfig:
    """Compose eval.yaml as @hydra.main would, with the eval dir at ``run_dir`` (default out/eval)."""
    return compose_command("eval", out, cache_dir, *overrides, run_dir=run_dir or out / "eval")


def train_run(out: Path, cache_dir: Path, *overrides: str) -> Path:
    """Train in-process into out/run and return the run dir."""
    train(compose_cfg(out, cache_dir, "logger=none", *overrides))
    return out / "run"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """One tiny attention run shared by this module's tests (read only)."""
    return train_run(tmp_path_factory.mktemp("train"), cache_dir, "debug=fast", "fusion=attention")


def test_eval_reproduces_the_training_test_metrics_exactly(trained: Path, tmp_path: Path, cache_dir: Path) -> None:
    result = evaluate(
        compose_eval(tmp_path, cache_dir, f"ckpt_path={trained / 'checkpoints' / 'best.ckpt'}", NO_CORRUPTIONS)
    )
    at_training = json.loads((trained / "metrics.json").read_text())
    for key in ("test/acc", "test/f1_macro", "test/f1_micro", "test/auroc", "test/ece"):
        assert result["test"][key] == at_training["test"][key], key
    assert result["test"]["test/loss"] == pytest.approx(at_training["test"]["test/loss"], rel=1e-5)
    assert result["confusion_matrix"] == at_training["confusion_matrix"]
    split = json.loads((trained / "split.json").read_text())
    assert result["data"]["rows"] == len(split["test"]) and result["data"]["split"] == "test"
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["test"] == result["test"] and not (tmp_path / "eval" / "robustness.json").exists()
    assert json.loads((tmp_path / "eval" / "run_info.json").read_text())["status"] == "completed"
    missing = saved["missing_modality"]
    assert set(missing) == {"both", "no_image", "no_text"} and missing["both"]["acc"] == result["test"]["test/acc"]
    acc = missing["both"]["acc"]
    assert saved["modality_reliance"]["image"] == pytest.approx((acc - missing["no_image"]["acc"]) / acc)
    assert sum(saved["reliability"]["count"]) == len(split["test"])
    cost = saved["complexity"]
    assert cost["params_total"] > 0 and cost["flops_per_sample"] > 0 and cost["latency_s_per_batch"] > 0
    assert (
        cost["train_s_per_epoch"]
        == json.loads((trained / "metrics.json").read_text())["complexity"]["train_s_per_epoch"]
    )


def test_an_attention_run_records_its_modality_weights(trained: Path) -> None:
    """What attention learned is in metrics.json (best checkpoint, val): mean weight per modality, entropy."""
    val = json.loads((trained / "metrics.json").read_text())["val"]
    assert val["val/attn_weight_image"] + val["val/attn_weight_text"] == pytest.approx(1.0, abs=1e-5)
    assert 0.0 < val["val/attn_entropy"] <= 1.0


def test_labels_outside_the_checkpoint_label_map_are_refused(trained: Path, tmp_path: Path, cache_dir: Path) -> None:
    cfg = compose_eval(
        tmp_path,
        cache_dir,
        f"ckpt_path={trained / 'checkpoints' / 'best.ckpt'}",
        NO_CORRUPTIONS,
        "data=synthetic",
        "data.synthetic.n_shapes=4",
        "data.synthetic.n_samples=60",
    )
    with pytest.raises(
        ConfigError, match=r"hold 2 class\(es\) not in the checkpoint's label map: unknown cross-calm, cross-stormy;"
    ):
        evaluate(cfg)


def test_other_data_is_evaluated_on_every_row_with_the_checkpoint_vocabulary(
    trained: Path, tmp_path: Path, cache_dir: Path
) -> None:
    ckpt = f"ckpt_path={trained / 'checkpoints' / 'best.ckpt'}"
    other = ("data=synthetic", "data.synthetic.n_samples=90", "data.synthetic.seed=5")
    result = evaluate(compose_eval(tmp_path, cache_dir, ckpt, NO_CORRUPTIONS, *other))
    assert result["data"]["rows"] == 90 and result["data"]["split"] == "all rows"
    assert result["data"]["labels"] == json.loads((trained / "labels.json").read_text())
    split = evaluate(
        compose_eval(tmp_path, cache_dir, ckpt, NO_CORRUPTIONS, *other, "split=stratified", run_dir=tmp_path / "eval2")
    )
    assert 0 < split["data"]["rows"] < 90 and split["data"]["split"] == "test"  # the test set of that split
    with pytest.raises(ConfigError, match=r"split=... selects rows of a dataset given with data="):
        evaluate(compose_eval(tmp_path, cache_dir, ckpt, "split=random", run_dir=tmp_path / "eval3"))


def test_a_loaded_vocabulary_and_label_map_are_not_refitted(cache_dir: Path, tmp_path: Path) -> None:
    from mmexp.training.build import instantiate

    cfg = compose_cfg(tmp_path, cache_dir, "debug=fast", "data.synthetic.n_samples=60")
    datamodule = instantiate(cfg.data)
    labels = [
        "circle-calm",
        "circle-stormy",
        "square-calm",
        "square-stormy",
        "triangle-calm",
        "triangle-stormy",
        "extra-label",
    ]
    datamodule.load_state_dict({"labels": labels, "vocab": ["<pad>", "<unk>", "calm"], "lowercase": True})
    datamodule.prepare_data()
    datamodule.setup("test")
    assert datamodule.tokenizer.tokens() == ["<pad>", "<unk>", "calm"] and datamodule.label_names == labels
    ids = next(iter(datamodule.test_dataloader())).text_ids
    assert set(ids.unique().tolist()) <= {0, 1, 2}


def test_bad_checkpoint_paths_are_one_line_errors(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(ConfigError, match="ckpt_path is required"):
        evaluate(compose_eval(tmp_path, cache_dir))
    with pytest.raises(ConfigError, match="no such file"):
        evaluate(compose_eval(tmp_path, cache_dir, f"ckpt_path={tmp_path / 'nope.ckpt'}"))
    stray = tmp_path / "stray" / "checkpoints" / "best.ckpt"
    stray.parent.mkdir(parents=True)
    torch.save({"state_dict": {}}, stray)
    with pytest.raises(ConfigError, match=r"config.yaml not found"):
        evaluate(compose_eval(tmp_path, cache_dir, f"ckpt_path={stray}"))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_evaluates_with_each_modality_missing(fusion: str, tmp_path: Path, cache_dir: Path) -> None:
    from mmexp.evaluation.inference import infer
    from mmexp.evaluation.robustness import missing_modality
    from mmexp.training.build import build_model, instantiate

    cfg = compose_cfg(
        tmp_path, cache_dir, "debug=fast", f"fusion={fusion}", "text_encoder=bow", "data.synthetic.n_samples=60"
    )
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    model = build_model(cfg, num_classes=datamodule.num_classes, **datamodule.tokenizer.encoder_kwargs())
    loader = datamodule.test_dataloader()
    clean = infer(model, loader, device=torch.device("cpu"))
    scores = missing_modality(model, loader, device=torch.device("cpu"), clean=clean)
    assert set(scores) == {"both", "no_image", "no_text"}
    for condition in scores.values():
        assert all(math.isfinite(v) for v in condition.values()), condition
    assert torch.isfinite(clean.probs).all()


def test_cli_writes_a_new_eval_dir_and_leaves_the_training_run_untouched(
    trained: Path, tmp_path: Path, cache_dir: Path
) -> None:
    before = snapshot(trained)
    keep = ("gaussian_noise", "word_dropout")
    drop = [
        f"~robustness.corruptions.{name}"
        for name in ("blur", "occlusion", "brightness", "contrast", "word_swap", "char_typos", "unknown_words")
    ]
    result = run_cli(
        "mmexp.eval",
        f"ckpt_path={trained / 'checkpoints' / 'best.ckpt'}",
        *drop,
        f"paths.output_dir={tmp_path / 'outputs'}",
        f"paths.cache_dir={cache_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert snapshot(trained) == before
    [eval_dir] = (tmp_path / "outputs" / "evals").iterdir()
    for name in ("eval.json", "robustness.json", "run_info.json", "config.yaml", "eval.log"):
        assert (eval_dir / name).is_file(), name
    robustness = json.loads((eval_dir / "robustness.json").read_text())
    assert list(robustness["corruptions"]) == list(keep) and robustness["severities"] == [0, 1, 2, 3, 4, 5]
    clean = json.loads((eval_dir / "eval.json").read_text())["test"]["test/acc"]
    for curve in robustness["corruptions"].values():
        assert curve["acc"][0] == clean and curve["effective_robustness"] is None
        assert 0.0 <= curve["relative_robustness"] <= 1.0
    report = run_cli("mmexp.report", str(trained), str(eval_dir), "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Robustness" in md and "| gaussian_noise | image |" in md and "## Missing modalities" in md
    assert "## Complexity" in md
    with pytest.raises(RunDirInUse, match="already holds a run"):  # the training dir as the eval dir
        evaluate(
            compose_eval(tmp_path, cache_dir, f"ckpt_path={trained / 'checkpoints' / 'best.ckpt'}", run_dir=trained)
        )
    assert snapshot(trained) == before
