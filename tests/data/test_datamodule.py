"""User data: validation of messy manifests, image decoding, tokenization, splits, caches."""

from __future__ import annotations

import json
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmexp.contracts import Batch
from mmexp.core.errors import ConfigError
from mmexp.data.datamodule import MultimodalDataModule
from mmexp.data.dataset import collate
from mmexp.data.image_cache import load_or_decode
from mmexp.data.images import load_rgb
from mmexp.data.splits import group_kfold_split, kfold_split, predefined_split, random_split, stratified_split
from mmexp.data.text import Vocab, tokenize
from tests.data_factory import clean_rows, draw, write_manifest

STRATIFIED = partial(stratified_split, train=0.5, val=0.25, test=0.25, seed=0)


def make_dm(root: Path, fmt: str = "jsonl", split=STRATIFIED, **kw) -> MultimodalDataModule:
    return MultimodalDataModule(
        split=split, root=str(root), manifest=f"manifest.{fmt}", image_size=16, cache_dir=str(root / ".cache"), **kw
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_every_defect_is_reported_at_once_with_its_line(tmp_path: Path, fmt: str) -> None:
    rows = clean_rows(tmp_path)
    (tmp_path / "img" / "trunc.png").write_bytes((tmp_path / "img" / "000.png").read_bytes()[:40])
    (tmp_path / "outside.png").write_bytes(b"")
    defects = [
        {**rows[0], "id": "m1", "image": "img/nope.png"},  # missing file
        {**rows[0], "id": "m2", "image": "img/trunc.png"},  # truncated image
        {**rows[0], "id": "m3", "image": "../outside.png"},  # outside data.root
        {**rows[0], "id": "m4", "image": str(tmp_path / "img/000.png")},  # absolute path
        {**rows[0], "id": "m5", "text": "   "},  # whitespace text
        {**rows[0], "id": "m6", "label": ""},  # empty label
        {**rows[0]},  # duplicate id r0
    ]
    write_manifest(tmp_path, rows + defects, fmt)
    first = len(rows) + (2 if fmt == "csv" else 1)
    with pytest.raises(ConfigError) as err:
        make_dm(tmp_path, fmt).setup()
    message = str(err.value)
    assert "7 bad row(s)" in message and "on_bad_record=skip" in message
    for offset, reason in enumerate(
        [
            "image file not found",
            "unreadable or corrupt image",
            "outside data.root",
            "outside data.root",
            "non-empty string",
            "missing 'label'",
            "duplicate id",
        ]
    ):
        assert f"line {first + offset}: " in message
        assert reason in message.split(f"line {first + offset}: ")[1].split("\n")[0]


def test_skip_keeps_good_rows_and_lists_the_bad(tmp_path: Path) -> None:
    rows = clean_rows(tmp_path)
    write_manifest(tmp_path, [*rows, {**rows[1], "id": "bad", "image": "img/missing.png"}])
    dm = make_dm(tmp_path, on_bad_record="skip")
    dm.setup()
    assert len(dm.info.records) == len(rows) and [b.row.get("id") for b in dm.info.skipped] == ["bad"]


def test_non_string_text_is_bad_but_text_zero_is_fine(tmp_path: Path) -> None:
    rows = clean_rows(tmp_path)
    write_manifest(tmp_path, [*rows[:-2], {**rows[-2], "text": "0"}, {**rows[-1], "text": 7}])
    with pytest.raises(ConfigError, match=r"(?s)1 bad row.*line 40: 'text' must be a non-empty string \(got 7\)"):
        make_dm(tmp_path).setup()


def test_label_only_in_test_is_refused(tmp_path: Path) -> None:
    rows = clean_rows(tmp_path)
    rows[12]["label"] = "lonely"  # rows 12-15 are test rows in the predefined split
    write_manifest(tmp_path, rows)
    with pytest.raises(ConfigError, match="lonely have no training example"):
        make_dm(tmp_path, split=partial(predefined_split, val=0.2, seed=0)).setup()


def test_mmf_style_manifest_and_numeric_labels(tmp_path: Path) -> None:
    rows = [
        {"id": r["id"], "img": r["image"], "text": r["text"], "label": i % 3 * 5}
        for i, r in enumerate(clean_rows(tmp_path))
    ]
    write_manifest(tmp_path, rows)
    dm = make_dm(tmp_path)
    dm.setup()
    assert dm.label_names == ["0", "5", "10"]  # numeric order, not string order


def test_built_in_data_options_on_a_folder_are_one_error_naming_them(tmp_path: Path) -> None:
    """``+data.synthetic.n_samples=300`` with data=folder (or a preset that sets it) is named, not an OmegaConf
    traceback about a missing ``fingerprint`` when the run starts reading."""
    write_manifest(tmp_path, clean_rows(tmp_path, n=6))
    with pytest.raises(ConfigError, match=r"^data\.synthetic \(n_samples, seed\) configures the built-in dataset"):
        make_dm(tmp_path, synthetic={"n_samples": 300, "seed": 1})


def test_csv_folder_dataset_trains_end_to_end(tmp_path: Path, make_cfg) -> None:
    from mmexp.train import train

    data = tmp_path / "my data"
    write_manifest(data, clean_rows(data, n=48), "csv")
    metrics = train(
        make_cfg(
            "data=folder",
            f"data.root={data}",
            "data.manifest=manifest.csv",
            "debug=fast",
            "text_encoder=bow",
            "data.image_size=16",
        )
    )
    assert metrics["labels"] == ["blue-round", "blue-square", "red-round", "red-square"]


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "L", "CMYK", "I;16", "1"])
def test_every_image_mode_becomes_rgb(tmp_path: Path, mode: str) -> None:
    base = draw("red", "round")
    image = base.convert("I;16") if mode == "I;16" else base.convert(mode)
    image.save(tmp_path / ("x.tif" if mode == "CMYK" else "x.png"))
    out = load_rgb(tmp_path / ("x.tif" if mode == "CMYK" else "x.png"), 16)
    assert out.shape == (3, 16, 16) and out.dtype == np.uint8


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert (load_rgb(tmp_path / "clear.png", 8) == 255).all()


def test_content_not_extension_and_first_gif_frame(tmp_path: Path) -> None:
    draw("blue", "square").save(tmp_path / "really_png.jpg", format="PNG")
    draw("blue", "square").save(tmp_path / "x.bmp")
    frames = [draw("red", "round").convert("P"), draw("blue", "round").convert("P")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert load_rgb(tmp_path / "really_png.jpg", 16).shape == (3, 16, 16)
    assert load_rgb(tmp_path / "x.bmp", 16).shape == (3, 16, 16)
    gif = load_rgb(tmp_path / "anim.gif", 24)
    assert gif[0, 12, 12] > gif[2, 12, 12]  # red first frame, not the blue second one


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (20, 10), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 10))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    out = load_rgb(tmp_path / "rot.jpg", 20)
    assert out[:, :5, :].mean() > 200 and out[:, 15:, :].mean() < 50  # white ends up on top


def test_odd_filenames_work(tmp_path: Path) -> None:
    rows = clean_rows(tmp_path, n=8)
    for row, name in zip(
        rows, ["img/with space.png", "img/trailing .png", "img/日本語.png", "img/ünï.png"], strict=False
    ):
        (tmp_path / row["image"]).rename(tmp_path / name)
        row["image"] = name
    write_manifest(tmp_path, rows * 1)
    dm = make_dm(tmp_path, split=partial(random_split, train=0.5, val=0.25, test=0.25, seed=0))
    records, *_ = dm.load_records()
    assert len(records) == 8


def test_tokenizer_handles_cjk_and_mixed_script() -> None:
    assert tokenize("我爱北京 Tiananmen!") == ["我", "爱", "北", "京", "tiananmen"]
    assert tokenize("yeh movie bahut acchi hai, I loved it") == [
        "yeh",
        "movie",
        "bahut",
        "acchi",
        "hai",
        "i",
        "loved",
        "it",
    ]
    assert tokenize("Ünïcödé words") == ["ünïcödé", "words"]
    vocab = Vocab.fit(["a b b", "b c"], min_freq=2)
    assert vocab.tokens == ["<pad>", "<unk>", "b"]
    assert vocab.encode(["b a zz"], max_tokens=4).tolist() == [[2, 1, 1, 0]]


LABELS = np.array([0] * 30 + [1] * 20 + [2] * 10)


@pytest.mark.parametrize(
    "split_fn",
    [
        partial(random_split, train=0.6, val=0.2, test=0.2, seed=1),
        partial(stratified_split, train=0.6, val=0.2, test=0.2, seed=1),
        partial(kfold_split, k=5, fold=2, val=0.2, seed=1),
    ],
)
def test_splits_are_disjoint_complete_and_deterministic(split_fn) -> None:
    a, b = split_fn(LABELS), split_fn(LABELS)
    parts = [set(a.train), set(a.val), set(a.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(range(len(LABELS)))
    assert all((x == y).all() for x, y in zip((a.train, a.val, a.test), (b.train, b.val, b.test), strict=True))


def test_stratified_keeps_proportions_within_one_per_class() -> None:
    split = stratified_split(LABELS, train=0.6, val=0.2, test=0.2, seed=3)
    for part, frac in ((split.val, 0.2), (split.test, 0.2)):
        counts = np.bincount(LABELS[part], minlength=3)
        assert all(abs(c - frac * n) <= 1 for c, n in zip(counts, (30, 20, 10), strict=True))


def test_kfold_test_sets_partition_the_data() -> None:
    tests = [kfold_split(LABELS, k=5, fold=f, val=0.2, seed=0).test for f in range(5)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(len(LABELS)))
    assert all(abs(len(t) - 12) <= 1 for t in tests)


def test_group_kfold_never_shares_a_group() -> None:
    groups = np.array([f"g{i % 13}" for i in range(len(LABELS))], dtype=object)
    for fold in range(4):
        s = group_kfold_split(LABELS, k=4, fold=fold, val=0.25, seed=0, groups=groups)
        sets = [set(groups[p]) for p in (s.train, s.val, s.test)]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        assert len(s.train) + len(s.val) + len(s.test) == len(LABELS)
    with pytest.raises(ConfigError, match=r"data.group_col"):
        group_kfold_split(LABELS, k=4, fold=0, val=0.2, seed=0, groups=None)


def test_predefined_split_uses_the_column_and_carves_val() -> None:
    column = np.array(["train"] * 40 + ["test"] * 20, dtype=object)
    labels = np.arange(60) % 2
    s = predefined_split(labels, val=0.25, seed=0, predefined=column)
    assert set(s.test) == set(range(40, 60)) and len(s.val) == 10 and len(s.train) == 30
    with pytest.raises(ConfigError, match="train/val/test"):
        predefined_split(labels, val=0.2, seed=0, predefined=np.array(["train", "dev"] * 30, dtype=object))


def test_leakage_is_found_and_can_stop_the_run(tmp_path: Path) -> None:
    rows = clean_rows(tmp_path)
    for r in rows:
        r["text"] = "same caption"
    write_manifest(tmp_path, rows)
    dm = make_dm(tmp_path)
    dm.setup()
    assert dm.info.leaks.counts["text train-test"] == len(dm.info.split.test)
    with pytest.raises(ConfigError, match="identical items shared"):
        make_dm(tmp_path, on_leak="error").setup()


def test_image_leak_is_found_by_pixels_not_file_bytes(tmp_path: Path) -> None:
    rows = clean_rows(tmp_path)
    rng = np.random.default_rng(0)
    for r in rows:  # every image distinct
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / r["image"])
    write_manifest(tmp_path, rows)
    dm = make_dm(tmp_path)
    dm.setup()
    assert dm.info.leaks.counts["image train-test"] == 0
    source, copy = tmp_path / rows[dm.info.split.train[0]]["image"], tmp_path / rows[dm.info.split.test[0]]["image"]
    Image.open(source).save(copy, compress_level=0)  # the same picture, other bytes
    assert copy.read_bytes() != source.read_bytes()
    dm = make_dm(tmp_path)
    dm.setup()
    assert dm.info.leaks.counts["image train-test"] == 1
    assert dm.info.leaks.examples["image train-test"] == [rows[dm.info.split.test[0]]["id"]]


def test_image_cache_is_reused_and_rebuilt_when_data_changes(tmp_path: Path) -> None:
    rows = clean_rows(tmp_path, n=6)
    manifest = write_manifest(tmp_path, rows)
    paths = [tmp_path / r["image"] for r in rows]
    cache = tmp_path / "cache"
    first, _ = load_or_decode(paths, 16, manifest=manifest, cache_dir=cache)
    assert len(list(cache.glob("*.npy"))) == 1
    again, _ = load_or_decode(paths, 16, manifest=manifest, cache_dir=cache)
    assert (first == again).all() and len(list(cache.glob("*.npy"))) == 1
    draw("blue", "square").save(paths[0])  # same manifest, changed image -> new cache entry
    changed, _ = load_or_decode(paths, 16, manifest=manifest, cache_dir=cache)
    assert len(list(cache.glob("*.npy"))) == 2 and not (changed[0] == first[0]).all()
    load_or_decode(paths, 8, manifest=manifest, cache_dir=cache)  # new size -> new entry
    assert len(list(cache.glob("*.npy"))) == 3


def test_concurrent_cache_builds_agree(tmp_path: Path) -> None:
    rows = clean_rows(tmp_path, n=12)
    manifest = write_manifest(tmp_path, rows)
    paths = [tmp_path / r["image"] for r in rows]
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(load_or_decode(paths, 16, manifest=manifest, cache_dir=tmp_path / "c")[0])
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all((r == results[0]).all() for r in results)
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith(".")]  # no temp files left
    meta = json.loads(next((tmp_path / "c").glob("*.json")).read_text())
    assert meta["n"] == 12


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_inspect_summarizes_without_training(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    rows = clean_rows(tmp_path, n=16)
    write_manifest(tmp_path, [*rows, {**rows[0], "id": "gone", "image": "img/none.png"}], "csv")
    result = run_cli(
        "mmexp.inspect",
        "data=folder",
        f"data.root={tmp_path}",
        "data.manifest=manifest.csv",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "rows:         16 usable, 1 bad" in out
    assert "line 18: image file not found" in out
    assert "classes (4)" in out and "image sizes:  24x24: 16" in out
    assert f"first run:    python -m mmexp.train experiment=pretrained data=folder data.root={tmp_path}" in out
    assert "then:         repeat it with -m split=kfold split.fold=0,1,2,3,4 split.seed=0,1" in out  # a spread
    assert not (tmp_path / "outputs").exists()  # inspect writes no run dir


def _batches(loader) -> list[dict]:
    return [{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in vars(b).items()} for b in loader]


def test_batched_and_per_sample_paths_yield_identical_batches(tmp_path: Path) -> None:
    from torch.utils.data import DataLoader

    write_manifest(tmp_path, clean_rows(tmp_path, n=24))
    dm = make_dm(tmp_path, batch_size=5, eval_batch_size=5)
    dm.setup()
    batched = _batches(dm.test_dataloader())
    per_sample = _batches(DataLoader(_PerSample(dm.test_dataloader().dataset), batch_size=5, collate_fn=collate))
    assert batched == per_sample and len(batched) == 2


class _PerSample:
    """Hides ``__getitems__`` so the DataLoader falls back to one ``__getitem__`` per sample + collate."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Batch:
        return self.dataset[i]


def test_device_resident_batches_equal_the_plain_ones(tmp_path: Path) -> None:
    import torch

    from mmexp.data.datamodule import resident_on

    write_manifest(tmp_path, clean_rows(tmp_path, n=24))
    plain, resident = (make_dm(tmp_path, batch_size=4, device_resident=mode) for mode in (False, True))
    plain.setup()
    resident.setup()
    assert _batches(resident.val_dataloader()) == _batches(plain.val_dataloader())
    assert resident._resident is not None and plain._resident is None
    assert resident.test_dataloader().dataset.tensors is resident.val_dataloader().dataset.tensors  # one copy
    tensors = plain.info.tensors
    cuda = torch.device("cuda")
    assert not resident_on(torch.device("cpu"), tensors, "auto", 4.0)  # CPU tensors are resident already
    assert resident_on(cuda, tensors, "auto", 4.0) and not resident_on(cuda, tensors, "auto", 1e-9)
    assert not resident_on(cuda, tensors, False, 4.0)
    with pytest.raises(ConfigError, match="device_resident"):
        make_dm(tmp_path, device_resident="sometimes")


def test_resize_modes_keep_or_drop_the_aspect_ratio(tmp_path: Path) -> None:
    from PIL import Image

    from mmexp.data.images import load_rgb

    wide = Image.new("RGB", (40, 20), (250, 0, 0))
    wide.paste((0, 0, 250), (30, 0, 40, 20))  # a blue strip on the right quarter
    wide.save(tmp_path / "wide.png")
    squash, pad, crop = (load_rgb(tmp_path / "wide.png", 16, mode) for mode in ("squash", "pad", "crop"))
    assert squash[0, :, 0].min() > 200 and squash[2, :, -1].min() > 200  # stretched: red left, blue right, full height
    assert pad[:, :3].max() == 0 and pad[:, -3:].max() == 0 and pad[0, 8, 0] > 200  # black bars above and below
    assert crop[2].max() < 50 and crop[0].min() > 200  # the center square: all red, the blue strip cut away
    with pytest.raises(ConfigError, match=r"data\.resize must be one of squash, pad, crop"):
        make_dm(tmp_path, resize="fit")


def test_image_cache_is_a_memory_map_and_parallel_decoding_matches_serial(tmp_path: Path) -> None:
    import numpy as np

    rows = clean_rows(tmp_path, n=12)
    manifest = write_manifest(tmp_path, rows)
    paths = [tmp_path / r["image"] for r in rows] + [tmp_path / "img/none.png"]
    serial, serial_problems = load_or_decode(paths, 16, manifest=manifest, cache_dir=None)
    cached, problems = load_or_decode(paths, 16, manifest=manifest, cache_dir=tmp_path / "c", parallel_from=1)
    assert isinstance(cached, np.memmap) and np.array_equal(cached, serial)  # decoded in 2 processes
    assert problems == serial_problems and list(problems) == [12]
    again, _ = load_or_decode(paths, 16, manifest=manifest, cache_dir=tmp_path / "c")
    again[0] = 0  # copy-on-write: the cache file never changes
    reread, _ = load_or_decode(paths, 16, manifest=manifest, cache_dir=tmp_path / "c")
    assert np.array_equal(reread, serial)
