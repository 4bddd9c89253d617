"""A serving client that knows only an export dir: ``python tests/serving_client.py <export dir> <root> <manifest>``.

It reads preprocessing.json, decodes and tokenizes the manifest's rows as the spec says, runs the exported file
with onnxruntime or torch.jit.load (no mmexp import), and prints ``{id: [probabilities]}`` as JSON. The test of
mmexp.export runs it in a fresh process; docs/export.md shows the same steps.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def load_image(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)).transpose(2, 0, 1)


def tokenize(texts: list[str], text: dict, export_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """ids and mask (rows, tokens) int64, right-padded to the longest text."""
    if text["tokenizer"] == "huggingface":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(export_dir / text["files"]))
        out = tokenizer(texts, padding=True, truncation=True, max_length=text["max_tokens"], return_tensors="np")
        present = np.array([bool(t.strip()) for t in texts])[:, None]
        mask = out["attention_mask"].astype(np.int64) * present
        return out["input_ids"].astype(np.int64) * mask, mask
    vocab = {token: i for i, token in enumerate(json.loads((export_dir / text["vocabulary"]).read_text()))}
    pattern = re.compile(text["pattern"])
    rows = [
        [vocab.get(token, 1) for token in pattern.findall(t.lower() if text["lowercase"] else t)][: text["max_tokens"]]
        for t in texts
    ]
    width = max(1, *(len(r) for r in rows))
    ids = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    return ids, (ids != 0).astype(np.int64)


def predict(export_dir: Path, root: Path, manifest: Path) -> dict[str, list[float]]:
    spec = json.loads((export_dir / "preprocessing.json").read_text())
    assert spec["image"]["resize"] == "squash"  # this client implements the default resize only
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    image = np.stack([load_image(root / r["image"], spec["image"]["size"]) for r in rows])
    ids, mask = tokenize([r["text"] for r in rows], spec["text"], export_dir)
    if spec["format"] == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(export_dir / spec["file"]), providers=["CPUExecutionProvider"])
        probs = session.run(["probabilities"], {"image": image, "text_ids": ids, "text_mask": mask})[0]
    else:
        import torch

        model = torch.jit.load(str(export_dir / spec["file"]))
        with torch.no_grad():
            probs = model(torch.from_numpy(image), torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    return {r["id"]: p.tolist() for r, p in zip(rows, probs, strict=True)}


if __name__ == "__main__":
    print(json.dumps(predict(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))))
