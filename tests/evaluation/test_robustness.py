"""Corruptions, robustness summaries and the reliability diagram, on known inputs and a trained model."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torchmetrics.classification import MulticlassCalibrationError

from mmexp.contracts import Batch
from mmexp.data.text import UNK
from mmexp.data.tokenizers import WordTokenizer
from mmexp.eval import load_checkpoint
from mmexp.evaluation.calibration import reliability
from mmexp.evaluation.corruptions import SEVERITIES, ImageCorruption, UnknownWords
from mmexp.evaluation.inference import infer
from mmexp.evaluation.robustness import (
    corrupt,
    effective_robustness,
    load_baseline,
    relative_robustness,
    robustness_curves,
    scores,
)
from mmexp.training.build import build_datamodule, build_model, instantiate
from tests.e2e.test_eval import compose_eval, train_run

TEXTS = ["A photo of a calm circle today", "stormy square, very nice", "x"]


@pytest.fixture(scope="module")
def corruptions(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every corruption configured in conf/eval.yaml, instantiated."""
    cfg = compose_eval(tmp_path_factory.mktemp("cfg"), tmp_path_factory.mktemp("cache"), "ckpt_path=x")
    return {name: instantiate(node) for name, node in cfg.robustness.corruptions.items()}


def sample_batch() -> tuple[Batch, WordTokenizer]:
    images = torch.randint(0, 256, (3, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    tokenizer = WordTokenizer(max_tokens=8)
    tokenizer.fit(TEXTS)
    ids, mask = tokenizer.encode(TEXTS)
    return Batch(
        image=images,
        text_ids=ids,
        text_mask=mask,
        texts=list(TEXTS),
        label=torch.tensor([0, 1, 2]),
        index=torch.arange(3),
    ), tokenizer


def apply(corruption, severity: int, seed: int = 0) -> Batch:
    batch, tokenizer = sample_batch()
    return corrupt(corruption, severity, generator=torch.Generator().manual_seed(seed), tokenizer=tokenizer)(batch)


def test_severity_zero_is_the_clean_batch_and_higher_ones_change_it_deterministically(corruptions: dict) -> None:
    assert len(corruptions) == 9
    clean, _ = sample_batch()
    for name, corruption in corruptions.items():
        key = "image" if isinstance(corruption, ImageCorruption) else "texts"
        zero = apply(corruption, 0)
        assert all(torch.equal(getattr(zero, k), getattr(clean, k)) for k in ("image", "text_ids", "text_mask")), name
        assert zero.texts == clean.texts, name
        worst = apply(corruption, SEVERITIES)
        changed = not torch.equal(worst.image, clean.image) if key == "image" else worst.texts != clean.texts
        assert changed, name
        again = apply(corruption, SEVERITIES)
        assert torch.equal(again.image, worst.image) if key == "image" else again.texts == worst.texts, name
        if key == "image":
            assert worst.image.dtype == torch.uint8 and worst.image.shape == clean.image.shape


def test_corrupted_texts_are_re_encoded_with_the_checkpoint_vocabulary(corruptions: dict) -> None:
    batch, tokenizer = sample_batch()
    out = corrupt(UnknownWords(levels=[1.0] * SEVERITIES), 1, generator=torch.Generator(), tokenizer=tokenizer)(batch)
    assert out.texts[0] == " ".join(["<unk>"] * 7)
    assert out.text_ids[0, :7].tolist() == [tokenizer.tokens().index(UNK)] * 7 and out.text_mask[0, :7].all()
    for name in ("word_dropout", "word_swap", "char_typos"):
        out = apply(corruptions[name], 3, seed=1)
        assert torch.equal(out.text_ids, tokenizer.encode(out.texts)[0]), name
        assert torch.equal(out.text_mask, out.text_ids != 0)


def test_relative_and_effective_robustness_by_hand() -> None:
    assert relative_robustness([1.0] * 6) == 1.0
    assert relative_robustness([0.8, 0.6, 0.4, 0.2, 0.0, 0.0]) == pytest.approx((0.7 + 0.5 + 0.3 + 0.1 + 0) / 5)
    model, base = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.5, 0.3, 0.2, 0.2, 0.1, 0.1]
    # drops: model -0.1..-0.5, baseline -0.2,-0.3,-0.3,-0.4,-0.4 -> kept beyond: 0.1, 0.1, 0.0, 0.0, -0.1
    assert effective_robustness(model, base) == pytest.approx(0.02)
    assert effective_robustness(model, None) is None
    assert load_baseline({"blur": [1, 0.5]}, "image") == {"blur": [1.0, 0.5]}


def test_ece_of_a_perfectly_calibrated_toy_is_zero_and_an_overconfident_one_is_not() -> None:
    g = torch.Generator().manual_seed(0)
    n = 200_000
    confidence = 0.5 + 0.5 * torch.rand(n, generator=g)
    correct = torch.rand(n, generator=g) < confidence  # right exactly as often as it claims
    labels = torch.zeros(n, dtype=torch.long)
    probs = torch.stack([confidence, 1 - confidence], dim=1)
    probs = torch.where(correct[:, None], probs, probs.flip(1))  # the top class is the label when correct
    calibrated = reliability(probs, labels, bins=15)
    assert calibrated["ece"] < 0.01 and sum(calibrated["count"]) == n
    filled = [i for i, c in enumerate(calibrated["count"]) if c]
    assert all(abs(calibrated["accuracy"][i] - calibrated["confidence"][i]) < 0.03 for i in filled)
    over = reliability(torch.tensor([[0.85, 0.15]] * 10), torch.tensor([0, 1] * 5), bins=10)
    assert over["ece"] == pytest.approx(0.35) and over["count"][8] == 10 and over["accuracy"][0] is None
    torchmetrics_ece = MulticlassCalibrationError(2, n_bins=15, norm="l1")(probs, labels)
    assert calibrated["ece"] == pytest.approx(float(torchmetrics_ece), abs=1e-4)  # same bins, no ties at edges


@pytest.fixture(scope="module")
def trained_concat(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> tuple:
    """A concat model trained to high accuracy (clean test accuracy 0.975; ~5 s), rebuilt from its checkpoint as
    mmexp.eval does."""
    run = train_run(
        tmp_path_factory.mktemp("robust"),
        cache_dir,
        "fusion=concat",
        "text_encoder=bow",
        "trainer.max_epochs=5",
        "data.synthetic.n_samples=800",
    )
    train_cfg = OmegaConf.load(run / "config.yaml")
    ckpt = load_checkpoint(run / "checkpoints" / "best.ckpt", trust=False)
    datamodule = build_datamodule(train_cfg.data, train_cfg.text_encoder)
    datamodule.load_state_dict(ckpt["MultimodalDataModule"])
    datamodule.setup("test")
    model = build_model(train_cfg, num_classes=datamodule.num_classes, **datamodule.tokenizer.encoder_kwargs())
    model.load_state_dict(ckpt["state_dict"])
    return model, datamodule


def test_accuracy_falls_with_severity_and_severity_zero_is_clean_accuracy(
    trained_concat: tuple, corruptions: dict
) -> None:
    model, datamodule = trained_concat
    cpu, loader = torch.device("cpu"), datamodule.test_dataloader()
    clean = scores(infer(model, loader, device=cpu), model)["acc"]
    assert clean > 0.9
    curves = robustness_curves(
        model,
        loader,
        corruptions,
        device=cpu,
        tokenizer=datamodule.tokenizer,
        seed=0,
        baselines={"image": None, "text": None},
    )
    for name, curve in curves.items():
        assert curve["acc"][0] == clean, name
    mean = [sum(c["acc"][s] for c in curves.values()) / len(curves) for s in range(SEVERITIES + 1)]
    assert all(b <= a for a, b in itertools.pairwise(mean)), mean
    assert mean[-1] < clean - 0.1, mean
    repeat = robustness_curves(
        model,
        loader,
        {"gaussian_noise": corruptions["gaussian_noise"]},
        device=cpu,
        tokenizer=datamodule.tokenizer,
        seed=0,
        baselines={},
    )
    assert repeat["gaussian_noise"]["acc"] == curves["gaussian_noise"]["acc"]  # deterministic in the seed
