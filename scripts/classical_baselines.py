"""Classical baselines on exactly mmexp's split: what a careful user gets from scikit-learn in twenty lines.

    python scripts/classical_baselines.py --out outputs/baselines/<name> --folds 0,1,2,3,4 \
        data=folder data.root=/path data.manifest=manifest.jsonl split=kfold

For each fold (and seed) it reads the data through mmexp's own datamodule (same validation, same split, same
decoded images) and fits three logistic regressions, the regularization strength chosen on the validation set:

- ``tfidf``: TF-IDF of word 1-2-grams and character 2-4-grams of the text (characters cover CJK text);
- ``color_hist``: a joint 8x8x8 RGB colour histogram of the image plus per-channel 16-bin histograms;
- ``tfidf+color_hist``: both feature sets side by side.

Each result is written as a run dir (``run_info.json``, ``config.yaml``, ``metrics.json`` with ``test/acc``,
``test/f1_macro``, ...) whose override is ``baseline=<name>``, so ``python -m mmexp.report`` ranks the baselines
in the same table as mmexp's runs (pass both directories). Needs scikit-learn (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import StandardScaler

from mmexp.app.compose import compose_train_config
from mmexp.core.io import write_json_atomic, write_text_atomic
from mmexp.run.run_info import now_iso
from mmexp.training.build import build_datamodule

STRENGTHS = (0.01, 0.1, 1.0, 10.0, 100.0)


def color_histograms(images: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) uint8 -> (N, 512 + 48): joint 8x8x8 RGB histogram and 16 bins per channel, each summing to 1."""
    n, _, h, w = images.shape
    pixels = images.reshape(n, 3, h * w).astype(np.int64)
    joint_bin = (pixels[:, 0] // 32) * 64 + (pixels[:, 1] // 32) * 8 + pixels[:, 2] // 32
    joint = np.stack([np.bincount(row, minlength=512) for row in joint_bin]) / (h * w)
    channels = [np.stack([np.bincount(row, minlength=16) for row in pixels[:, c] // 16]) / (h * w) for c in range(3)]
    return np.hstack([joint, *channels])


def text_features(texts: list[str], train: np.ndarray) -> sparse.csr_matrix:
    union = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2)),
        ]
    )
    union.fit([texts[i] for i in train])
    return union.transform(texts).tocsr()


def image_features(images: np.ndarray, train: np.ndarray) -> np.ndarray:
    hist = color_histograms(images)
    return StandardScaler().fit(hist[train]).transform(hist)


def fit_and_score(features: Any, labels: np.ndarray, split: Any, seed: int) -> dict[str, dict[str, float]]:
    """Logistic regression with C chosen by validation macro-F1; val and test metrics of the chosen one."""
    best: tuple[float, Any] | None = None
    for strength in STRENGTHS:
        model = LogisticRegression(C=strength, max_iter=3000, class_weight="balanced", random_state=seed)
        model.fit(features[split.train], labels[split.train])
        score = f1_score(labels[split.val], model.predict(features[split.val]), average="macro")
        if best is None or score > best[0]:
            best = (score, model)
    assert best is not None
    return {
        stage: scores(labels[rows], best[1].predict(features[rows]), stage)
        for stage, rows in (("val", split.val), ("test", split.test))
    }


def scores(truth: np.ndarray, predicted: np.ndarray, stage: str) -> dict[str, float]:
    out = {"acc": accuracy_score(truth, predicted)}
    for average in ("macro", "micro"):
        out[f"f1_{average}"] = f1_score(truth, predicted, average=average, zero_division=0)
        out[f"precision_{average}"] = precision_score(truth, predicted, average=average, zero_division=0)
        out[f"recall_{average}"] = recall_score(truth, predicted, average=average, zero_division=0)
    return {f"{stage}/{k}": float(v) for k, v in out.items()}


def write_run(
    run_dir: Path,
    *,
    name: str,
    seed: int,
    split_cfg: dict[str, Any],
    overrides: list[str],
    result: dict[str, dict[str, float]],
) -> None:
    """A run dir mmexp.report reads like a training run's."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump({"seed": seed, "split": split_cfg, "baseline": name}))
    write_json_atomic(run_dir / "metrics.json", {**result, "labels": None, "epochs": 0})
    write_json_atomic(
        run_dir / "run_info.json",
        {"status": "completed", "end_time": now_iso(), "seed": seed, "overrides": [f"baseline={name}", *overrides]},
    )


def run_fold(overrides: list[str], out: Path, seed: int) -> None:
    cfg = compose_train_config([*overrides, f"paths.output_dir={out}"], run_dir=out / "unused")
    datamodule = build_datamodule(cfg.data, cfg.text_encoder, on_leak="ignore")
    datamodule.prepare_data()
    datamodule.setup()
    info = datamodule.info
    if any(not isinstance(r.label, str) for r in info.records):
        raise SystemExit("classical_baselines.py fits single-label classifiers: a multilabel manifest is not supported")
    labels = np.array([datamodule.label_names.index(str(r.label)) for r in info.records])
    split = info.split
    text = text_features(info.tensors.texts, split.train)
    image = image_features(info.tensors.images.numpy(), split.train)
    sets = {"tfidf": text, "color_hist": image, "tfidf+color_hist": sparse.hstack([text, image]).tocsr()}
    split_cfg = {k: v for k, v in dict(cfg.split).items() if k in ("fold", "seed", "k")}
    shown = [o for o in overrides if o.startswith(("split.fold", "seed"))]
    for name, features in sets.items():
        result = fit_and_score(features, labels, split, seed)
        tag = "_".join(o.replace("=", "-") for o in shown) or "run"
        write_run(out / f"{name}_{tag}", name=name, seed=seed, split_cfg=split_cfg, overrides=shown, result=result)
        test = result["test"]
        print(f"{name:18s} {tag:24s} test macro-F1 {test['test/f1_macro']:.3f}  acc {test['test/acc']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the baseline run dirs go")
    parser.add_argument("--folds", default="", help="comma-separated split.fold values (k-fold splits)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (the run seed mmexp runs pair on)")
    parser.add_argument("overrides", nargs="*", help="mmexp config overrides selecting the data and split")
    args = parser.parse_args()
    folds = [f for f in args.folds.split(",") if f] or [None]
    for fold in folds:
        for seed in (int(s) for s in args.seeds.split(",")):
            extra = [f"split.fold={fold}"] if fold is not None else []
            run_fold([*args.overrides, *extra, f"seed={seed}"], args.out, seed)
    print(json.dumps({"out": str(args.out)}))


if __name__ == "__main__":
    main()
