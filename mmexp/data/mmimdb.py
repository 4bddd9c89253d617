"""Convert the public MM-IMDb layout (Arevalo et al. 2017) into an mmexp multi-label manifest.

``python -m mmexp.data.mmimdb SRC [--out MANIFEST] [--genres all|mmimdb23] [--min-count N] [--force] [--strict]``

SRC is the extracted ``mmimdb/`` folder: ``dataset/<imdb_id>.json`` + ``dataset/<imdb_id>.jpeg`` per movie and
``split.json`` (``{"train": [ids], "dev": [ids], "test": [ids]}``). mmexp never downloads it: the user does.
One JSONL row per usable movie: ``id`` (the file name, as Arevalo's ``make_dataset.py`` does), ``image``
(relative to SRC, which becomes ``data.root``), ``text`` (the longest entry of the movie's ``plot`` list, the
text Arevalo's ``make_dataset.py`` and MultiBench's ``datasets/imdb/get_data.py`` use), ``label`` (the sorted
kept genres) and ``split`` (``dev`` becomes ``val``). Rows that cannot be used are skipped and counted per
reason; ``--strict`` makes the first one an error. See docs/mmimdb.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmexp.core.errors import ConfigError
from mmexp.core.io import write_text_atomic

# The 23 genres of MM-IMDb's benchmark task: Arevalo's make_dataset.py keeps the n_classes=23 (gmu.json) most
# frequent genres; the same 23 are listed in huggingface/transformers
# examples/research_projects/mm-imdb/utils_mmimdb.py (get_mmimdb_labels). Every rarer genre is dropped.
MMIMDB23 = (
    "Drama",
    "Comedy",
    "Romance",
    "Thriller",
    "Crime",
    "Action",
    "Adventure",
    "Horror",
    "Documentary",
    "Mystery",
    "Sci-Fi",
    "Fantasy",
    "Family",
    "Biography",
    "War",
    "History",
    "Music",
    "Animation",
    "Musical",
    "Western",
    "Sport",
    "Short",
    "Film-Noir",
)
GENRE_SETS = ("mmimdb23", "all")
SPLIT_NAMES = {"train": "train", "dev": "val", "val": "val", "test": "test"}  # split.json key -> mmexp split

# Why a movie was skipped -> how the summary line says it.
REASONS = {
    "bad_json": "unreadable JSON",
    "no_image": "no image file",
    "no_plot": "no plot",
    "no_genre": "no kept genre",
    "not_in_split": "not in split.json",
    "no_json": "in split.json but no JSON file",
}
PROG = "mmexp.data.mmimdb"


class Skip(Exception):
    """One movie cannot be used; ``reason`` is a key of ``REASONS`` and the message names its file."""

    def __init__(self, reason: str, path: Path) -> None:
        super().__init__(f"{path}: {REASONS[reason]}")
        self.reason = reason


@dataclass(frozen=True)
class Movie:
    """What the manifest needs from one movie, before genres are filtered."""

    id: str
    image: str
    text: str
    genres: tuple[str, ...]


@dataclass
class Summary:
    """What ``convert`` wrote and skipped, for the summary line and for tests."""

    out: Path
    rows: int
    splits: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    genres: tuple[str, ...] = ()
    has_split: bool = True


def convert(
    src: Path,
    *,
    out: Path | None = None,
    genres: str = "mmimdb23",
    min_count: int = 0,
    force: bool = False,
    strict: bool = False,
) -> Summary:
    """Write the manifest for the MM-IMDb folder ``src``; nothing is written when an error is raised."""
    src = Path(src)
    dataset = _dataset_dir(src)
    out = Path(out) if out is not None else src / "manifest.jsonl"
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to replace it, or --out to write elsewhere")
    if genres not in GENRE_SETS:
        raise ConfigError(f"--genres {genres!r}: use one of {', '.join(GENRE_SETS)}")
    split_of = read_split(src / "split.json")
    skipped: Counter[str] = Counter()
    movies = list(_usable_movies(src, dataset, split_of, skipped, strict=strict))
    kept = kept_genres(movies, genres=genres, min_count=min_count)
    rows = [row for movie in movies if (row := _row(movie, kept, split_of, skipped, dataset, strict)) is not None]
    if not rows:
        raise ConfigError(f"{dataset}: no usable movie (skipped: {dict(skipped)}); is it the MM-IMDb dataset/ folder?")
    write_text_atomic(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return Summary(
        out=out,
        rows=len(rows),
        splits=Counter(str(row["split"]) for row in rows if "split" in row),
        skipped=skipped,
        genres=tuple(sorted(kept)),
        has_split=split_of is not None,
    )


def _dataset_dir(src: Path) -> Path:
    """``src/dataset``, with a hint when SRC is the folder above the extracted ``mmimdb/``."""
    if not src.is_dir():
        raise ConfigError(f"{src} is not a directory; pass the extracted mmimdb/ folder (from mmimdb.tar.gz)")
    dataset = src / "dataset"
    if dataset.is_dir():
        return dataset
    if (src / "mmimdb" / "dataset").is_dir():
        raise ConfigError(f"{dataset} not found; pass {src / 'mmimdb'} (the folder holding dataset/ and split.json)")
    raise ConfigError(f"{dataset} not found; SRC must hold dataset/<imdb_id>.json and .jpeg (from mmimdb.tar.gz)")


def read_split(path: Path) -> dict[str, str] | None:
    """imdb id -> train/val/test from ``split.json``; None when the file is absent (the manifest gets no split)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read it as JSON ({e}); restore it from mmimdb.tar.gz or delete it") from None
    if not isinstance(data, dict) or not data or any(not isinstance(ids, list) for ids in data.values()):
        raise ConfigError(f'{path}: expected {{"train": [ids], "dev": [ids], "test": [ids]}}; restore it')
    unknown = sorted(set(data) - set(SPLIT_NAMES))
    if unknown:
        raise ConfigError(f"{path}: unknown split name(s) {', '.join(map(repr, unknown))}; use train, dev, test")
    split_of: dict[str, str] = {}
    for name, ids in data.items():
        for imdb_id in map(str, ids):
            if split_of.setdefault(imdb_id, SPLIT_NAMES[name]) != SPLIT_NAMES[name]:
                raise ConfigError(f"{path}: id {imdb_id} is in more than one split; keep it in one")
    return split_of


def _usable_movies(
    src: Path, dataset: Path, split_of: dict[str, str] | None, skipped: Counter[str], *, strict: bool
) -> Iterable[Movie]:
    """Every movie with a readable JSON, a plot and an image, by id; the others are counted in ``skipped``."""
    files = {path.stem: path for path in dataset.glob("*.json")}
    listed = set(split_of or ())
    for imdb_id in sorted(files.keys() | listed):
        try:
            if imdb_id not in files:
                raise Skip("no_json", dataset / f"{imdb_id}.json")
            if split_of is not None and imdb_id not in split_of:
                raise Skip("not_in_split", files[imdb_id])
            yield read_movie(files[imdb_id], src)
        except Skip as skip:
            _count(skip, skipped, strict)


def read_movie(path: Path, src: Path) -> Movie:
    """One movie from ``dataset/<id>.json`` and its ``.jpeg``; raises ``Skip`` when it cannot be used."""
    info = _load(path)
    image = path.with_suffix(".jpeg")
    if not image.is_file() or image.stat().st_size == 0:
        raise Skip("no_image", path)
    text = plot_text(info.get("plot"))
    if not text:
        raise Skip("no_plot", path)
    raw = info.get("genres")
    names = raw if isinstance(raw, list) else []
    genres = tuple(sorted({name.strip() for name in names if isinstance(name, str) and name.strip()}))
    return Movie(id=path.stem, image=image.relative_to(src).as_posix(), text=text, genres=genres)


def _load(path: Path) -> dict[str, Any]:
    """The movie's JSON object; anything else (bad bytes, bad JSON, not an object) is an unreadable JSON."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise Skip("bad_json", path) from None
    if not isinstance(info, dict):
        raise Skip("bad_json", path)
    return info


def plot_text(plot: object) -> str:
    """The longest plot summary (the first of equal ones), as Arevalo and MultiBench pick it; "" if none."""
    entries = [plot] if isinstance(plot, str) else plot if isinstance(plot, list) else []
    texts = [" ".join(entry.split()) for entry in entries if isinstance(entry, str)]
    return max(texts, key=len, default="")


def kept_genres(movies: Sequence[Movie], *, genres: str, min_count: int) -> set[str]:
    """The genre set (``mmimdb23`` or ``all`` seen), minus genres on fewer than ``min_count`` usable movies."""
    counts = Counter(genre for movie in movies for genre in movie.genres)
    pool = set(MMIMDB23) if genres == "mmimdb23" else set(counts)
    return {genre for genre in pool if counts[genre] >= max(min_count, 1)}


def _row(
    movie: Movie,
    kept: set[str],
    split_of: dict[str, str] | None,
    skipped: Counter[str],
    dataset: Path,
    strict: bool,
) -> dict[str, object] | None:
    """The manifest row of ``movie``, or None (counted) when none of its genres is kept."""
    label = sorted(set(movie.genres) & kept)
    if not label:
        _count(Skip("no_genre", dataset / f"{movie.id}.json"), skipped, strict)
        return None
    row: dict[str, object] = {"id": movie.id, "image": movie.image, "text": movie.text, "label": label}
    if split_of is not None:
        row["split"] = split_of[movie.id]
    return row


def _count(skip: Skip, skipped: Counter[str], strict: bool) -> None:
    """Count a skipped movie, or stop on it under ``--strict``."""
    if strict:
        raise ConfigError(f"{skip}; fix or remove that movie, or drop --strict to skip it")
    skipped[skip.reason] += 1


def summary_line(summary: Summary) -> str:
    """One line: rows written per split, genres kept, and skipped movies per reason."""
    order = ("train", "val", "test")
    splits = ", ".join(f"{name} {summary.splits[name]}" for name in order) if summary.has_split else "no split"
    skipped = sum(summary.skipped.values())
    reasons = ", ".join(f"{REASONS[key]} {summary.skipped[key]}" for key in REASONS if summary.skipped[key])
    return (
        f"{PROG}: wrote {summary.rows} rows to {summary.out} ({splits}; {len(summary.genres)} genres); "
        f"skipped {skipped}" + (f": {reasons}" if reasons else "")
    )


def train_command(src: Path, summary: Summary) -> str:
    """The mmexp command that trains on the written manifest."""
    args = ["python", "-m", "mmexp.train", "task=multilabel", "data=folder", f"data.root={src.resolve()}"]
    if summary.out.resolve() != (src / "manifest.jsonl").resolve():
        args.append(f"data.manifest={summary.out.resolve()}")
    args.append("split=predefined" if summary.has_split else "split=random")
    return shlex.join(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the extracted mmimdb/ folder (dataset/ and split.json)")
    parser.add_argument("--out", type=Path, default=None, help="manifest to write (default: SRC/manifest.jsonl)")
    parser.add_argument("--genres", choices=GENRE_SETS, default="mmimdb23", help="genre set (default: mmimdb23)")
    parser.add_argument("--min-count", type=int, default=0, help="also drop genres on fewer usable movies")
    parser.add_argument("--force", action="store_true", help="replace an existing manifest")
    parser.add_argument("--strict", action="store_true", help="stop at the first movie that cannot be used")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Convert, print the summary line and the train command; a user mistake is one error line, exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        summary = convert(
            args.src, out=args.out, genres=args.genres, min_count=args.min_count, force=args.force, strict=args.strict
        )
    except ConfigError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    if not summary.has_split:
        print(f"{PROG}: note: no split.json in {args.src}, so the manifest has no split column (split=random)")
    print(summary_line(summary))
    print(f"train on it: {train_command(args.src, summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
