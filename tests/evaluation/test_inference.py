"""The one inference loop (``mmexp.evaluation.inference``) and a run's test rows scored once by ``trainer.test``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch

from mmexp.evaluation.inference import infer
from mmexp.evaluation.predictions import write_split_predictions
from mmexp.evaluation.robustness import without
from mmexp.training.build import build_datamodule, build_model
from mmexp.training.metrics import TaskMetrics
from tests.conftest import compose_cfg, quiet_cpu_trainer

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> tuple[Any, Any]:
    """A set-up datamodule (test rows in several batches of 4) and an untrained model over it."""
    out = tmp_path_factory.mktemp("inference")
    cfg = compose_cfg(out, cache_dir, "debug=fast", "text_encoder=bow", "data.synthetic.n_samples=80")
    datamodule = build_datamodule(cfg.data, cfg.text_encoder, task=cfg.get("task"), eval_batch_size=4)
    datamodule.prepare_data()
    datamodule.setup("test")
    torch.manual_seed(0)
    model = build_model(
        cfg, num_classes=datamodule.num_classes, labels=datamodule.label_names, **datamodule.tokenizer.encoder_kwargs()
    )
    return datamodule, model


def test_infer_gives_the_forward_probabilities_with_the_transform_applied(built: tuple[Any, Any]) -> None:
    datamodule, model = built
    batches = list(datamodule.test_dataloader())
    clean = infer(model, batches, device=CPU)
    no_text = infer(model, batches, device=CPU, transform=without("text"))
    with torch.inference_mode():
        expected = torch.cat([model.eval()(b).softmax(-1) for b in batches])
        expected_no_text = torch.cat([model(without("text")(b)).softmax(-1) for b in batches])
    assert torch.equal(clean.probs, expected) and torch.equal(no_text.probs, expected_no_text)
    assert not torch.allclose(clean.probs, no_text.probs)  # the transform reached the model
    assert clean.index is not None and clean.index.tolist() == datamodule.split_rows["test"].tolist()
    assert torch.equal(clean.labels, torch.cat([b.label for b in batches]))
    assert clean.loss == pytest.approx(float(torch.nn.functional.cross_entropy(expected.log(), clean.labels)), 1e-5)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("limit", [1.0, 2])
def test_trainer_test_scores_each_test_row_once_and_test_csv_holds_its_probabilities(
    built: tuple[Any, Any], tmp_path: Path, limit: float
) -> None:
    """``limit_test_batches=2``: the rows trainer.test left out are scored afterwards, still each once."""
    datamodule, model = built
    trainer = quiet_cpu_trainer(limit_test_batches=limit)
    seen: list[int] = []
    hook = model.register_forward_hook(lambda _module, args, _out: seen.extend(args[0].index.tolist()))
    try:
        metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
        path = tmp_path / "test.csv"
        write_split_predictions(path, trainer, model, datamodule, "test", model.test_scored)
    finally:
        hook.remove()
    test_rows = datamodule.split_rows["test"].tolist()
    assert len(test_rows) > 8 and sorted(seen) == sorted(test_rows)  # every test row through forward once
    rows = read_csv(path)
    labels = datamodule.label_names
    assert [r["id"] for r in rows] == [datamodule.info.ids[i] for i in test_rows]
    probs = torch.tensor([[float(r[f"p_{name}"]) for name in labels] for r in rows])
    expected = infer(model, datamodule.test_dataloader(), device=CPU)
    assert torch.equal(probs, expected.probs)  # 9 significant digits: float32 round-trips
    if limit == 1.0:  # the metrics trainer.test reported, recomputed from test.csv
        target = torch.tensor([labels.index(r["label"]) for r in rows])
        recomputed = TaskMetrics(model.objective, "test/", kind="test")
        recomputed.update(probs, target, model.thresholds)
        values = {k: float(v) for k, v in recomputed.compute().items()}
        assert values and all(values[k] == pytest.approx(metrics[k], abs=1e-6) for k in values), (values, metrics)
