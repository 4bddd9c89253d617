"""Bind every component's options to its constructor's signature without building it (as torchtune's config
validation does): an option no component takes, or a required one that neither the config nor the builder
gives, is one line each. Imports the targets' modules (torch, Lightning), so ``app/config_checks`` runs it only
once the cheap value checks pass."""

from __future__ import annotations

import inspect

import hydra
from omegaconf import DictConfig, OmegaConf

from mmexp.training.build import TOKENIZER, not_an_option, unknown_options

# what the builder passes to a group's target besides its options: the run-time sizes and built parts
COMPLETED: dict[str, frozenset[str]] = {
    "data": frozenset({"task", "text"}),
    "text_encoder": frozenset({"vocab_size"}),
    "fusion": frozenset({"dims", "num_classes"}),
    "model": frozenset({"task", "positive", "image_encoder", "text_encoder", "fusion", "num_classes"})
    | frozenset({"optimizer", "scheduler", "augment"}),
    "optimizer": frozenset({"params"}),
    "scheduler": frozenset({"optimizer"}),
    "trainer": frozenset({"callbacks", "logger"}),
}
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_convert_", "_recursive_", "_args_"})
NOT_PASSED = {"text_encoder": frozenset({TOKENIZER})}  # read by the builder, never given to the target


def option_problems(cfg: DictConfig) -> list[str]:
    """One line per option that no component takes, and per required parameter that neither the config nor the
    builder gives: every node with a ``_target_`` bound to its target's signature, nothing built (as torchtune's
    config validation does). Imports the targets' modules."""
    problems: list[str] = []
    for key, node in target_nodes(cfg):
        problems.extend(signature_problems(node, key))
    return problems


def target_nodes(node: DictConfig, key: str = "") -> list[tuple[str, DictConfig]]:
    """Every node under ``node`` with a ``_target_`` (interpolated nodes, e.g. ``data.split``, are their source's)."""
    found = [(key, node)] if "_target_" in node else []
    for name in map(str, node):
        if name == "hydra" or OmegaConf.is_interpolation(node, name) or OmegaConf.is_missing(node, name):
            continue
        child = node.get(name)
        if isinstance(child, DictConfig):
            found.extend(target_nodes(child, f"{key}.{name}" if key else name))
    return found


def signature_problems(node: DictConfig, key: str) -> list[str]:
    """``node``'s options bound to its target's parameters (see ``option_problems``)."""
    if OmegaConf.is_interpolation(node, "_target_") or not isinstance(node._target_, str):
        return []  # a computed target: checked when it is built
    try:
        target = hydra.utils.get_object(node._target_)
        params = inspect.signature(target).parameters
    except (ImportError, AttributeError, ValueError, TypeError):
        return [f"{key}._target_={node._target_}: no such class or function; check its spelling"]
    options = {str(k) for k in node} - HYDRA_KEYS - NOT_PASSED.get(key, frozenset())
    problems = [str(not_an_option(key, name)) for name in unknown_options(target, options)]
    required = {
        name
        for name, p in params.items()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    for name in sorted(required - options - COMPLETED.get(key, frozenset())):
        full = f"{key}.{name}" if key else name
        problems.append(f"{full} is required: add +{full}=<value> (or {name} to the YAML of its config group)")
    return problems
