"""The README is a front page whose commands run as written, and the docs link only to files in the repository.

Every ``python -m mmexp.<entry> ...`` in the README (code blocks and inline code) is checked in-process, without
training: a Hydra entry point's overrides compose into its config and resolve (an unknown key, option or group
fails), and an argparse entry point parses its arguments. Shell variables are replaced by a run-dir path; a
sweep is checked with the first value of each swept key, and every swept config-group option must exist.
"""

from __future__ import annotations

import importlib.resources
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict

from mmexp.app.cli import quote_path_overrides
from mmexp.core import resolvers  # noqa: F401  (registers the config resolvers)

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
MAX_README_BYTES = 12 * 1024

HYDRA_ENTRIES = {"train", "eval", "predict", "inspect", "export"}  # mmexp.<entry> -> conf/<entry>.yaml
# Usage lines, not commands: their <placeholders> stand for the user's own words. A new one must be listed here.
SYNOPSES = {"python -m mmexp.train <group>=<option> <key>=<value> ..."}
# What a shell variable in a README command stands for (`run=$(ls -d outputs/runs/*/ | tail -1)`).
SHELL_VALUE = "outputs/runs/2026-12-02_09-06-35-733668/"
# Hydra flags that take no part in composition (and the value each takes).
HYDRA_FLAGS = {"-m": 0, "--multirun": 0, "--help": 0, "-h": 0, "--info": 0, "--cfg": 1, "-c": 1, "--resolve": 0}


def code_blocks(text: str) -> Iterator[str]:
    yield from re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)


def readme_commands() -> list[str]:
    """Every ``python -m mmexp....`` command of the README: code-block lines (continuations joined, comments
    dropped) and inline code spans."""
    text = README.read_text(encoding="utf-8")
    found: list[str] = []
    for block in code_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            start = line.find("python -m mmexp.")
            if start >= 0:
                found.append(re.split(r"\s+#", line[start:])[0].strip())
    found += re.findall(r"`(python -m mmexp\.[^`]+)`", text)
    return list(dict.fromkeys(found))


COMMANDS = readme_commands()


def test_readme_is_a_front_page() -> None:
    size = README.stat().st_size
    assert size <= MAX_README_BYTES, f"README.md is {size} bytes; move detail into docs/ (limit {MAX_README_BYTES})"


def test_first_block_trains_then_runs_the_ci_test_command() -> None:
    """.ci/run takes line 2 of the first code block as `<install> && <pytest command>`; line 1 trains."""
    first = next(code_blocks(README.read_text(encoding="utf-8"))).splitlines()
    assert len(first) == 2
    assert first[0].endswith("&& python -m mmexp.train")
    install, _, tests = first[1].rpartition(" && ")
    assert "pip install -e '.[dev]'" in install
    assert tests == "python -m pytest"


def test_readme_has_the_tour_commands() -> None:
    """The tour covers train, sweep, report, own data and predict (a check that the extraction finds them)."""
    entries = {shlex.split(c)[2] for c in COMMANDS}
    assert {"mmexp.train", "mmexp.report", "mmexp.inspect", "mmexp.eval", "mmexp.predict"} <= entries
    assert any(shlex.split(c)[3:4] == ["-m"] for c in COMMANDS), "no sweep (-m) in the README"


def _arguments(command: str) -> tuple[str, list[str]]:
    words = shlex.split(re.sub(r"\$\{?\w+\}?", SHELL_VALUE, command))
    assert words[:2] == ["python", "-m"] and words[2].startswith("mmexp."), command
    return words[2].removeprefix("mmexp."), words[3:]


def _group_options(group: str) -> set[str]:
    folder = importlib.resources.files("mmexp.conf").joinpath(group)
    return {p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")}


def _first_of_each_sweep(overrides: list[str]) -> list[str]:
    """The overrides with each sweep cut to its first value; every swept option of a config group must exist."""
    out = []
    for raw, parsed in zip(overrides, OverridesParser.create().parse_overrides(overrides), strict=True):
        if not parsed.is_sweep_override():
            out.append(raw)
            continue
        values = list(parsed.sweep_string_iterator())
        if "/" in parsed.key_or_group or parsed.key_or_group in _conf_groups():
            missing = set(values) - _group_options(parsed.key_or_group)
            assert not missing, f"{raw}: no such option(s) {sorted(missing)} in conf/{parsed.key_or_group}/"
        out.append(f"{parsed.get_key_element()}={values[0]}")
    return out


def _conf_groups() -> set[str]:
    root = importlib.resources.files("mmexp.conf")
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("__")}


def _compose(entry: str, overrides: list[str], run_dir: Path) -> None:
    """Compose and resolve ``conf/<entry>.yaml`` as ``@hydra.main`` would; Hydra's state is put back after."""
    before = HydraConfig.instance().cfg
    try:
        with initialize_config_module("mmexp.conf", version_base="1.3"):
            cfg = compose(entry, overrides=overrides, return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.hydra.job.name = entry
            HydraConfig.instance().set_config(cfg)
            del cfg.hydra
        OmegaConf.to_container(cfg, resolve=True)
    finally:
        HydraConfig.instance().cfg = before


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.removeprefix("python -m "))
def test_readme_command_composes(command: str, tmp_path: Path) -> None:
    if command in SYNOPSES:
        pytest.skip("a usage line with placeholders, listed in SYNOPSES")
    assert "<" not in command, f"placeholder in a README command (runs as written, or add it to SYNOPSES): {command}"
    entry, args = _arguments(command)
    if entry == "report":
        from mmexp.reporting.cli import build_parser

        build_parser().parse_args(args)  # exits (SystemExit) on an unknown option
        return
    assert entry in HYDRA_ENTRIES, f"unknown entry point mmexp.{entry}: {command}"
    overrides: list[str] = []
    words = iter(args)
    for word in words:
        if word in HYDRA_FLAGS:
            for _ in range(HYDRA_FLAGS[word]):
                next(words)
        else:
            assert not word.startswith("-"), f"{word}: a flag this test does not know, in {command}"
            overrides.append(word)
    _compose(entry, _first_of_each_sweep(quote_path_overrides(overrides)), tmp_path)


def test_a_wrong_command_fails_the_check(tmp_path: Path) -> None:
    """The check above can fail: a misspelled key and a missing option are caught."""
    with pytest.raises(Exception, match="max_epoch"):
        _compose("train", ["trainer.max_epoch=5"], tmp_path)
    with pytest.raises(AssertionError, match="no such option"):
        _first_of_each_sweep(["fusion=concat,nosuchfusion"])


MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
OUTSIDE = re.compile(r"\.\./shared|/work/|DESIGN\.md|STACK_NOTES|origin documents?|~/")


def _outside_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_point_to_files_in_the_repository(page: Path) -> None:
    broken = []
    for target in MARKDOWN_LINK.findall(_outside_code(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists() or not path.is_relative_to(REPO):
            broken.append(target)
    assert not broken, f"{page.name}: links to missing files or outside the repository: {broken}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_docs_name_no_file_outside_the_repository(page: Path) -> None:
    hits = [m.group(0) for m in OUTSIDE.finditer(page.read_text(encoding="utf-8"))]
    assert not hits, f"{page.name} refers to files outside the repository: {hits}"
