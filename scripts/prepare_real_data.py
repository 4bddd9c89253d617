"""Turn three public GitHub image + text datasets into mmexp data folders (the real-data runs in docs/results.md).

    python scripts/prepare_real_data.py cm_memes --git-dir /path/to/CM_MEMES.git --out /path/to/cm_memes
    python scripts/prepare_real_data.py flipkart --git-dir /path/to/flipkart.git --out /path/to/flipkart
    python scripts/prepare_real_data.py webnews_zh --git-dir /path/to/Web_News_Datasets.git --out /path/to/webnews_zh

Datasets (GitHub repository, what a row is):

- ``cm_memes``: ``Gitanjali1801/CM_MEMES``, the public sample of CM-Off-Meme (LREC-COLING 2024), code-mixed
  Hindi-English memes; text = the meme text, label = ``Level1`` (offensive / non-offensive) or ``--label``.
- ``flipkart``: ``charlottemllt/Classification-automatique-des-biens-de-consommation``, the Flipkart e-commerce
  sample of 1,050 products; text = product name (or ``--text``), label = first level of the category tree.
- ``webnews_zh``: ``1599421259/Web_News_Datasets``, Chinese web news, one image and one lead text per item,
  10 topics, with the dataset's own train/test split (written as ``split``).

Each output folder holds ``images/``, ``manifest.jsonl`` (``id``, ``image``, ``text``, ``label``, plus ``split``
where the dataset defines one) and ``stats.json`` (source commit, counts, rows skipped and why).

The input is a bare git mirror of the repository, read blob by blob with ``git cat-file --batch`` so no work
tree is checked out: ``git clone --bare https://github.com/<owner>/<name>``. A mirror that lacks some blobs
(a partial snapshot without the largest files) still works: those rows are skipped and counted in ``stats.json``.
The numbers in docs/results.md come from such a snapshot, without blobs of 4 MiB or more, so 3 Flipkart images
were absent (1,047 rows); a full clone gives all 1,050.

Licences: the datasets belong to their authors and carry their own licences and terms of use; none of the three
repositories has a licence file (CM_MEMES asks users to cite its paper). mmexp redistributes none of this data;
this script only converts a copy you fetched yourself. Needs only the standard library and Pillow.
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

Row = dict[str, str]

MAGIC = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpg",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
}


def sniff(data: bytes) -> str | None:
    """File extension from the magic bytes: the repositories' own extensions are not always right."""
    for m, ext in MAGIC.items():
        if data.startswith(m):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"BM"):
        return "bmp"
    return None


class GitBlobs:
    """Files of one revision of a bare mirror, read through one ``git cat-file --batch`` process (thousands of
    images without a checkout or a process each)."""

    def __init__(self, git_dir: str, rev: str = "HEAD") -> None:
        if not os.path.isdir(git_dir):
            sys.exit(f"git dir not found: {git_dir} (git clone --bare https://github.com/<owner>/<name>)")
        self.git_dir, self.rev = git_dir, rev
        self.proc = subprocess.Popen(
            ["git", f"--git-dir={git_dir}", "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout

    def commit(self) -> str:
        """The commit the rows came from, recorded in stats.json."""
        return subprocess.check_output(["git", f"--git-dir={self.git_dir}", "rev-parse", self.rev]).decode().strip()

    def ls(self, prefix: str = "") -> list[str]:
        """Paths of all files (recursively) under `prefix`."""
        args = ["git", f"--git-dir={self.git_dir}", "ls-tree", "-r", "-z", "--name-only", self.rev]
        if prefix:
            args.append(prefix)
        out = subprocess.check_output(args).decode("utf-8")
        return [p for p in out.split("\0") if p]

    def read(self, path: str) -> bytes | None:
        """Blob bytes, or None if the path is absent or its blob is missing from a partial mirror."""
        self.stdin.write(f"{self.rev}:{path}\n".encode())
        self.stdin.flush()
        header = self.stdout.readline().decode("utf-8", "replace").split()
        if len(header) != 3 or header[1] != "blob":  # "<x> missing" / "ambiguous"
            return None
        size = int(header[2])
        data = self.stdout.read(size)
        self.stdout.read(1)  # trailing LF
        return data

    def read_text(self, path: str) -> str:
        """A UTF-8 file the dataset cannot do without (its table, list or category file): exit if absent."""
        data = self.read(path)
        if data is None:
            sys.exit(f"{path} not found at {self.rev} in {self.git_dir}")
        return data.decode("utf-8")

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait()


class SkippedImage(Exception):
    """An image blob that is not a usable image; the message is the reason counted in stats.json."""


def save_image(data: bytes, out_dir: str, stem: str, max_side: int = 0) -> str:
    """Validate `data` as an image and write it to out_dir/images/<stem>.<ext>; return that relative path.

    The original bytes are kept unless `max_side` asks for a downsized copy. Raises SkippedImage for LFS pointers
    and unreadable or truncated files, so a bad blob drops its row instead of failing training later."""
    Image.MAX_IMAGE_PIXELS = None  # a few product photos exceed Pillow's default bomb limit
    ext = sniff(data)
    if ext is None:
        if data.startswith(b"version https://git-lfs"):
            raise SkippedImage("lfs-pointer")
        raise SkippedImage("not-an-image")
    try:
        im: Image.Image = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:  # truncated / corrupt
        raise SkippedImage(f"pillow-error:{type(e).__name__}") from e
    if max_side and max(im.size) > max_side:
        im.thumbnail((max_side, max_side))
        kw: dict[str, Any]
        if ext == "jpg" or im.mode in ("RGB", "L", "CMYK", "YCbCr"):
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            ext, fmt, kw = "jpg", "JPEG", {"quality": 90}
        else:
            ext, fmt, kw = "png", "PNG", {"optimize": True}
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        data = buf.getvalue()
    rel = f"images/{stem}.{ext}"
    with open(os.path.join(out_dir, rel), "wb") as f:
        f.write(data)
    return rel


def prepare_out(out_dir: str) -> None:
    """Start from an empty folder, so no image of an earlier run lingers next to the new manifest."""
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(os.path.join(out_dir, "images"))


def write_manifest(out_dir: str, rows: list[Row], meta: dict[str, Any]) -> None:
    """Write manifest.jsonl and stats.json (meta plus counts per label and split), and print the stats."""
    with open(os.path.join(out_dir, "manifest.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    by_label = collections.Counter(r["label"] for r in rows)
    by_split = collections.Counter(r.get("split", "-") for r in rows)
    by_split_label = collections.Counter((r.get("split", "-"), r["label"]) for r in rows)
    meta = dict(meta)
    meta.update(
        {
            "rows": len(rows),
            "images_written": len({r["image"] for r in rows}),
            "per_label": dict(sorted(by_label.items())),
            "per_split": dict(sorted(by_split.items())),
            "per_split_label": {f"{s}/{lab}": n for (s, lab), n in sorted(by_split_label.items())},
        }
    )
    with open(os.path.join(out_dir, "stats.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=2)
    print(json.dumps(meta, ensure_ascii=False, indent=2))


# A builder reads one dataset from the mirror, writes its images and returns the manifest rows plus the
# dataset-specific entries of stats.json.
Builder = Callable[[GitBlobs, argparse.Namespace], tuple[list[Row], dict[str, Any]]]

CM_MEMES_LABELS = {"level1": "Level1", "level2": "Level2", "valence": "Valence", "sarcasm": "Sarcasm"}


def build_cm_memes(g: GitBlobs, a: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    """CM-Off-Meme sample: sample_data.csv has 2021 rows but only 1308 images are in the repository
    (LREC_COLING_meme/*.png); rows without an image are skipped. No split is defined."""
    table = g.read_text("sample_data.csv")
    images = {p.rsplit("/", 1)[-1]: p for p in g.ls("LREC_COLING_meme/")}
    rows: list[Row] = []
    skipped: collections.Counter[str] = collections.Counter()
    for r in csv.DictReader(io.StringIO(table)):
        name = r["Name"].strip()
        label = r[CM_MEMES_LABELS[a.label]].strip()
        if name not in images:
            skipped["no-image-in-repo"] += 1
            continue
        if not label:
            skipped["empty-label"] += 1
            continue
        data = g.read(images[name])
        if data is None:
            skipped["blob-missing"] += 1
            continue
        stem = name.rsplit(".", 1)[0]
        try:
            rel = save_image(data, a.out, stem, a.max_side)
        except SkippedImage as e:
            skipped[str(e)] += 1
            continue
        rows.append({"id": stem, "image": rel, "text": r["Text"].strip(), "label": label})
    # natural order of the ids ("img_2" before "img_10")
    rows.sort(key=lambda r: (r["id"][:3], int("".join(c for c in r["id"] if c.isdigit()) or 0), r["id"]))
    return rows, {
        "label_field": CM_MEMES_LABELS[a.label],
        "split": "none defined by the dataset",
        "skipped": dict(skipped),
    }


def build_flipkart(g: GitBlobs, a: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    """Flipkart e-commerce sample (1050 products, 7 top-level categories x 150), committed with real JPEG blobs.
    Label = first level of product_category_tree. No split is defined."""
    table = g.read_text("flipkart_com-ecommerce_sample_1050.csv")
    rows: list[Row] = []
    skipped: collections.Counter[str] = collections.Counter()
    for r in csv.DictReader(io.StringIO(table)):
        tree = r["product_category_tree"].strip().strip("[]").strip('"')
        label = tree.split(">>")[0].strip()
        name, desc = r["product_name"].strip(), " ".join(r["description"].split())
        text = {"name": name, "description": desc, "name+description": f"{name}. {desc}"}[a.text]
        data = g.read("Images/" + r["image"].strip())
        if data is None:
            skipped["blob-missing(>=4MiB, not in snapshot)"] += 1
            continue
        try:
            rel = save_image(data, a.out, r["uniq_id"], a.max_side)
        except SkippedImage as e:
            skipped[str(e)] += 1
            continue
        rows.append({"id": r["uniq_id"], "image": rel, "text": text, "label": label})
    rows.sort(key=lambda r: r["id"])
    return rows, {"text_field": a.text, "split": "none defined by the dataset", "skipped": dict(skipped)}


def build_webnews_zh(g: GitBlobs, a: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    """Web_News_Datasets, in Wikipedia-dataset format with its own train/test split:
    {train,test}set_txt_img_cat.list ("<text_id>\\t<image_id>\\t<cat 1..10>"), categories.list (1-based order),
    texts/<id>.txt, images/<category>/<id>.jpg."""
    cats = [c.strip() for c in g.read_text("categories.list").splitlines() if c.strip()]
    # key = (category folder, stem); a few ids occur in two category folders and a
    # few filenames carry a stray space ("1138 .jpg"), so match on both parts.
    img_paths = {}
    for p in g.ls("images/"):
        folder, fname = p.split("/")[1], p.rsplit("/", 1)[-1]
        img_paths[(folder, fname.rsplit(".", 1)[0].strip())] = p
    rows: list[Row] = []
    skipped: collections.Counter[str] = collections.Counter()
    for split, listfile in (("train", "trainset_txt_img_cat.list"), ("test", "testset_txt_img_cat.list")):
        for line in g.read_text(listfile).splitlines():
            if not line.strip():
                continue
            txt_id, img_id, cat = line.split("\t")
            label = cats[int(cat) - 1]
            ipath = img_paths.get((label, img_id))
            if ipath is None:
                skipped["image-missing"] += 1
                continue
            tb = g.read(f"texts/{txt_id}.txt")
            if tb is None:
                skipped["text-missing"] += 1
                continue
            text = tb.decode("utf-8").replace("\r\n", "\n").strip()
            data = g.read(ipath)
            if data is None:
                skipped["blob-missing"] += 1
                continue
            try:
                rel = save_image(data, a.out, img_id, a.max_side)
            except SkippedImage as e:
                skipped[str(e)] += 1
                continue
            rows.append({"id": txt_id, "image": rel, "text": text, "label": label, "split": split})
    rows.sort(key=lambda r: int(r["id"]))
    return rows, {"categories": cats, "skipped": dict(skipped)}


@dataclass(frozen=True)
class Dataset:
    repo: str  # owner/name on GitHub
    title: str
    build: Builder
    options: Callable[[argparse.ArgumentParser], None] | None = None  # adds the dataset's own CLI options


def _cm_memes_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--label",
        choices=sorted(CM_MEMES_LABELS),
        default="level1",
        help="level1: off/non-off (default); level2: explicit/implicit/non-off; "
        "valence: positive/neutral/negative; sarcasm: sarcasm/non-sarcastic",
    )


def _flipkart_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--text",
        choices=["name", "description", "name+description"],
        default="name",
        help="text field: product_name (default), description, or both",
    )


DATASETS: dict[str, Dataset] = {
    "cm_memes": Dataset(
        "Gitanjali1801/CM_MEMES", "CM-Off-Meme sample (LREC-COLING 2024)", build_cm_memes, _cm_memes_options
    ),
    "flipkart": Dataset(
        "charlottemllt/Classification-automatique-des-biens-de-consommation",
        "Flipkart e-commerce sample 1050 (OpenClassrooms 'Place de marche')",
        build_flipkart,
        _flipkart_options,
    ),
    "webnews_zh": Dataset(
        "1599421259/Web_News_Datasets",
        "Web_News_Datasets (Chinese news image + text, 10 topics)",
        build_webnews_zh,
    ),
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--git-dir", required=True, help="bare git mirror of the dataset's repository")
    common.add_argument("--out", required=True, help="output folder (replaced if it exists)")
    common.add_argument("--max-side", type=int, default=0, help="downsize images (0 = keep original bytes)")
    subs = ap.add_subparsers(dest="dataset", required=True)
    for name, ds in DATASETS.items():
        sub = subs.add_parser(name, parents=[common], help=f"github:{ds.repo}")
        if ds.options is not None:
            ds.options(sub)
    a = ap.parse_args(argv)

    ds = DATASETS[a.dataset]
    g = GitBlobs(a.git_dir)
    try:
        prepare_out(a.out)
        rows, extra = ds.build(g, a)
        write_manifest(a.out, rows, {"dataset": ds.title, "source": f"github:{ds.repo}", "commit": g.commit(), **extra})
    finally:
        g.close()


if __name__ == "__main__":
    main()
