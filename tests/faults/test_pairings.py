"""Class 3: pieces that must belong together are checked, and a mismatch is one line naming both sides.

tokenizer <-> model (files present, vocabulary size), encoder <-> modality, weights <-> architecture, checkpoint
<-> run config (the stamp every checkpoint carries), labels <-> label map. The Hugging Face pieces are built
offline by tests/hf_factory.py; the trained run is one tiny in-process run shared by the module.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from mmexp.core.errors import ConfigError
from mmexp.core.model_config import STAMP_KEY
from mmexp.eval import evaluate
from mmexp.predict import predict
from tests.conftest import compose_command
from tests.data_factory import clean_rows, write_manifest
from tests.e2e.test_eval import NO_CORRUPTIONS, compose_eval, train_run

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny() -> dict[str, Path]:
    from tests.hf_factory import tiny_models

    return tiny_models()


def test_a_model_dir_without_tokenizer_files_is_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    from mmexp.data.tokenizers import PretrainedTokenizer

    bare = tmp_path / "bert-no-tokenizer"
    shutil.copytree(tiny["bert"], bare)
    (bare / "tokenizer.json").unlink()  # what transformers would silently replace by 5 special tokens
    with pytest.raises(ConfigError, match=r"has no tokenizer files \(none of tokenizer\.json, vocab\.txt\)") as e:
        PretrainedTokenizer(path=str(bare))
    assert str(bare) in str(e.value) and "save_pretrained" in str(e.value) and "\n" not in str(e.value)


def test_a_tokenizer_larger_than_the_model_vocabulary_is_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    import transformers as t

    from mmexp.data.tokenizers import PretrainedTokenizer

    small = tmp_path / "bert-100"
    config = t.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    config.vocab_size = 100
    t.AutoModel.from_config(config).save_pretrained(small)
    t.AutoTokenizer.from_pretrained(str(tiny["bert"])).save_pretrained(small)  # 30522 word pieces
    with pytest.raises(ConfigError, match="its tokenizer has 30522 tokens but the model has 100 token embeddings"):
        PretrainedTokenizer(path=str(small))


def test_a_text_model_as_the_image_encoder_is_refused(tiny: dict[str, Path]) -> None:
    from mmexp.data.tokenizers import PretrainedTokenizer
    from mmexp.models.encoders.huggingface import HFImageEncoder, HFTextEncoder

    bert, vit = tiny["bert"], tiny["vit"]
    with pytest.raises(ConfigError) as e:
        HFImageEncoder(name=str(bert))
    assert str(e.value) == (
        f"image_encoder.name={bert} is a text model (BertModel); use it as text_encoder=hf text_encoder.name={bert}"
    )
    with pytest.raises(ConfigError, match=rf"is an image model \(ViTModel\); use it as image_encoder=hf .*{vit}"):
        HFTextEncoder(name=str(vit))
    # text_encoder=hf builds its tokenizer first: an image model there is the same line, not "cannot load"
    with pytest.raises(ConfigError, match=r"is an image model \(ViTConfig, no text vocabulary\); use it as image_enc"):
        PretrainedTokenizer(path=str(vit))


def test_weights_of_another_architecture_are_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    """A ViT config beside a BERT weights file: transformers would initialise most of the ViT at random."""
    from mmexp.models.encoders.huggingface import HFImageEncoder

    mixed = tmp_path / "vit-with-bert-weights"
    shutil.copytree(tiny["vit"], mixed)
    shutil.copy(tiny["bert"] / "model.safetensors", mixed / "model.safetensors")
    with pytest.raises(ConfigError, match=r"% of the weights of ViTModel are not in its files") as e:
        HFImageEncoder(name=str(mixed))
    assert str(mixed) in str(e.value) and "\n" not in str(e.value)


# --- checkpoint <-> run config, labels <-> model: one tiny trained run ---------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_manifest(root, clean_rows(root, n=40))
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    out = tmp_path_factory.mktemp("train")
    overrides = ["debug=fast", "data=folder", f"data.root={data}", "text_encoder=bow", "data.image_size=16"]
    return train_run(out, out / "cache", *overrides)


def edited_copy(run: Path, tmp_path: Path, old: str, new: str, *, stamped: bool = True) -> Path:
    """A copy of ``run`` whose config.yaml has the line matching ``old`` (a regex) replaced by ``new`` (as a user
    editing it after training); ``stamped=False`` removes the config stamp from its best.ckpt (a checkpoint of an
    older mmexp)."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = (copy / "config.yaml").read_text()
    edited = re.sub(old, new, config, count=1, flags=re.MULTILINE)
    assert edited != config or old == new
    (copy / "config.yaml").write_text(edited)
    ckpt = copy / "checkpoints" / "best.ckpt"
    if not stamped:
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        del saved[STAMP_KEY]
        torch.save(saved, ckpt)
    return ckpt


def rebuild_by(command: str, ckpt: Path, tmp_path: Path) -> Any:
    """Rebuild the trained run of ``ckpt`` as ``command`` does (the four rebuild paths share one check)."""
    if command == "eval":
        return evaluate(compose_eval(tmp_path, tmp_path / "cache", f"ckpt_path={ckpt}", NO_CORRUPTIONS))
    if command == "predict":
        return predict(
            compose_command("predict", tmp_path, tmp_path / "cache", f"ckpt_path={ckpt}", run_dir=tmp_path / "p")
        )
    if command == "bundle":
        from mmexp.portable.bundle import write_bundle

        return write_bundle(ckpt, tmp_path / "bundle")
    from mmexp.serving.export import load_trained

    return load_trained(ckpt)


@pytest.mark.parametrize("command", ["eval", "predict", "bundle", "export"])
def test_a_checkpoint_evaluated_with_another_image_size_is_refused(run: Path, tmp_path: Path, command: str) -> None:
    """The checkpoint in a dir whose config says another image size (copied there, or config.yaml edited): on
    main it was scored at that size without complaint."""
    ckpt = edited_copy(run, tmp_path, "image_size: 16", "image_size: 24")
    with pytest.raises(ConfigError) as e:
        rebuild_by(command, ckpt, tmp_path)
    message = str(e.value)
    assert message.startswith(f"ckpt_path={ckpt} was trained with another model config than {ckpt.parents[1]}")
    assert "data.image_size (checkpoint 16, config 24)" in message and "\n" not in message
    assert not (tmp_path / "bundle").exists()


def test_an_edited_architecture_is_named_not_a_state_dict_traceback(run: Path, tmp_path: Path) -> None:
    ckpt = edited_copy(run, tmp_path, r"head_hidden: \d+$", "head_hidden: 7")
    with pytest.raises(ConfigError, match=r"model\.head_hidden \(checkpoint \d+, config 7\)"):
        rebuild_by("eval", ckpt, tmp_path)


def test_an_unstamped_checkpoint_still_loads_and_a_mismatch_is_one_line(
    run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Checkpoints of an older mmexp carry no stamp: they load (with a warning); weights that do not fit the
    model config.yaml builds are one line naming both files, not torch's state_dict traceback."""
    ckpt = edited_copy(run, tmp_path, r"head_hidden: \d+$", "head_hidden: 7", stamped=False)
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError) as e:
        rebuild_by("export", ckpt, tmp_path)
    assert "has no stamp of the config it was trained with" in caplog.text
    message = str(e.value)
    assert message.startswith(f"ckpt_path={ckpt}: its weights do not fit the model {ckpt.parents[1] / 'config.yaml'}")
    assert "size mismatch" in message and "\n" not in message
    same = edited_copy(run, tmp_path / "same", "image_size: 16", "image_size: 16", stamped=False)
    assert rebuild_by("export", same, tmp_path).labels  # unstamped and unchanged: loads as before


def relabelled(data: Path, tmp_path: Path, label: Callable[[int], Any]) -> Path:
    """A copy of the run's data folder whose rows carry the labels ``label(i)``."""
    root = tmp_path / "relabelled"
    shutil.copytree(data, root)
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    write_manifest(root, [{**row, "label": label(i)} for i, row in enumerate(rows)])
    return root


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    """A tiny task=multilabel run: each row is labelled with its colour and its shape."""
    root = relabelled(data, tmp_path_factory.mktemp("multilabel"), lambda i: "|".join(clean_rows_label(i)))
    out = tmp_path_factory.mktemp("train-multilabel")
    overrides = ["debug=fast", "task=multilabel", "data=folder", f"data.root={root}", "text_encoder=bow"]
    return train_run(out, out / "cache", *overrides, "data.image_size=16")


def clean_rows_label(i: int) -> tuple[str, str]:
    """The colour and shape of clean_rows' row ``i``."""
    return ("red", "blue")[i % 2], ("round", "square")[(i // 2) % 2]


@pytest.mark.parametrize("task", ["multilabel", "multiclass"])
def test_predict_warns_when_the_labels_share_no_class_with_the_model(
    request: pytest.FixtureRequest, data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, task: str
) -> None:
    """On main the rows were scored with no word that their labels are classes the model never saw."""
    run = request.getfixturevalue("multilabel_run" if task == "multilabel" else "run")
    root = relabelled(data, tmp_path, lambda i: ["cat", "dog"] if task == "multilabel" else ("cat", "dog")[i % 2])
    overrides = [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "data=folder", f"data.root={root}"]
    with caplog.at_level(logging.WARNING):
        result = predict(compose_command("predict", tmp_path, tmp_path / "cache", *overrides, run_dir=tmp_path / "p"))
    assert result["rows"] == 40  # still scored
    warned = [r.getMessage() for r in caplog.records if "label map" in r.getMessage()]
    known = "blue, red, round, square" if task == "multilabel" else "blue-round, blue-square, red-round, red-square"
    assert len(warned) == 1
    assert f"share no class with the checkpoint's label map: unknown cat, dog; checkpoint {known};" in warned[0]


def test_eval_refuses_labels_the_model_does_not_know_in_one_short_line(run: Path, data: Path, tmp_path: Path) -> None:
    """Both class sets are named, each cut at eight (on main every unknown class was listed)."""
    root = relabelled(data, tmp_path, lambda i: "red-round" if i % 2 else f"new-{i:02d}")
    ckpt = run / "checkpoints" / "best.ckpt"
    overrides = [f"ckpt_path={ckpt}", "data=folder", f"data.root={root}", "split=random", NO_CORRUPTIONS]
    with pytest.raises(ConfigError) as e:
        evaluate(compose_eval(tmp_path, tmp_path / "cache", *overrides))
    unknown = ", ".join(f"new-{i:02d}" for i in range(0, 16, 2))
    assert str(e.value) == (
        f"data: the labels of {root / 'manifest.jsonl'} hold 20 class(es) not in the checkpoint's label map: "
        f"unknown {unknown} (+12 more); checkpoint blue-round, blue-square, red-round, red-square; "
        "evaluate on data with the labels it was trained on"
    )
