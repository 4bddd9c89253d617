"""What keying the image cache on file bytes costs: read + hash 1,000 JPEGs vs decoding them.

    python scripts/bench_file_digest.py [--n 1000] [--repeats 3]

Writes N noisy 500x375 JPEGs (quality 90, ~100 KB each, about an ImageNet photo) into a temp dir, then times, over
all of them (median of --repeats, page cache warm): stat only (the old size+mtime key), read + sha1 / sha256 /
blake2b / crc32, ``image_cache.cache_key`` (the key as built now), and ``images.load_rgb`` at 224 px (what the cache
saves). docs/reliability.md and docs/decisions.md quote its output.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from mmexp.data.image_cache import cache_key
from mmexp.data.images import load_rgb


def write_jpegs(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:375, 0:500]
    paths = []
    for i in range(n):
        base = np.stack([(x * (i % 7 + 1)) % 256, (y * (i % 5 + 1)) % 256, ((x + y) * 3 + i) % 256], -1)
        pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        paths.append(folder / f"{i:05d}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=90)
    return paths


def hashing(paths: list[Path], name: str) -> Callable[[], None]:
    def run() -> None:
        for path in paths:
            data = path.read_bytes()
            zlib.crc32(data) if name == "crc32" else hashlib.new(name, data).digest()

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(Path(tmp), args.n)
        manifest = Path(tmp) / "manifest.jsonl"
        manifest.write_text("{}\n")
        mb = sum(p.stat().st_size for p in paths) / 2**20
        print(f"{args.n} JPEGs, {mb:.0f} MiB")
        cases: dict[str, Callable[[], object]] = {"stat only (old key)": lambda: [p.stat() for p in paths]}
        cases |= {f"read + {name}": hashing(paths, name) for name in ("sha1", "sha256", "blake2b", "crc32")}
        cases["cache_key (sha1 of bytes)"] = lambda: cache_key(paths, 224, manifest)
        cases["decode at 224 px (load_rgb)"] = lambda: [load_rgb(p, 224) for p in paths]
        times = {}
        for name, run in cases.items():
            runs = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                run()
                runs.append(time.perf_counter() - start)
            times[name] = statistics.median(runs)
        decode = times["decode at 224 px (load_rgb)"]
        for name, seconds in times.items():
            print(f"{name:30s} {seconds * 1000:9.1f} ms  {seconds / decode * 100:6.1f} % of decoding")


if __name__ == "__main__":
    main()
