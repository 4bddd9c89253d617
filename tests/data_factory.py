"""Build small folder datasets (images + manifest) on disk, clean or with chosen defects."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image, ImageDraw

COLORS = {"red": (220, 30, 30), "blue": (30, 60, 220)}


def draw(color: str, shape: str, size: int = 24) -> Image.Image:
    image = Image.new("RGB", (size, size), (0, 0, 0))
    d = ImageDraw.Draw(image)
    box = (4, 4, size - 4, size - 4)
    (d.ellipse if shape == "round" else d.rectangle)(box, fill=COLORS[color])
    return image


def clean_rows(root: Path, n: int = 40) -> list[dict]:
    """Label = colour word (text) + shape (image); images written under root/img/."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        color, shape = ("red", "blue")[i % 2], ("round", "square")[(i // 2) % 2]
        name = f"img/{i:03d}.png"
        draw(color, shape).save(root / name)
        rows.append(
            {
                "id": f"r{i}",
                "image": name,
                "text": f"a {color} thing number {i}",
                "label": f"{color}-{shape}",
                "group": f"g{i % 8}",
                "split": ("train", "train", "val", "test")[(i // 4) % 4],
            }
        )
    return rows


def write_manifest(root: Path, rows: list[dict], fmt: str = "jsonl") -> Path:
    path = root / f"manifest.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        fields = sorted({k for r in rows for k in r})
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    return path
