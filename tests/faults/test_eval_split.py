"""Class 7: ``mmexp.eval`` on a run's own test split scores exactly the rows the run held out, or refuses.

Each test edits the training data after training, as a user who keeps adding to a dataset would.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from mmexp.core.errors import ConfigError
from mmexp.eval import evaluate
from tests.data_factory import clean_rows, write_manifest
from tests.e2e.test_eval import NO_CORRUPTIONS, compose_eval, train_run


@pytest.fixture(scope="module")
def trained_on_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """A tiny run on a 40-row folder dataset; the tests copy its data before changing it."""
    root = tmp_path_factory.mktemp("data")
    rows = clean_rows(root, n=40)
    write_manifest(root, rows)
    out = tmp_path_factory.mktemp("train")
    run = train_run(out, out / "cache", "debug=fast", "data=folder", f"data.root={root}")
    return run, rows


def eval_with_manifest(trained: tuple[Path, list[dict]], tmp_path: Path, rows: list[dict]) -> dict:
    """Rewrite the run's data folder's manifest to ``rows`` (in a copy of the run) and evaluate the run's test split."""
    run, _ = trained
    config = (run / "config.yaml").read_text()
    root = Path(next(line.split(": ", 1)[1] for line in config.splitlines() if line.strip().startswith("root: ")))
    data = tmp_path / "data"
    shutil.copytree(root, data)
    write_manifest(data, rows)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "config.yaml").write_text(config.replace(str(root), str(data)))
    ckpt = copy / "checkpoints" / "best.ckpt"
    return evaluate(compose_eval(tmp_path, tmp_path / "cache", f"ckpt_path={ckpt}", NO_CORRUPTIONS))


def test_rows_added_before_the_test_rows_do_not_change_what_is_scored(trained_on_folder, tmp_path: Path) -> None:
    run, rows = trained_on_folder
    extra = clean_rows(tmp_path / "extra", n=12)  # same images as rows 0..11, new ids first in the manifest
    for row in extra:
        row["id"] = "new-" + row["id"]
    (tmp_path / "extra").rename(tmp_path / "unused")
    result = eval_with_manifest(trained_on_folder, tmp_path, extra + rows)
    at_training = json.loads((run / "metrics.json").read_text())
    held_out = json.loads((run / "split.json").read_text())["test"]
    assert result["data"]["rows"] == len(held_out)
    assert result["confusion_matrix"] == at_training["confusion_matrix"]
    assert result["test"]["test/acc"] == at_training["test"]["test/acc"]


def test_a_test_row_that_is_gone_is_refused_by_id(trained_on_folder, tmp_path: Path) -> None:
    run, rows = trained_on_folder
    gone = json.loads((run / "split.json").read_text())["test"][0]
    with pytest.raises(ConfigError, match=rf"no longer usable rows.*{gone}"):
        eval_with_manifest(trained_on_folder, tmp_path, [r for r in rows if r["id"] != gone])


@pytest.mark.parametrize("field", ["text", "label"])
def test_a_test_row_whose_content_changed_is_refused_by_id(trained_on_folder, tmp_path: Path, field: str) -> None:
    run, rows = trained_on_folder
    changed = json.loads((run / "split.json").read_text())["test"][-1]
    other = next(r[field] for r in rows if r[field] != next(x for x in rows if x["id"] == changed)[field])
    edited = [{**r, field: other} if r["id"] == changed else r for r in rows]
    with pytest.raises(ConfigError, match=rf"changed since training.*{changed}"):
        eval_with_manifest(trained_on_folder, tmp_path, edited)


def test_a_test_image_replaced_on_disk_is_refused(trained_on_folder, tmp_path: Path) -> None:
    run, rows = trained_on_folder
    changed = json.loads((run / "split.json").read_text())["test"][0]
    target = next(r for r in rows if r["id"] == changed)
    donor = next(r for r in rows if r["label"] != target["label"])
    edited = [{**r, "image": donor["image"]} if r["id"] == changed else r for r in rows]
    with pytest.raises(ConfigError, match=rf"changed since training.*{changed}"):
        eval_with_manifest(trained_on_folder, tmp_path, edited)


def rewrite_keeping_size_and_mtime(path: Path, image: Image.Image) -> None:
    """Replace ``path`` by ``image`` as a PNG of exactly the old byte size (padded with a text chunk), then put
    the old mtime back: what ``rsync -a`` of a re-export leaves, and all a size+mtime check can see."""
    before = path.stat()
    plain = io.BytesIO()
    image.save(plain, format="PNG")
    pad = before.st_size - len(plain.getvalue()) - 12 - len("pad") - 1  # a tEXt chunk: 12 bytes + key + NUL
    assert pad >= 0, "the new image must not be larger than the old one"
    info = PngInfo()
    info.add_text("pad", "x" * pad)
    image.save(path, format="PNG", pnginfo=info)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_test_image_rewritten_with_its_size_and_mtime_kept_is_refused(trained_on_folder, tmp_path: Path) -> None:
    """Issue 25, class 4: the same data folder and the same cache dir before and after the change, so a cache
    keyed on size+mtime serves the old pixels, and the row digests eval compares are computed from them."""
    run, rows = trained_on_folder
    changed = json.loads((run / "split.json").read_text())["test"][0]
    eval_with_manifest(trained_on_folder, tmp_path, rows)  # fills tmp_path/cache for the copied data folder
    target = next(r for r in rows if r["id"] == changed)
    rewrite_keeping_size_and_mtime(tmp_path / "data" / target["image"], Image.new("RGB", (4, 4), (0, 200, 0)))
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    again = compose_eval(tmp_path, tmp_path / "cache", f"ckpt_path={ckpt}", NO_CORRUPTIONS, run_dir=tmp_path / "again")
    with pytest.raises(ConfigError, match=rf"changed since training.*{changed}"):
        evaluate(again)
