"""The MM-IMDb converter on a tiny fixture in the real mmimdb.tar.gz layout, hostile movies included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mmexp.core.errors import ConfigError
from mmexp.data.manifest import ERROR, read_rows
from mmexp.data.mmimdb import MMIMDB23, convert, main
from mmexp.train import train
from tests.conftest import compose_cfg

REPO = Path(__file__).resolve().parents[2]
NON_ASCII_PLOT = "Amélie, a waitress in Montmartre, finds a tin box — and a stranger in Tōkyō (東京) writes back."
LONG_PLOT = "A crew follows penguins across Antarctica for a year, through storms, hunger and the long polar night."


def _info(imdb_id: str, genres: list[str], plot: Any, **extra: Any) -> dict[str, Any]:
    """A movie JSON with the many IMDb fields the converter must ignore."""
    info: dict[str, Any] = {
        "title": f"Movie {imdb_id}",
        "imdb_id": imdb_id,
        "kind": "movie",
        "year": 1999,
        "rating": 6.4,
        "votes": 1234,
        "director": [{"name": "Some Director", "person_id": "0000001"}],
        "cast": [{"name": "Some Actor"}],
        "countries": ["USA"],
        "languages": ["English"],
        "cover url": "https://example.invalid/cover.jpg",
        "plot outline": "An outline the converter must not use.",
        "genres": genres,
        "plot": plot,
    }
    info.update(extra)
    return info


# id -> (movie JSON, or raw text for a broken file; has a jpeg; split.json key or None)
MOVIES: dict[str, tuple[Any, bool, str | None]] = {
    "0000001": (_info("0000001", ["Romance", "Drama"], ["Two strangers meet on a train to Vienna."]), True, "train"),
    "0000002": (_info("0000002", ["Comedy"], ["A dog runs for mayor."]), True, "train"),
    "0000003": (_info("0000003", ["Sci-Fi", "Action", "Adventure"], ["Robots rebel on Mars."]), True, "train"),
    "0000004": (_info("0000004", ["Drama"], ["A poster was never scraped."]), False, "train"),  # no jpeg
    "0000005": (_info("0000005", ["Drama"], []), True, "train"),  # empty plot list
    "0000006": ('{"title": "Broken", "genres": ["Drama"], "plot": ["cut o', True, "train"),  # not valid JSON
    "0000007": (_info("0000007", ["News", "Talk-Show"], ["Tonight's headlines."]), True, "train"),  # all dropped
    "0000008": (_info("0000008", ["Romance", "Comedy"], [NON_ASCII_PLOT]), True, "dev"),
    "0000009": (_info("0000009", ["Reality-TV", "Drama"], ["A family renovates a farm."]), True, "dev"),
    "0000010": (_info("0000010", ["Thriller", "Horror"], ["  A house\nthat   breathes.  "]), True, "test"),
    "0000011": (_info("0000011", ["Documentary"], ["Penguins.", LONG_PLOT, "Birds."]), True, "test"),
    "0000012": ({"title": "Noir", "genres": ["Film-Noir", "Crime"], "plot": ["Rain, a detective."]}, True, "test"),
    "0000014": (_info("0000014", ["Drama"], ["Not listed in split.json."]), True, None),
}
LISTED_WITHOUT_FILES = "0000013"  # in split.json's test list, no dataset/ files

EXPECTED = [
    {"id": "0000001", "label": ["Drama", "Romance"], "split": "train"},
    {"id": "0000002", "label": ["Comedy"], "split": "train"},
    {"id": "0000003", "label": ["Action", "Adventure", "Sci-Fi"], "split": "train"},
    {"id": "0000008", "label": ["Comedy", "Romance"], "split": "val"},
    {"id": "0000009", "label": ["Drama"], "split": "val"},
    {"id": "0000010", "label": ["Horror", "Thriller"], "split": "test"},
    {"id": "0000011", "label": ["Documentary"], "split": "test"},
    {"id": "0000012", "label": ["Crime", "Film-Noir"], "split": "test"},
]
EXPECTED_SKIPS = {"no_image": 1, "no_plot": 1, "bad_json": 1, "no_genre": 1, "not_in_split": 1, "no_json": 1}


@pytest.fixture
def mmimdb(tmp_path: Path) -> Path:
    """``tmp_path/mmimdb`` laid out like the extracted mmimdb.tar.gz."""
    src = tmp_path / "mmimdb"
    dataset = src / "dataset"
    dataset.mkdir(parents=True)
    splits: dict[str, list[str]] = {"train": [], "dev": [], "test": [LISTED_WITHOUT_FILES]}
    for index, (imdb_id, (info, has_jpeg, split)) in enumerate(MOVIES.items()):
        text = info if isinstance(info, str) else json.dumps(info, ensure_ascii=False, indent=2)
        (dataset / f"{imdb_id}.json").write_text(text, encoding="utf-8")
        if has_jpeg:
            Image.new("RGB", (6, 9), (index * 20, 40, 90)).save(dataset / f"{imdb_id}.jpeg", format="JPEG")
        if split is not None:
            splits[split].append(imdb_id)
    (src / "split.json").write_text(json.dumps(splits), encoding="utf-8")
    return src


def _rows(manifest: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def _brief(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: row[key] for key in ("id", "label", "split") if key in row} for row in rows]


def test_convert_writes_exact_rows_and_counts_skips(mmimdb: Path) -> None:
    summary = convert(mmimdb)
    manifest = mmimdb / "manifest.jsonl"
    rows = _rows(manifest)
    assert _brief(rows) == EXPECTED
    assert summary.out == manifest and summary.rows == len(EXPECTED)
    assert dict(summary.skipped) == EXPECTED_SKIPS
    assert dict(summary.splits) == {"train": 3, "val": 2, "test": 3}
    assert set(summary.genres) <= set(MMIMDB23)
    assert all(set(row) == {"id", "image", "text", "label", "split"} for row in rows)
    by_id = {row["id"]: row for row in rows}
    assert by_id["0000008"]["text"] == NON_ASCII_PLOT  # non-ASCII kept as it is, not escaped away
    assert "東京" in manifest.read_text(encoding="utf-8")
    assert by_id["0000011"]["text"] == LONG_PLOT  # the longest plot, as Arevalo / MultiBench pick it
    assert by_id["0000010"]["text"] == "A house that breathes."  # whitespace collapsed
    assert by_id["0000001"]["image"] == "dataset/0000001.jpeg"


def test_manifest_is_readable_by_mmexp(mmimdb: Path) -> None:
    convert(mmimdb)
    read = read_rows(mmimdb / "manifest.jsonl")
    assert [row["id"] for _, row in read] == [row["id"] for row in EXPECTED]
    assert not [row for _, row in read if ERROR in row]
    assert all((mmimdb / row["image"]).is_file() for _, row in read)


def test_genres_all_and_min_count(mmimdb: Path, tmp_path: Path) -> None:
    summary = convert(mmimdb, out=tmp_path / "all.jsonl", genres="all")
    labels = {row["id"]: row["label"] for row in _rows(tmp_path / "all.jsonl")}
    assert labels["0000007"] == ["News", "Talk-Show"] and labels["0000009"] == ["Drama", "Reality-TV"]
    assert summary.rows == len(EXPECTED) + 1 and summary.skipped["no_genre"] == 0

    # Drama, Romance and Comedy are the only genres on 2+ usable movies.
    summary = convert(mmimdb, out=tmp_path / "min2.jsonl", genres="all", min_count=2)
    assert _brief(_rows(tmp_path / "min2.jsonl")) == [
        {"id": "0000001", "label": ["Drama", "Romance"], "split": "train"},
        {"id": "0000002", "label": ["Comedy"], "split": "train"},
        {"id": "0000008", "label": ["Comedy", "Romance"], "split": "val"},
        {"id": "0000009", "label": ["Drama"], "split": "val"},
    ]
    assert summary.genres == ("Comedy", "Drama", "Romance") and summary.skipped["no_genre"] == 5


def test_no_split_json_means_no_split_column(mmimdb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (mmimdb / "split.json").unlink()
    assert main([str(mmimdb)]) == 0
    rows = _rows(mmimdb / "manifest.jsonl")
    assert "split" not in rows[0] and "0000014" in [row["id"] for row in rows]  # unlisted movies now count
    out = capsys.readouterr().out
    assert "note: no split.json" in out and "split=random" in out


def test_refuses_to_overwrite_without_force(mmimdb: Path) -> None:
    manifest = mmimdb / "manifest.jsonl"
    manifest.write_text("keep me\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        convert(mmimdb)
    assert manifest.read_text(encoding="utf-8") == "keep me\n"
    convert(mmimdb, force=True)
    assert _brief(_rows(manifest)) == EXPECTED
    assert not [p for p in mmimdb.iterdir() if p.name.endswith(".tmp")]  # the temp file was renamed away


def test_strict_names_the_first_unusable_movie(mmimdb: Path) -> None:
    with pytest.raises(ConfigError, match=r"0000004\.json: no image file.*drop --strict"):
        convert(mmimdb, strict=True)
    assert not (mmimdb / "manifest.jsonl").exists()


@pytest.mark.parametrize(
    ("split_json", "message"),
    [
        ("{not json", "cannot read it as JSON"),
        ('{"train": ["0000001"], "valid": []}', "unknown split name"),
        ('{"train": ["0000001"], "test": ["0000001"]}', "more than one split"),
    ],
)
def test_bad_split_json_is_one_error(mmimdb: Path, split_json: str, message: str) -> None:
    (mmimdb / "split.json").write_text(split_json, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        convert(mmimdb)


def test_parent_folder_gets_a_hint(mmimdb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(mmimdb.parent)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pass {mmimdb}" in err


def test_cli_subprocess(mmimdb: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mmexp.data.mmimdb", str(mmimdb)], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-2] == (
        f"mmexp.data.mmimdb: wrote 8 rows to {mmimdb / 'manifest.jsonl'} (train 3, val 2, test 3; 11 genres); "
        "skipped 6: unreadable JSON 1, no image file 1, no plot 1, no kept genre 1, not in split.json 1, "
        "in split.json but no JSON file 1"
    )
    assert lines[-1] == (
        f"train on it: python -m mmexp.train task=multilabel data=folder data.root={mmimdb.resolve()} split=predefined"
    )
    assert _brief(_rows(mmimdb / "manifest.jsonl")) == EXPECTED


def test_a_converted_manifest_trains_as_a_multilabel_task(mmimdb: Path, tmp_path: Path, cache_dir: Path) -> None:
    """The converter's output is what task=multilabel data=folder split=predefined reads, end to end."""
    convert(mmimdb)
    out = tmp_path / "out"
    overrides = ["task=multilabel", "data=folder", f"data.root={mmimdb}", "split=predefined", "text_encoder=bow"]
    train(compose_cfg(out, cache_dir, *overrides, "debug=fast", "logger=none", "data.image_size=16"))
    run = out / "run"
    labels = json.loads((run / "labels.json").read_text())
    assert labels == sorted({genre for row in EXPECTED for genre in row["label"]})
    split = json.loads((run / "split.json").read_text())
    assert sorted(split["test"]) == sorted(row["id"] for row in EXPECTED if row["split"] == "test")
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"test/map", "test/f1_micro", "test/f1_macro", "test/exact_match"} <= metrics["test"].keys()
