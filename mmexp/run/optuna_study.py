"""Which Optuna study a sweep belongs to: one named after what the sweep optimizes, so another sweep never joins it.

A study's trials are only comparable when they optimize one objective: the same data, task, model options,
search space, metric and direction. The default study name ends in a hash of exactly those (where the output
goes, the loggers and the sampler's seed are left out, so scale-out sweepers with different seeds share one
study), and the study records them in its user attrs. Joining a study that records something else is refused
in one line naming both, instead of silently mixing two objectives (or Optuna's traceback for a direction).
"""

from __future__ import annotations

import hashlib
import json
import logging
from enum import Enum
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from mmexp.core.errors import ConfigError

log = logging.getLogger("mmexp.sweep")
IDENTITY_ATTR = "mmexp_sweep"  # the study's user attr holding the identity below
# Top-level keys and config groups that say where results go or how the search runs, not what it optimizes.
NOT_OBJECTIVE = frozenset({"paths", "hydra", "logger", "num_threads", "ckpt_path", "resume", "hparams_search"})
WHERE = ("paths.", "hydra", "oc.env")  # interpolations of these say where data is kept (a cache), kept unresolved


def directions(config: DictConfig) -> list[str]:
    """``hydra.sweeper.direction`` as a list of ``minimize``/``maximize`` (Optuna's default: minimize)."""
    direction = config.hydra.sweeper.get("direction") or "minimize"
    items = [direction] if isinstance(direction, str | Enum) else list(direction)
    names = [(d.name if isinstance(d, Enum) else str(d)).lower() for d in items]
    if not names or any(n not in ("minimize", "maximize") for n in names):  # Optuna's answer: a traceback
        raise ConfigError(
            f"hydra.sweeper.direction={direction}: expected minimize or maximize (a list of them for several "
            "objectives)"
        )
    return names


def search_space(config: DictConfig) -> dict[str, str]:
    """Swept key -> its distribution: ``hydra.sweeper.params`` and the command line's sweep overrides."""
    space = {str(k): str(v) for k, v in (config.hydra.sweeper.get("params") or {}).items()}
    for override in _overrides(config):
        if override.is_sweep_override():
            space[override.get_key_element()] = override.get_value_element_as_str()
    return space


def sweep_identity(config: DictConfig) -> dict[str, Any]:
    """What the sweep optimizes, read from the sweep's own (multirun) config before any trial is sampled."""
    space = search_space(config)

    def objective(key: str) -> bool:
        return key not in space and key.split(".")[0].split("/")[0] not in NOT_OBJECTIVE

    choices = OmegaConf.to_container(config.hydra.runtime.choices) if "choices" in config.hydra.runtime else {}
    assert isinstance(choices, dict)

    def fixed(key: str) -> bool:  # data/task values are in their resolved config below, group options in choices
        return objective(key) and key not in choices and not key.startswith(("data.", "task."))

    overrides = [o for o in _overrides(config) if not o.is_sweep_override() and fixed(o.get_key_element())]
    return {
        "data": _resolved(config.get("data")),
        "task": _resolved(config.get("task")),
        "choices": {str(g): str(c) for g, c in sorted(choices.items()) if objective(str(g))},
        "overrides": {o.get_key_element(): o.get_value_element_as_str() for o in sorted(overrides, key=str)},
        "search_space": dict(sorted(space.items())),
        "metric": str(config.get("optimized_metric")),
        "directions": directions(config),
    }


def study_name(identity: dict[str, Any]) -> str:
    """``<data>-<task>-<metric>-<max|min>-<hash>``, e.g. ``synthetic-multiclass-val_f1_macro-max-1a2b3c4d``."""
    digest = hashlib.blake2b(json.dumps(identity, sort_keys=True, default=str).encode(), digest_size=4).hexdigest()
    choices = identity["choices"]
    goal = "-".join(d[:3] for d in identity["directions"])
    metric = identity["metric"].replace("/", "_")
    return f"{choices.get('data', 'data')}-{choices.get('task', 'task')}-{metric}-{goal}-{digest}"


def differences(theirs: dict[str, Any], ours: dict[str, Any], limit: int = 3) -> list[str]:
    """``key: <theirs> there, <ours> here`` for the first ``limit`` flattened keys that differ."""
    a, b = _flatten(theirs), _flatten(ours)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    shown = [f"{k}: {_show(a.get(k))} there, {_show(b.get(k))} here" for k in keys[:limit]]
    return shown + ([f"{len(keys) - limit} more"] if len(keys) > limit else [])


def check_joinable(storage: Any, name: str, url: str, identity: dict[str, Any], own_name: str) -> bool:
    """Whether study ``name`` exists in ``storage`` (an Optuna storage); raise if it optimizes something else.

    A study made before mmexp recorded identities is joined when its direction matches, with a warning.
    """
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return False
    recorded = storage.get_study_user_attrs(study_id).get(IDENTITY_ATTR)
    theirs = recorded if isinstance(recorded, dict) else None
    if theirs is None:
        their_directions = [d.name.lower() for d in storage.get_study_directions(study_id)]
        theirs_shown = {"directions": their_directions}
        if their_directions != identity["directions"]:
            diff = differences(theirs_shown, {"directions": identity["directions"]})
            raise ConfigError(_refusal(name, url, diff, own_name))
        log.warning("optuna study %s in %s records no identity (made before mmexp did); joining it", name, url)
        return True
    diff = differences(theirs, identity)
    if diff:
        raise ConfigError(_refusal(name, url, diff, own_name))
    return True


def _refusal(name: str, url: str, diff: list[str], own_name: str) -> str:
    fix = f"drop hydra.sweeper.study_name to use this sweep's own study {own_name}, or name a new one"
    return (
        f"hydra.sweeper.study_name={name}: that study in {url} holds another sweep's trials ({'; '.join(diff)}); "
        + (fix if own_name != name else "name a new one with hydra.sweeper.study_name")
    )


def _overrides(config: DictConfig) -> list[Any]:
    return list(OverridesParser.create().parse_overrides([str(o) for o in config.hydra.overrides.task]))


def _resolved(node: Any) -> Any:
    """The node's values, resolved except those that point at where things are kept (paths, environment)."""
    if not isinstance(node, DictConfig):
        return node
    raw = OmegaConf.to_container(node, resolve=False)
    try:
        return _merge(raw, OmegaConf.to_container(node, resolve=True))
    except Exception:  # an interpolation only a job can resolve: the unresolved text still identifies it
        return raw


def _merge(raw: Any, resolved: Any) -> Any:
    if isinstance(raw, dict) and isinstance(resolved, dict):
        return {k: _merge(v, resolved.get(k)) for k, v in raw.items()}
    if isinstance(raw, list) and isinstance(resolved, list):
        return [_merge(a, b) for a, b in zip(raw, resolved, strict=False)]
    if isinstance(raw, str) and "${" in raw and any(where in raw for where in WHERE):
        return raw
    return resolved


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): tree}


def _show(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value, default=str)
