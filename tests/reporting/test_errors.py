"""The report's error analysis: confident mistakes, unsure hits, confused pairs, inline thumbnails."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from mmexp.data.synthetic import SyntheticSpec, ensure_synthetic
from mmexp.report import main
from mmexp.reporting import html
from mmexp.reporting.document import Gallery, Section
from mmexp.reporting.errors import THUMBNAIL_BUDGET, TITLE, analyse_group
from mmexp.reporting.groups import DEFAULT_IGNORE, Report, analyse
from mmexp.reporting.runs import find_run_dirs, load_run
from mmexp.reporting.sections import build_document
from tests.data_factory import clean_rows, write_manifest
from tests.reporting.test_report import write_run

CLASSES = ["blue-round", "blue-square", "red-round", "red-square"]


def write_predictions(run_dir: Path, rows: list[tuple[str, str, str, float]], labels: list[str] = CLASSES) -> None:
    """predictions/test.csv as mmexp writes it: (id, true, predicted, confidence) per row."""
    lines = ["id,label,predicted,confidence,missing," + ",".join(f"p_{c}" for c in labels)]
    for rid, true, predicted, confidence in rows:
        rest = (1 - confidence) / (len(labels) - 1)
        probs = [confidence if c == predicted else rest for c in labels]
        lines.append(f"{rid},{true},{predicted},{confidence},none," + ",".join(f"{p:.9g}" for p in probs))
    (run_dir / "predictions").mkdir(exist_ok=True)
    (run_dir / "predictions" / "test.csv").write_text("\n".join(lines) + "\n")


def record_inputs(run_dir: Path, root: Path) -> None:
    """test_inputs.jsonl as a run writes it at training time: each row of ``root``'s manifest, its image's path."""
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    lines = [json.dumps({"id": r["id"], "text": r["text"], "image": str((root / r["image"]).absolute())}) for r in rows]
    (run_dir / "test_inputs.jsonl").write_text("".join(line + "\n" for line in lines))


def fake_run(
    run_dir: Path,
    data: dict,
    *,
    fusion: str = "concat",
    seed: int = 0,
    predictions: list[tuple[str, str, str, float]] | None = None,
    matrix: list[list[int]] | None = None,
    recorded: bool = True,
) -> Path:
    """A completed run dir (test_report.py's) reading ``data``, with its predictions and confusion matrix;
    ``recorded``: with the test_inputs.jsonl of a folder dataset's rows (False: a run from before that file)."""
    write_run(run_dir, fusion=fusion, fold=None, seed=seed)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**config, "data": data}))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.update(labels=CLASSES, confusion_matrix=matrix or [[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0], [0, 0, 0, 3]])
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if predictions is not None:
        write_predictions(run_dir, predictions)
    if recorded and data.get("root"):
        record_inputs(run_dir, Path(data["root"]))
    return run_dir


@pytest.fixture
def dataset(tmp_path: Path) -> dict:
    """A 16-row folder dataset; ``data`` as a run's config.yaml holds it."""
    root = tmp_path / "data"
    rows = clean_rows(root, n=16)
    rows[3]["text"] = "<b>bold & " + "long " * 60 + "</b>"
    write_manifest(root, rows)
    return {"root": str(root), "manifest": "manifest.jsonl", "synthetic": None}


def truth(i: int) -> str:
    """Row i's label in tests/data_factory.py's clean_rows."""
    return f"{('red', 'blue')[i % 2]}-{('round', 'square')[(i // 2) % 2]}"


def other(label: str) -> str:
    return next(c for c in CLASSES if c != label)


def report_of(sweep: Path) -> Report:
    runs = [load_run(d) for d in find_run_dirs([sweep])]
    return analyse(runs, metric="test/f1_macro", baseline=None, ignore=DEFAULT_IGNORE, base_dir=sweep)


def section_of(sweep: Path, k: int = 3) -> Section:
    doc = build_document(report_of(sweep), errors=k)
    return next(s for s in doc.sections if s.title == TITLE)


# confidences: rows r0..r7 wrong, r8..r15 right
WRONG = {f"r{i}": c for i, c in enumerate([0.55, 0.91, 0.40, 0.99, 0.62, 0.91, 0.30, 0.75])}
RIGHT = {f"r{i + 8}": c for i, c in enumerate([0.95, 0.41, 0.88, 0.52, 0.33, 0.97, 0.60, 0.33])}


def predictions() -> list[tuple[str, str, str, float]]:
    rows = [(rid, truth(int(rid[1:])), other(truth(int(rid[1:]))), c) for rid, c in WRONG.items()]
    return rows + [(rid, truth(int(rid[1:])), truth(int(rid[1:])), c) for rid, c in RIGHT.items()]


def test_most_confident_mistakes_and_least_confident_hits_are_picked_in_order(tmp_path: Path, dataset: dict) -> None:
    fake_run(tmp_path / "sweep" / "0", dataset, predictions=predictions())
    [group] = report_of(tmp_path / "sweep").groups
    found = analyse_group(group, k=3)
    assert [p.id for p in found.mistakes] == ["r3", "r1", "r5"]  # 0.99, then the 0.91 tie by id
    assert [p.confidence for p in found.mistakes] == [0.99, 0.91, 0.91]
    assert [p.id for p in found.unsure] == ["r12", "r15", "r9"]  # 0.33 tie by id, then 0.41
    assert found.mistakes[0].true == truth(3) and found.mistakes[0].predicted == other(truth(3))
    assert main([str(tmp_path / "sweep"), "--errors", "3"]) == 0
    md = (tmp_path / "sweep" / "report.md").read_text().split(f"## {TITLE}")[1]
    assert re.findall(r"^\| (r\d+) \|", md, flags=re.M) == ["r3", "r1", "r5"]  # mistakes only, no images
    assert "r12" not in md and "data:image" not in md


def test_a_row_scored_by_several_runs_appears_once_with_how_many_got_it_wrong(tmp_path: Path, dataset: dict) -> None:
    r3 = truth(3)
    fake_run(tmp_path / "sweep" / "0", dataset, seed=0, predictions=[("r3", r3, other(r3), 0.6), ("r4", r3, r3, 0.5)])
    fake_run(tmp_path / "sweep" / "1", dataset, seed=1, predictions=[("r3", r3, other(r3), 0.8), ("r4", r3, r3, 0.7)])
    fake_run(tmp_path / "sweep" / "2", dataset, seed=2, predictions=[("r3", r3, r3, 0.9)])
    [group] = report_of(tmp_path / "sweep").groups
    found = analyse_group(group, k=8)
    assert [(p.id, p.confidence, p.wrong, p.seen) for p in found.mistakes] == [("r3", 0.8, 2, 3)]
    assert [(p.id, p.confidence, p.wrong, p.seen) for p in found.unsure] == [("r4", 0.5, 0, 2), ("r3", 0.9, 2, 3)]
    assert (found.runs, found.rows) == (3, 5)


def test_confused_pairs_are_counted_from_the_summed_confusion_matrices(tmp_path: Path, dataset: dict) -> None:
    a = [[5, 3, 0, 2], [0, 10, 0, 0], [1, 0, 8, 1], [0, 0, 4, 6]]
    b = [[6, 3, 1, 0], [0, 10, 0, 0], [0, 0, 10, 0], [0, 0, 1, 9]]
    fake_run(tmp_path / "sweep" / "0", dataset, seed=0, matrix=a, predictions=predictions())
    fake_run(tmp_path / "sweep" / "1", dataset, seed=1, matrix=b, predictions=predictions())
    [group] = report_of(tmp_path / "sweep").groups
    pairs = [(p.true, p.predicted, p.count, p.share) for p in analyse_group(group, k=3).pairs]
    assert pairs == [
        ("blue-round", "blue-square", 6, pytest.approx(0.3)),
        ("red-square", "red-round", 5, pytest.approx(0.25)),
        ("blue-round", "red-square", 2, pytest.approx(0.1)),  # ties on count: the larger share first
        ("blue-round", "red-round", 1, pytest.approx(0.05)),  # then by name
        ("red-round", "blue-round", 1, pytest.approx(0.05)),
    ]


def test_thumbnails_are_inline_data_uris_and_the_page_links_nothing(tmp_path: Path, dataset: dict) -> None:
    fake_run(tmp_path / "sweep" / "0", dataset, predictions=predictions())
    assert main([str(tmp_path / "sweep"), "--errors", "4"]) == 0
    page = (tmp_path / "sweep" / "report.html").read_text()
    assert page.count('src="data:image/jpeg;base64,') == 8  # 4 mistakes + 4 unsure hits
    assert re.findall(r'src="(?!data:)', page) == [] and "img/0" not in page and dataset["root"] not in page
    assert "&lt;b&gt;bold &amp; long" in page and "<b>bold" not in page  # r3's text, escaped
    excerpt = re.search(r"&lt;b&gt;bold &amp; (long )+[^<]*", page)
    assert excerpt is not None and excerpt.group(0).endswith("…")  # cut to 160 characters
    assert main([str(tmp_path / "sweep"), "--errors", "0"]) == 0
    assert TITLE not in (tmp_path / "sweep" / "report.html").read_text()


def test_the_section_stays_bounded_with_many_groups_and_large_noisy_images(tmp_path: Path) -> None:
    root = tmp_path / "noise"
    rows = clean_rows(root, n=16)
    rng = np.random.default_rng(0)
    for row in rows:  # incompressible pixels: the worst case for JPEG
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(root / row["image"])
    write_manifest(root, rows)
    data = {"root": str(root), "manifest": "manifest.jsonl"}
    for g in range(14):
        fake_run(tmp_path / "sweep" / str(g), data, fusion=f"f{g}", predictions=predictions())
    section = section_of(tmp_path / "sweep", k=8)
    tiles = [t for b in section.blocks if isinstance(b, Gallery) for t in b.tiles]
    assert len(tiles) == 14 * 16 and all(t.image for t in tiles)
    assert sum(len(t.image or "") for t in tiles) <= THUMBNAIL_BUDGET
    size = sum(len(html.block(b).encode()) for b in section.blocks)
    assert size < 1_300_000, size  # thumbnails <= 1 MB of base64 plus about 1 KB of text per tile


def test_a_missing_image_or_data_folder_gives_a_placeholder_and_a_note(tmp_path: Path, dataset: dict) -> None:
    (Path(dataset["root"]) / "img" / "003.png").unlink()
    fake_run(tmp_path / "sweep" / "0", dataset, predictions=predictions())
    copy = shutil.copytree(dataset["root"], tmp_path / "copy")
    fake_run(tmp_path / "sweep" / "1", {**dataset, "root": str(copy)}, fusion="late", predictions=predictions())
    shutil.rmtree(copy)  # the data was moved or deleted after training
    fake_run(tmp_path / "sweep" / "2", dataset, fusion="old", predictions=predictions(), recorded=False)
    assert main([str(tmp_path / "sweep"), "--errors", "2"]) == 0
    page = (tmp_path / "sweep" / "report.html").read_text()
    section = page.split(f"<h2>{TITLE}</h2>")[1].split("<h2>")[0]
    concat, rest = section.split("fusion=late")
    late, old = rest.split("fusion=old")
    assert concat.count('<div class="noimg">no image</div>') == 1  # r3, the most confident mistake
    assert f"image file not found: &#x27;{Path(dataset['root']).absolute() / 'img' / '003.png'}&#x27;" in concat
    assert late.count('<div class="noimg">no image</div>') == 4 and "thing number" in late  # text kept
    assert "4 example(s) shown without a thumbnail: image file not found: &#x27;" + str(copy) in late
    assert old.count('<div class="noimg">no image</div>') == 4  # a run from before test_inputs.jsonl: no error
    assert "4 example(s) shown without a thumbnail: no test_inputs.jsonl (a run from before" in old


def test_runs_without_predictions_are_skipped_with_a_note(tmp_path: Path, dataset: dict) -> None:
    fake_run(tmp_path / "sweep" / "0", dataset, seed=0, predictions=predictions())
    fake_run(tmp_path / "sweep" / "1", dataset, seed=1)
    assert main([str(tmp_path / "sweep")]) == 0
    md = (tmp_path / "sweep" / "report.md").read_text().split(f"## {TITLE}")[1]
    assert "1 run(s), 16 test predictions pooled" in md
    assert "Skipped 1 run(s): 1 (no predictions/test.csv)." in md
    old = tmp_path / "old"
    fake_run(old / "0", dataset)
    assert main([str(old)]) == 0
    md = (old / "report.md").read_text().split(f"## {TITLE}")[1]
    assert "No run has predictions/test.csv" in md and "| true class |" not in md  # a diagonal matrix: no pairs


def test_the_built_in_dataset_is_shown_from_what_the_run_recorded(tmp_path: Path, monkeypatch) -> None:
    spec = {"n_samples": 10, "n_shapes": 2, "n_words": 1, "image_size": 16, "seed": 3}
    root = ensure_synthetic(SyntheticSpec(**spec), tmp_path / "outputs" / "cache")
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    data = {"root": None, "synthetic": {"_target_": "mmexp.data.synthetic.SyntheticSpec", **spec}}
    run = fake_run(tmp_path / "outputs" / "multirun" / "s" / "0", {**data, "cache_dir": "outputs/cache"})
    write_predictions(run, [(r["id"], r["label"], r["label"] + "x", 0.9) for r in rows[:2]], [*CLASSES, "x"])
    record_inputs(run, root)
    monkeypatch.chdir(tmp_path / "outputs")  # the report reads the run dir only, from any working dir
    section = section_of(tmp_path / "outputs" / "multirun" / "s", k=2)
    [mistakes, _] = [b for b in section.blocks if isinstance(b, Gallery)]
    assert all(t.image for t in mistakes.tiles) and rows[0]["text"][:20] in mistakes.tiles[0].caption[-1]


def test_errors_must_be_a_whole_number(tmp_path: Path, dataset: dict, capsys) -> None:
    fake_run(tmp_path / "sweep" / "0", dataset)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "sweep"), "--errors", "-1"])
    assert exit_info.value.code == 2 and "--errors: must be a whole number >= 0" in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_run_shows_thumbnails_from_the_built_in_dataset(tmp_path: Path, cache_dir: Path) -> None:
    from mmexp.train import train
    from tests.conftest import compose_cfg

    train(compose_cfg(tmp_path, cache_dir, "logger=none", "debug=fast"))
    assert main([str(tmp_path / "run")]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert page.count('src="data:image/jpeg;base64,') == 16 and 'class="noimg"' not in page
    md = (tmp_path / "run" / "report.md").read_text().split(f"## {TITLE}")[1]
    assert "1 run(s), " in md and "| true class | predicted as |" in md
